//! `pretrain`: train a Virtual Width Network (or baseline GPT) on the embedded default
//! corpus; `pretrain eval`: score a checkpoint on any text; `pretrain plot`: redraw a
//! run's loss curve.

use autograd::no_grad;
use data::readers::Source;
use model::checkpoint;
use model::eval::evaluate_documents;
use model::train_config::{preset, TrainConfig, PRESETS};
use model::trainer::{load_trained, train, write_plot, RunFiles, Trained};
use model::Model;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tensor::profile::Profiled;
use tensor::Cpu;
use vwn::cli::{Args, Device};
use vwn::profiling::{CountingAlloc, ProfileObserver};
use vwn::progress::ProgressLine;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Steps left out of `--profile`'s figures (one-off costs of the first steps).
const PROFILE_WARMUP_STEPS: u64 = 2;

const USAGE: &str = "\
Usage:
  pretrain [--preset tiny|small|default] [--config FILE.toml] [--resume RUN_OR_CHECKPOINT_DIR]
           [--device cpu|gpu] [--adapter NAME|INDEX] [--profile] [--SETTING VALUE]...
  pretrain eval --checkpoint DIR --data FILE_OR_DIR [--text-field text] [--dump FILE.jsonl] [--batch 8]
  pretrain plot --run DIR
  pretrain compare RUN_DIR... [--plot FILE.svg]      (a markdown table of finished runs, and their curves)

Every configuration field is a setting: give its dotted path (--model.vwn.n 8) or its last
component when unambiguous (--n 8, --d-model 512, --lr 3e-3, --arch baseline, --steps 100,
--mtp.enabled false, --out-dir runs/x). `pretrain --print-config` shows all of them.
--profile prints time per op kind (forward, backward, optimizer), allocations per step and peak RSS
at the end (try it with --steps 12).";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = Args::parse(std::env::args().skip(1), &["help", "print-config", "profile"])?;
    if args.has("help") {
        println!("{USAGE}");
        return Ok(());
    }
    match args.positional.first().map(String::as_str) {
        None => pretrain(args),
        Some("eval") => eval(&mut args),
        Some("plot") => {
            let dir = args.take("run").ok_or("plot needs --run DIR")?;
            args.finish()?;
            let files = RunFiles { dir: PathBuf::from(&dir) };
            write_plot(&files, &dir).map_err(|e| e.to_string())?;
            println!("{}", files.plot().display());
            Ok(())
        }
        Some("compare") => compare(&mut args),
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
}

/// Preset, then config file, then per-setting overrides.
fn build_config(args: &mut Args, resume_config: Option<TrainConfig>) -> Result<TrainConfig, String> {
    let preset_name = args.take("preset");
    let mut cfg = match (resume_config, preset_name) {
        (Some(_), Some(_)) => {
            return Err("--resume continues the checkpoint's configuration; --preset cannot change it".into())
        }
        (Some(c), None) => c,
        (None, name) => preset(name.as_deref().unwrap_or("default"))
            .map_err(|e| format!("{e} (presets: {})", PRESETS.join(", ")))?,
    };
    if let Some(path) = args.take("config") {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        cfg = cfg.merge_toml(&text).map_err(|e| format!("{path}: {e}"))?;
    }
    for (k, v) in std::mem::take(&mut args.options) {
        cfg = cfg.set(&k, &v)?;
    }
    Ok(cfg)
}

fn pretrain(mut args: Args) -> Result<(), String> {
    let resume = args.take("resume").map(PathBuf::from);
    let checkpoint_dir = resume.as_ref().map(|d| {
        // Accept the run folder or the checkpoint folder itself.
        let inner = d.join("checkpoint");
        if checkpoint::resolve(&inner).is_some() {
            inner
        } else {
            d.clone()
        }
    });
    let resume_config = match &checkpoint_dir {
        Some(d) => {
            let dir = checkpoint::resolve(d).ok_or_else(|| format!("no checkpoint in {}", d.display()))?;
            let (config, _) = checkpoint::read_json(&dir).map_err(|e| e.to_string())?;
            Some(serde_json::from_value(config).map_err(|e| format!("{}: config.json: {e}", dir.display()))?)
        }
        None => None,
    };
    let adapter = args.take("adapter");
    let cfg = build_config(&mut args, resume_config)?;
    if args.has("print-config") {
        println!("{}", toml_like(&serde_json::to_value(&cfg).expect("serialises"), ""));
        return Ok(());
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130); // a second Ctrl-C: stop at once
        }
        eprintln!("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to quit at once)");
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    let mut progress = ProgressLine::new(cfg.log_interval.max(10));
    let resume = checkpoint_dir.as_deref();
    let profile = args.has("profile");
    let summary = match Device::new(&cfg.device, adapter)? {
        Device::Cpu if profile => {
            let backend = Profiled::new(Cpu::<f32>::new());
            let mut observer = ProfileObserver::new(&mut progress, backend.clone(), PROFILE_WARMUP_STEPS);
            let summary = train(cfg, resume, &backend, &interrupt, &mut observer);
            eprintln!();
            println!("{}", observer.report());
            summary
        }
        Device::Cpu => train(cfg, resume, &Cpu::<f32>::new(), &interrupt, &mut progress),
        // GPU work is queued and runs asynchronously: host-side timings per op would
        // measure recording, not execution.
        Device::Gpu { .. } if profile => return Err("--profile times the CPU backend only (--device cpu)".into()),
        Device::Gpu { adapter } => {
            train(cfg, resume, &Device::open_gpu(adapter.as_deref())?, &interrupt, &mut progress)
        }
    }
    .map_err(|e| e.to_string())?;
    eprintln!();
    if summary.interrupted {
        eprintln!(
            "stopped at step {}; resume with: pretrain --resume {}",
            summary.steps_done,
            summary.out_dir.display()
        );
        return Ok(());
    }
    if let Some(m) = &summary.last_step {
        println!("trained {} steps, {} tokens in {:.1} s", m.step, m.tokens, m.elapsed_s);
    }
    if let Some(e) = &summary.final_eval {
        let next2 = e.val_loss_next2.map_or(String::new(), |l| format!(", next-2 {l:.4}"));
        println!("final validation loss {:.4} (perplexity {:.1}){next2}", e.val_loss, e.val_ppl);
    }
    println!("run folder: {} (metrics.jsonl, loss.svg, checkpoint/)", summary.out_dir.display());
    if let Some(s) = &summary.sample {
        println!("\nsample:\n{s}");
    }
    Ok(())
}

/// Renders the config tree as `path = value` lines (for --print-config).
fn toml_like(v: &serde_json::Value, prefix: &str) -> String {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| toml_like(v, &if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{prefix} = {other}"),
    }
}

fn eval(args: &mut Args) -> Result<(), String> {
    let dir = PathBuf::from(args.take("checkpoint").ok_or("eval needs --checkpoint DIR")?);
    let data_path = args.take("data").ok_or("eval needs --data FILE")?;
    let text_field = args.take("text-field").unwrap_or_else(|| "text".into());
    let dump = args.take("dump");
    let batch = args.take_parsed::<usize>("batch")?.unwrap_or(8);
    args.finish()?;
    let Trained { config: cfg, tokenizer, model, .. } =
        load_trained(&dir, &Cpu::<f32>::new()).map_err(|e| e.to_string())?;
    let source = read_source(Path::new(&data_path), &text_field);
    let (docs, report) = source.read_all().map_err(|e| e.to_string())?;
    if report.total_skipped() > 0 {
        eprintln!("skipped {} records of {data_path} (see the reasons below)\n{report:?}", report.total_skipped());
    }
    let texts: Vec<String> = docs.into_iter().map(|d| d.text).collect();
    let r = no_grad(|| evaluate_documents(&model, &tokenizer, &texts, cfg.seq_len, batch));
    println!(
        "{} documents, {} tokens, {} bytes: mean loss {:.4} nats/token, perplexity {:.2}, {:.4} bits/byte",
        r.documents, r.tokens, r.bytes, r.mean_loss, r.perplexity, r.bits_per_byte
    );
    if let Some(path) = dump {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?);
        for (i, d) in r.per_document.iter().enumerate() {
            let line = serde_json::json!({ "doc": i, "tokens": d.tokens, "losses": d.losses });
            writeln!(f, "{line}").map_err(|e| format!("{path}: {e}"))?;
        }
        f.flush().map_err(|e| format!("{path}: {e}"))?;
        println!("per-token losses → {path}");
    }
    Ok(())
}

/// JSONL (by extension) or plain text files.
fn read_source(path: &Path, text_field: &str) -> Source {
    let name = path.to_string_lossy();
    if name.ends_with(".jsonl") || name.ends_with(".jsonl.zst") {
        Source::Jsonl { path: path.to_path_buf(), text_field: text_field.into(), id_field: "id".into() }
    } else if name.ends_with(".parquet") {
        Source::Parquet { path: path.to_path_buf(), text_column: text_field.into(), id_column: None }
    } else {
        Source::Text { path: path.to_path_buf() }
    }
}

/// One finished run, summarised from its folder.
struct RunRow {
    name: String,
    cfg: TrainConfig,
    counts: model::ParamCounts,
    val: Option<f64>,
    val2: Option<f64>,
    tokens: u64,
    median_tok_s: f64,
    curve: Vec<(f64, f64)>,
}

fn summarize(dir: &Path) -> Result<RunRow, String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
    let cfg: TrainConfig =
        serde_json::from_str(&read("config.json")?).map_err(|e| format!("{}: {e}", dir.display()))?;
    let model = Model::new(&cfg.model, 0, &Cpu::<f32>::new()).map_err(|e| e.to_string())?;
    let (mut val, mut val2, mut tokens, mut rates, mut curve) = (None, None, 0, Vec::new(), Vec::new());
    for v in read("metrics.jsonl")?.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        if let Some(l) = v["val_loss"].as_f64() {
            val = Some(l);
            val2 = v["val_loss_next2"].as_f64();
            curve.push((tokens as f64, l));
        }
        if let Some(t) = v["tokens"].as_u64() {
            tokens = t;
            rates.push(v["tokens_per_s"].as_f64().unwrap_or(0.0));
        }
    }
    rates.sort_by(f64::total_cmp);
    let median_tok_s = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(RunRow { name, counts: model.param_counts(), cfg, val, val2, tokens, median_tok_s, curve })
}

fn compare(args: &mut Args) -> Result<(), String> {
    let plot = args.take("plot");
    args.finish()?;
    let dirs = &args.positional[1..];
    if dirs.is_empty() {
        return Err("compare needs run folders".into());
    }
    let rows: Vec<RunRow> = dirs.iter().map(|d| summarize(Path::new(d))).collect::<Result<_, _>>()?;
    println!("| run | arch | (m, n) | r | MTP | params (total / non-embedding) | tokens | val loss | val next-2 | tokens/s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let fmt = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.4}"));
    for r in &rows {
        let (m, n) = r.cfg.model.mn();
        println!(
            "| {} | {:?} | ({m}, {n}) | {} | {} | {:.2}M / {:.2}M | {} | {} | {} | {:.0} |",
            r.name,
            r.cfg.model.arch,
            n as f64 / m as f64,
            if r.cfg.model.mtp.enabled { format!("λ={}", r.cfg.model.mtp.lambda) } else { "off".into() },
            r.counts.total() as f64 / 1e6,
            (r.counts.total() - r.counts.embedding) as f64 / 1e6,
            r.tokens,
            fmt(r.val),
            fmt(r.val2),
            r.median_tok_s
        );
    }
    if let Some(path) = plot {
        let series: Vec<model::plot::Series> = rows
            .iter()
            .map(|r| model::plot::Series { name: &r.name, points: r.curve.clone(), markers: false })
            .collect();
        let svg = model::plot::line_chart("validation next-token loss", "tokens", "loss (nats)", &series);
        std::fs::write(&path, svg).map_err(|e| format!("{path}: {e}"))?;
        println!("\ncurves → {path}");
    }
    Ok(())
}
