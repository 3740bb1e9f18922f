//! Training configuration: presets, TOML files and `--flag value` overrides.
//!
//! Every field of [`TrainConfig`] (model, optimizer and run settings) can be set three
//! ways, applied in this order: a preset (`tiny`, `small`, `default`), a TOML file with
//! any subset of fields, then command-line overrides. An override names a field by its
//! dotted path (`model.vwn.n`) or by its last component alone when that is unambiguous
//! (`n`, `d-model`, `lr`).

use crate::config::{Arch, ModelConfig, MtpConfig, VwnConfig};
use autograd::LrSchedule;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Linear warmup, then cosine decay to `min_lr_ratio`.
    Cosine,
    /// Warmup, stable, then linear decay over the last `decay_fraction` of steps.
    Wsd,
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub lr: f64,
    pub schedule: ScheduleKind,
    pub warmup_steps: u64,
    pub min_lr_ratio: f64,
    /// WSD only: fraction of all steps spent decaying.
    pub decay_fraction: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip (0: off).
    pub grad_clip: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 3e-3,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 20,
            min_lr_ratio: 0.1,
            decay_fraction: 0.2,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
        }
    }
}

impl OptimConfig {
    pub fn schedule(&self, total_steps: u64) -> LrSchedule {
        match self.schedule {
            ScheduleKind::Cosine => {
                LrSchedule::WarmupCosine { warmup: self.warmup_steps, total: total_steps, min_ratio: self.min_lr_ratio }
            }
            ScheduleKind::Wsd => LrSchedule::WarmupStableDecay {
                warmup: self.warmup_steps,
                total: total_steps,
                decay: (total_steps as f64 * self.decay_fraction).round() as u64,
                min_ratio: self.min_lr_ratio,
            },
            ScheduleKind::Constant => LrSchedule::Constant,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub optim: OptimConfig,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Tokens per sequence (the model's `max_seq_len` follows it).
    pub seq_len: usize,
    /// Optimizer steps; 0 means "derive from `tokens`".
    pub steps: u64,
    /// Token budget, used when `steps` is 0.
    pub tokens: u64,
    pub eval_interval: u64,
    /// Validation batches per evaluation.
    pub eval_batches: usize,
    pub log_interval: u64,
    pub checkpoint_interval: u64,
    pub seed: u64,
    /// `cpu` or `gpu` (the wgpu backend; the binary picks the adapter).
    pub device: String,
    pub out_dir: String,
    /// Where the tokenizer and token shards of the default corpus are cached.
    pub cache_dir: String,
    /// Tokens to generate for the sample printed at the end (0: none).
    pub sample_tokens: usize,
    pub sample_prompt: String,
    /// Peak FLOP/s of the device, for MFU (230 GFLOP/s: 2 Zen 4 cores in fp32).
    pub peak_gflops: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        preset("default").expect("the default preset exists")
    }
}

/// Names of the built-in presets.
pub const PRESETS: [&str; 3] = ["tiny", "small", "default"];

/// A built-in configuration.
pub fn preset(name: &str) -> Result<TrainConfig, String> {
    let base = |model: ModelConfig| TrainConfig {
        model,
        optim: OptimConfig::default(),
        batch_size: 16,
        grad_accum: 1,
        seq_len: 256,
        steps: 0,
        tokens: 0,
        eval_interval: 100,
        eval_batches: 16,
        log_interval: 1,
        checkpoint_interval: 200,
        seed: 1234,
        device: "cpu".into(),
        out_dir: "runs/default".into(),
        cache_dir: "runs/cache".into(),
        sample_tokens: 120,
        sample_prompt: "The history of".into(),
        peak_gflops: 230.0,
    };
    let vwn = |m, n| VwnConfig { m, n, ..VwnConfig::default() };
    match name {
        "tiny" => Ok(TrainConfig {
            batch_size: 4,
            seq_len: 32,
            steps: 30,
            eval_interval: 10,
            eval_batches: 2,
            checkpoint_interval: 10,
            out_dir: "runs/tiny".into(),
            sample_tokens: 16,
            optim: OptimConfig { warmup_steps: 5, ..OptimConfig::default() },
            ..base(ModelConfig {
                vocab_size: 512,
                d_model: 32,
                n_layers: 2,
                n_heads: 2,
                n_kv_heads: 2,
                ffn_hidden: 88,
                vwn: vwn(2, 4),
                mtp: MtpConfig { enabled: true, ..MtpConfig::default() },
                ..ModelConfig::default()
            })
        }),
        "small" => Ok(TrainConfig {
            batch_size: 8,
            seq_len: 128,
            steps: 300,
            eval_interval: 50,
            eval_batches: 8,
            out_dir: "runs/small".into(),
            ..base(ModelConfig {
                vocab_size: 4096,
                d_model: 128,
                n_layers: 2,
                n_heads: 4,
                n_kv_heads: 4,
                ffn_hidden: 344,
                vwn: vwn(2, 4),
                ..ModelConfig::default()
            })
        }),
        "default" => Ok(TrainConfig { steps: 250, ..base(ModelConfig { arch: Arch::Vwn, ..ModelConfig::default() }) }),
        other => Err(format!("unknown preset {other:?}; presets are {}", PRESETS.join(", "))),
    }
}

impl TrainConfig {
    /// Windows (sequences) per optimizer step.
    pub fn windows_per_step(&self) -> u64 {
        (self.batch_size * self.grad_accum) as u64
    }

    /// Optimizer steps of the run.
    pub fn total_steps(&self) -> u64 {
        if self.steps > 0 {
            self.steps
        } else {
            self.tokens.div_ceil(self.windows_per_step() * self.seq_len as u64)
        }
    }

    /// Checks the run settings and the model; ties `model.max_seq_len` to `seq_len`.
    pub fn validate(&mut self) -> Result<(), String> {
        let positive = [
            ("batch_size", self.batch_size as u64),
            ("grad_accum", self.grad_accum as u64),
            ("seq_len", self.seq_len as u64),
            ("eval_interval", self.eval_interval),
            ("log_interval", self.log_interval),
            ("checkpoint_interval", self.checkpoint_interval),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if self.steps == 0 && self.tokens == 0 {
            return Err("set steps or a token budget (tokens)".into());
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return Err(format!("optim.lr must be positive, got {}", self.optim.lr));
        }
        if !(0.0..1.0).contains(&self.optim.beta1) || !(0.0..1.0).contains(&self.optim.beta2) {
            return Err("optim.beta1 and optim.beta2 must lie in [0, 1)".into());
        }
        if self.device != "cpu" && self.device != "gpu" {
            return Err(format!("device {:?} is not available: \"cpu\" or \"gpu\"", self.device));
        }
        self.model.max_seq_len = self.seq_len;
        self.model.validate().map_err(|e| e.to_string())
    }

    /// Applies a partial configuration (e.g. a parsed TOML file) on top of this one.
    pub fn merge(&self, partial: Value) -> Result<TrainConfig, String> {
        let mut base = serde_json::to_value(self).expect("configs serialise");
        deep_merge(&mut base, partial);
        serde_json::from_value(base).map_err(|e| format!("invalid configuration: {e}"))
    }

    /// Parses a TOML file's text and applies it.
    pub fn merge_toml(&self, text: &str) -> Result<TrainConfig, String> {
        let value: toml::Value = toml::from_str(text).map_err(|e| format!("invalid TOML: {e}"))?;
        self.merge(serde_json::to_value(value).expect("TOML values convert to JSON"))
    }

    /// Sets one field by (dotted or unambiguous short) name; the value is read as JSON
    /// when it parses as such (numbers, booleans), else as a string.
    pub fn set(&self, key: &str, value: &str) -> Result<TrainConfig, String> {
        let key = key.replace('-', "_");
        let mut tree = serde_json::to_value(self).expect("configs serialise");
        let path = resolve_key(&tree, &key)?;
        let slot = path.iter().try_fold(&mut tree, |node, k| node.get_mut(k)).expect("resolved paths exist");
        *slot = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        serde_json::from_value(tree).map_err(|e| format!("--{key} {value}: {e}"))
    }
}

fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// All dotted paths of leaves (non-object values) in `tree`.
fn leaf_paths(tree: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(k.clone());
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn resolve_key(tree: &Value, key: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    leaf_paths(tree, &mut Vec::new(), &mut paths);
    let wanted: Vec<&str> = key.split('.').collect();
    let matches: Vec<&Vec<String>> =
        paths.iter().filter(|p| p.len() >= wanted.len() && p[p.len() - wanted.len()..] == wanted[..]).collect();
    match matches.as_slice() {
        [one] => Ok(one.to_vec()),
        [] => Err(format!(
            "unknown setting --{}; settings are: {}",
            key.replace('_', "-"),
            paths.iter().map(|p| p.join(".")).collect::<Vec<_>>().join(", ")
        )),
        many => {
            Err(format!("--{key} is ambiguous: {}", many.iter().map(|p| p.join(".")).collect::<Vec<_>>().join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_by_short_and_dotted_names() {
        let c = preset("default").unwrap();
        let c = c.set("d-model", "512").unwrap().set("n", "16").unwrap().set("arch", "baseline").unwrap();
        let c = c.set("mtp.enabled", "false").unwrap().set("lr", "0.001").unwrap();
        assert_eq!(
            (c.model.d_model, c.model.vwn.n, c.model.arch, c.model.mtp.enabled),
            (512, 16, Arch::Baseline, false)
        );
        assert_eq!(c.optim.lr, 0.001);
        assert!(c.set("bogus", "1").unwrap_err().contains("unknown setting"));
        assert!(c.set("d-model", "wide").is_err());
    }

    #[test]
    fn toml_files_merge_onto_presets() {
        let c = preset("tiny").unwrap().merge_toml("steps = 7\n[model.vwn]\nm = 4\nn = 12\n").unwrap();
        assert_eq!((c.steps, c.model.vwn.m, c.model.vwn.n, c.model.d_model), (7, 4, 12, 32));
        assert!(preset("tiny").unwrap().merge_toml("[model]\nwidth = 3\n").unwrap_err().contains("unknown field"));
        assert!(preset("huge").unwrap_err().contains("unknown preset"));
    }

    #[test]
    fn validation_reports_bad_values() {
        let mut c = preset("tiny").unwrap().set("n", "1").unwrap();
        assert!(c.validate().unwrap_err().contains("at least vwn.m"));
        let mut c = preset("tiny").unwrap().set("device", "tpu").unwrap();
        assert!(c.validate().unwrap_err().contains("tpu"));
        let mut c = preset("tiny").unwrap().set("batch-size", "0").unwrap();
        assert!(c.validate().unwrap_err().contains("batch_size"));
    }
}
