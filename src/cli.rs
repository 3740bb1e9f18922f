//! Minimal `--key value` argument parsing shared by the binaries.

/// Positional words and `--key value` / `--key=value` options, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub positional: Vec<String>,
    pub options: Vec<(String, String)>,
    /// Options given without a value (`--help`), recognised from `switches`.
    pub switches: Vec<String>,
}

impl Args {
    /// Parses `args`; names in `switches` take no value.
    pub fn parse(args: impl IntoIterator<Item = String>, switches: &[&str]) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                out.positional.push(a);
                continue;
            };
            if let Some((k, v)) = name.split_once('=') {
                out.options.push((k.to_string(), v.to_string()));
            } else if switches.contains(&name) {
                out.switches.push(name.to_string());
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                out.options.push((name.to_string(), v));
            }
        }
        Ok(out)
    }

    /// Removes and returns the last value of option `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let found = self.options.iter().rposition(|(k, _)| k == name)?;
        let v = self.options.remove(found).1;
        self.options.retain(|(k, _)| k != name);
        Some(v)
    }

    /// Like [`Args::take`], parsed.
    pub fn take_parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        self.take(name).map(|v| v.parse().map_err(|_| format!("--{name}: cannot read {v:?}"))).transpose()
    }

    pub fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// Fails when options are left that nothing consumed.
    pub fn finish(&self) -> Result<(), String> {
        match self.options.first() {
            Some((k, _)) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

/// The compute device chosen with `--device cpu|gpu` and, for the GPU, `--adapter
/// NAME|INDEX` (else the `VWN_GPU_ADAPTER` environment variable, else the most capable
/// adapter).
#[derive(Debug, PartialEq)]
pub enum Device {
    Cpu,
    Gpu { adapter: Option<String> },
}

impl Device {
    /// Takes `--device` and `--adapter` out of `args`.
    pub fn take(args: &mut Args) -> Result<Device, String> {
        let adapter = args.take("adapter");
        Device::new(args.take("device").as_deref().unwrap_or("cpu"), adapter)
    }

    /// The device called `name`, with the adapter choice for a GPU.
    pub fn new(name: &str, adapter: Option<String>) -> Result<Device, String> {
        match name {
            "cpu" if adapter.is_some() => Err("--adapter applies to --device gpu".into()),
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu { adapter }),
            other => Err(format!("unknown device {other:?} (cpu or gpu)")),
        }
    }

    /// Opens the GPU named by `adapter`, with the reason when none can be opened.
    pub fn open_gpu(adapter: Option<&str>) -> Result<gpu::GpuBackend, String> {
        gpu::GpuBackend::open(adapter).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options_switches_and_positionals() {
        let argv = ["eval", "--checkpoint", "d", "--lr=0.1", "--help", "--x", "1"].map(String::from);
        let mut a = Args::parse(argv, &["help"]).unwrap();
        assert_eq!(a.positional, vec!["eval"]);
        assert!(a.has("help"));
        assert_eq!(a.take("checkpoint").as_deref(), Some("d"));
        assert_eq!(a.take_parsed::<f64>("lr").unwrap(), Some(0.1));
        assert_eq!(a.finish().unwrap_err(), "unknown option --x");
        assert!(Args::parse(["--dangling".to_string()], &[]).is_err());
    }

    #[test]
    fn device_choice() {
        let parse = |argv: &[&str]| Device::take(&mut Args::parse(argv.iter().map(|s| s.to_string()), &[]).unwrap());
        assert_eq!(parse(&[]).unwrap(), Device::Cpu);
        assert_eq!(parse(&["--device", "gpu"]).unwrap(), Device::Gpu { adapter: None });
        assert_eq!(parse(&["--device", "gpu", "--adapter", "1"]).unwrap(), Device::Gpu { adapter: Some("1".into()) });
        assert!(parse(&["--device", "tpu"]).unwrap_err().contains("tpu"));
        assert!(parse(&["--adapter", "0"]).is_err());
    }
}
