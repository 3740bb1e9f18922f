//! The pretraining loop: data, model, AdamW, evaluation, metrics, checkpoints, resume.

use crate::checkpoint::{self, CheckpointError};
use crate::generate::generate;
use crate::plot::{line_chart, Series};
use crate::train_config::TrainConfig;
use crate::transformer::{Model, ParamCounts};
use autograd::{clip_scale, global_grad_norm, no_grad, AdamW, AdamWConfig, Param, Var};
use data::default_corpus::{self, PreparedCorpus};
use data::loader::{Batch, Loader, LoaderConfig, LoaderState, Order, SourceSpec, Weight};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tensor::profile::{in_phase, Phase};
use tensor::sampling::SamplingParams;
use tensor::{Backend, Rng};

#[derive(Debug)]
pub enum TrainError {
    Config(String),
    Data(data::Error),
    Checkpoint(CheckpointError),
    Io(PathBuf, std::io::Error),
    /// The loss, gradients or weights stopped being finite numbers.
    NonFinite {
        step: u64,
        loss: f64,
        last_checkpoint: Option<PathBuf>,
        what: &'static str,
    },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Config(m) => write!(f, "{m}"),
            TrainError::Data(e) => write!(f, "data: {e}"),
            TrainError::Checkpoint(e) => write!(f, "checkpoint: {e}"),
            TrainError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            TrainError::NonFinite { step, loss, last_checkpoint, what } => {
                write!(f, "the {what} became {loss} at step {step}; stopped without saving. ")?;
                match last_checkpoint {
                    Some(p) => {
                        write!(f, "The last good checkpoint is {} (resume with --resume and a lower lr).", p.display())
                    }
                    None => write!(f, "No checkpoint was written yet."),
                }
            }
        }
    }
}

impl std::error::Error for TrainError {}

impl From<data::Error> for TrainError {
    fn from(e: data::Error) -> Self {
        TrainError::Data(e)
    }
}
impl From<CheckpointError> for TrainError {
    fn from(e: CheckpointError) -> Self {
        TrainError::Checkpoint(e)
    }
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io(p.to_path_buf(), e)
}

/// The tokenizer's file name inside a checkpoint folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// What the trainer saves beside the weights to resume exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub step: u64,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
    pub loader: LoaderState,
    pub tokenizer_fingerprint: u64,
}

/// One optimizer step's figures.
#[derive(Clone, Debug, Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub loss_next: f64,
    pub loss_next2: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: u64,
    pub tokens_per_s: f64,
    pub gflops: f64,
    pub mfu: f64,
    pub elapsed_s: f64,
}

/// A validation result.
#[derive(Clone, Debug, Serialize)]
pub struct EvalMetrics {
    pub step: u64,
    pub val_loss: f64,
    pub val_loss_next2: Option<f64>,
    pub val_ppl: f64,
}

/// Things a front end (progress bar) hears about; returning `false` from `step` stops
/// the run after saving a checkpoint, as Ctrl-C does.
pub trait Observer {
    fn started(&mut self, _info: &RunInfo) {}
    fn step(&mut self, _m: &StepMetrics, _total_steps: u64) -> bool {
        true
    }
    fn evaluated(&mut self, _m: &EvalMetrics) {}
    fn checkpointed(&mut self, _dir: &Path) {}
}

/// Static facts about the run, for display.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub device: String,
    pub params: ParamCounts,
    pub total_steps: u64,
    pub start_step: u64,
    pub tokens_per_step: u64,
    pub flops_per_token: f64,
    pub corpus_note: String,
    pub train_windows: Option<u64>,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub steps_done: u64,
    pub interrupted: bool,
    pub final_eval: Option<EvalMetrics>,
    pub last_step: Option<StepMetrics>,
    pub sample: Option<String>,
    pub out_dir: PathBuf,
}

/// NaN when any weight is NaN or infinite (`0·∞ = NaN`), else 0: one device reduction
/// per parameter and a single read-back.
fn weights_check<B: Backend>(params: &[&Param<B>]) -> f64 {
    let sums: Vec<Var<B>> = params.iter().map(|p| Var::constant(p.value().mul_scalar(0.0).sum_all())).collect();
    sums.iter().skip(1).fold(sums[0].clone(), |a, b| a.add(b)).item()
}

/// Flattens a batch into (inputs, targets) of `rows × seq_len` each.
fn split_batch(b: &Batch) -> (Vec<u32>, Vec<u32>) {
    let mut inputs = Vec::with_capacity(b.rows * b.seq_len);
    let mut targets = Vec::with_capacity(b.rows * b.seq_len);
    for r in 0..b.rows {
        inputs.extend_from_slice(b.inputs(r));
        targets.extend_from_slice(b.targets(r));
    }
    (inputs, targets)
}

fn loader(
    shards: &[PathBuf],
    cfg: &TrainConfig,
    order: Order,
    budget: Option<u64>,
    tokenizer_hash: u64,
) -> Result<Loader, TrainError> {
    let spec = SourceSpec { name: "default".into(), shards: shards.to_vec(), weight: Weight::Proportion(1.0) };
    let lc = LoaderConfig {
        seq_len: cfg.seq_len,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        order,
        budget_windows: budget,
        tokenizer_hash: Some(tokenizer_hash),
    };
    Ok(Loader::new(&[spec], lc)?)
}

/// Mean next-token (and next-2) loss over up to `batches` sequential validation batches.
pub fn evaluate<B: Backend>(model: &Model<B>, val: &mut Loader, batches: usize) -> Option<(f64, Option<f64>)> {
    let (mut sum, mut sum2, mut n) = (0.0, 0.0, 0usize);
    no_grad(|| {
        for _ in 0..batches {
            let Some(b) = val.next_batch() else { break };
            let (x, y) = split_batch(&b);
            let out = model.loss(&x, &y, b.rows, b.seq_len);
            sum += out.next_token;
            sum2 += out.next2_token.unwrap_or(0.0);
            n += 1;
        }
    });
    (n > 0).then(|| (sum / n as f64, model.mtp.as_ref().map(|_| sum2 / n as f64)))
}

/// Output files of a run.
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn plot(&self) -> PathBuf {
        self.dir.join("loss.svg")
    }
}

/// Keeps only metric lines of steps ≤ `step` (after resuming from that step).
fn truncate_metrics(path: &Path, step: u64) -> Result<(), TrainError> {
    let Ok(f) = File::open(path) else { return Ok(()) };
    let kept: Vec<String> = BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    data::fsutil::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Writes the loss-curve SVG from `metrics.jsonl`.
pub fn write_plot(files: &RunFiles, title: &str) -> Result<(), TrainError> {
    let path = files.metrics();
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    let (mut train, mut train2, mut val, mut val2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(l) = v["loss_next"].as_f64() {
            train.push((step, l));
        }
        if let Some(l) = v["loss_next2"].as_f64() {
            train2.push((step, l));
        }
        if let Some(l) = v["val_loss"].as_f64() {
            val.push((step, l));
        }
        if let Some(l) = v["val_loss_next2"].as_f64() {
            val2.push((step, l));
        }
    }
    let mut series = vec![Series { name: "train next-token", points: train, markers: false }];
    if !train2.is_empty() {
        series.push(Series { name: "train next-2", points: train2, markers: false });
    }
    series.push(Series { name: "val next-token", points: val, markers: true });
    if !val2.is_empty() {
        series.push(Series { name: "val next-2", points: val2, markers: true });
    }
    let svg = line_chart(title, "step", "cross-entropy (nats)", &series);
    data::fsutil::write_atomic(&files.plot(), svg.as_bytes())?;
    Ok(())
}

/// Trains per `cfg` on the embedded default corpus, optionally resuming from a
/// checkpoint folder. `interrupt` is polled every step (Ctrl-C): when set, the run saves a
/// checkpoint and returns.
pub fn train<B: Backend>(
    mut cfg: TrainConfig,
    resume: Option<&Path>,
    backend: &B,
    interrupt: &std::sync::atomic::AtomicBool,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError> {
    cfg.validate().map_err(TrainError::Config)?;
    let files = RunFiles { dir: PathBuf::from(&cfg.out_dir) };
    fs::create_dir_all(&files.dir).map_err(io(&files.dir))?;

    let corpus: PreparedCorpus = default_corpus::prepare(&cfg.cache_dir, cfg.model.vocab_size)?;
    cfg.model.vocab_size = corpus.tokenizer.vocab_size();
    let fingerprint = corpus.tokenizer.fingerprint();
    let total_steps = cfg.total_steps();
    let mut train_loader =
        loader(&corpus.train_shards, &cfg, Order::Shuffled, Some(total_steps * cfg.windows_per_step()), fingerprint)?;

    let model = Model::new(&cfg.model, cfg.seed, backend).map_err(|e| TrainError::Config(e.to_string()))?;
    let params = model.params();
    let mut opt = AdamW::new(AdamWConfig {
        beta1: cfg.optim.beta1,
        beta2: cfg.optim.beta2,
        eps: cfg.optim.eps,
        weight_decay: cfg.optim.weight_decay,
        groups: Vec::new(),
    });
    let config_json = serde_json::to_value(&cfg).expect("configs serialise");
    let (mut step, mut tokens_seen, mut elapsed) = (0u64, 0u64, 0.0f64);
    let mut last_checkpoint = None;
    if let Some(dir) = resume {
        let dir = checkpoint::resolve(dir)
            .ok_or_else(|| TrainError::Config(format!("no checkpoint in {}", dir.display())))?;
        let (_, state) = checkpoint::read_json(&dir)?;
        let state: RunState = serde_json::from_value(state)
            .map_err(|e| TrainError::Config(format!("{}: state.json: {e}", dir.display())))?;
        if state.tokenizer_fingerprint != fingerprint {
            return Err(TrainError::Config("the checkpoint was trained with another tokenizer".into()));
        }
        checkpoint::load(&dir, &params, &mut opt)?;
        train_loader.restore(&state.loader)?;
        (step, tokens_seen, elapsed) = (state.step, state.tokens_seen, state.elapsed_s);
        truncate_metrics(&files.metrics(), step)?;
        last_checkpoint = Some(dir);
    } else if files.metrics().exists() {
        fs::remove_file(files.metrics()).map_err(io(&files.metrics()))?;
    }
    data::fsutil::write_atomic(
        &files.dir.join("config.json"),
        &serde_json::to_vec_pretty(&config_json).expect("serialises"),
    )?;
    let mut metrics_file =
        OpenOptions::new().create(true).append(true).open(files.metrics()).map_err(io(&files.metrics()))?;
    let mut log = |line: &serde_json::Value| -> Result<(), TrainError> {
        writeln!(metrics_file, "{line}").map_err(io(&files.metrics()))
    };

    let tokens_per_step = cfg.windows_per_step() * cfg.seq_len as u64;
    let flops_per_token = 3.0 * model.flops_per_token(cfg.seq_len);
    let info = RunInfo {
        device: backend.name(),
        params: model.param_counts(),
        total_steps,
        start_step: step,
        tokens_per_step,
        flops_per_token,
        corpus_note: format!(
            "default corpus: {} train / {} val shard(s), vocab {}{}",
            corpus.train_shards.len(),
            corpus.val_shards.len(),
            cfg.model.vocab_size,
            if corpus.reused { " (cached)" } else { "" }
        ),
        train_windows: train_loader.stats().first().map(|s| s.windows_per_epoch),
    };
    observer.started(&info);

    let tokenizer_json = fs::read(&corpus.tokenizer_path).map_err(io(&corpus.tokenizer_path))?;
    let save = |step: u64, tokens_seen: u64, elapsed: f64, loader: &Loader, opt: &AdamW<B>, params: &[&Param<B>]| {
        let state = RunState {
            step,
            tokens_seen,
            elapsed_s: elapsed,
            loader: loader.state(),
            tokenizer_fingerprint: fingerprint,
        };
        let dir = files.checkpoint();
        let state = serde_json::to_value(state).expect("serialises");
        checkpoint::save(&dir, params, opt, &config_json, &state, &[(TOKENIZER_FILE, &tokenizer_json)]).map(|_| dir)
    };
    let run_eval = |step: u64| -> Result<Option<EvalMetrics>, TrainError> {
        let mut val = loader(&corpus.val_shards, &cfg, Order::Sequential, None, fingerprint)?;
        Ok(evaluate(&model, &mut val, cfg.eval_batches).map(|(l, l2)| EvalMetrics {
            step,
            val_loss: l,
            val_loss_next2: l2,
            val_ppl: l.exp(),
        }))
    };

    let schedule = cfg.optim.schedule(total_steps);
    let (mut interrupted, mut last_step, mut final_eval) = (false, None, None);
    while step < total_steps {
        let t0 = Instant::now();
        let lr = schedule.lr(step, cfg.optim.lr);
        params.iter().for_each(|p| p.zero_grad());
        let (mut loss, mut loss1, mut loss2, mut micro) = (0.0, 0.0, None::<f64>, 0);
        for _ in 0..cfg.grad_accum {
            let Some(batch) = train_loader.next_batch() else { break };
            let (x, y) = split_batch(&batch);
            let out = model.loss(&x, &y, batch.rows, batch.seq_len);
            loss += out.total.item();
            loss1 += out.next_token;
            loss2 = out.next2_token.map(|v| loss2.unwrap_or(0.0) + v);
            out.total.mul_scalar(1.0 / cfg.grad_accum as f64).backward();
            micro += 1;
        }
        if micro == 0 {
            break; // the data ran out before the planned steps
        }
        let m = micro as f64;
        let loss = loss / m;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite { step, loss, last_checkpoint, what: "loss" });
        }
        let grad_norm = in_phase(Phase::Optimizer, || global_grad_norm(&params));
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite { step, loss: grad_norm, last_checkpoint, what: "gradient norm" });
        }
        let scale = if cfg.optim.grad_clip > 0.0 { clip_scale(grad_norm, cfg.optim.grad_clip) } else { 1.0 };
        // With fewer micro-batches than planned (data ran out), rescale to their mean.
        in_phase(Phase::Optimizer, || opt.step(&params, lr, scale * cfg.grad_accum as f64 / m));
        step += 1;
        let dt = t0.elapsed().as_secs_f64();
        elapsed += dt;
        let tokens = micro as u64 * cfg.batch_size as u64 * cfg.seq_len as u64;
        tokens_seen += tokens;
        let gflops = flops_per_token * tokens as f64 / dt / 1e9;
        let metrics = StepMetrics {
            step,
            loss,
            loss_next: loss1 / m,
            loss_next2: loss2.map(|v| v / m),
            lr,
            grad_norm,
            tokens: tokens_seen,
            tokens_per_s: tokens as f64 / dt,
            gflops,
            mfu: gflops / cfg.peak_gflops,
            elapsed_s: elapsed,
        };
        if step.is_multiple_of(cfg.log_interval) || step == total_steps {
            log(&serde_json::to_value(&metrics).expect("serialises"))?;
        }
        let keep_going = observer.step(&metrics, total_steps);
        last_step = Some(metrics);
        let stop = !keep_going || interrupt.load(std::sync::atomic::Ordering::Relaxed);
        if step.is_multiple_of(cfg.eval_interval) || step == total_steps {
            if let Some(e) = in_phase(Phase::Eval, || run_eval(step))? {
                log(&serde_json::to_value(&e).expect("serialises"))?;
                observer.evaluated(&e);
                final_eval = Some(e);
            }
        }
        if stop || step.is_multiple_of(cfg.checkpoint_interval) || step == total_steps {
            let check = in_phase(Phase::Checkpoint, || weights_check(&params));
            if !check.is_finite() {
                return Err(TrainError::NonFinite { step, loss: check, last_checkpoint, what: "weights" });
            }
            let dir = in_phase(Phase::Checkpoint, || save(step, tokens_seen, elapsed, &train_loader, &opt, &params))?;
            observer.checkpointed(&dir);
            last_checkpoint = Some(dir);
        }
        if stop {
            interrupted = true;
            break;
        }
    }
    write_plot(
        &files,
        &format!("{:?} d={} L={} (m,n)={:?}", cfg.model.arch, cfg.model.d_model, cfg.model.n_layers, cfg.model.mn()),
    )?;
    let sample = (!interrupted && cfg.sample_tokens > 0).then(|| {
        let prompt = corpus.tokenizer.encode(&cfg.sample_prompt);
        let prompt = if prompt.is_empty() { vec![corpus.tokenizer.eos_id().unwrap_or(0)] } else { prompt };
        let params = SamplingParams { temperature: 0.8, top_k: 40, top_p: 0.95 };
        let ids =
            generate(&model, &prompt, cfg.sample_tokens, &params, &mut Rng::seed(cfg.seed), corpus.tokenizer.eos_id());
        format!(
            "{}{}",
            cfg.sample_prompt,
            corpus.tokenizer.decode(&ids).unwrap_or_else(|e| format!("<undecodable: {e}>"))
        )
    });
    Ok(RunSummary { steps_done: step, interrupted, final_eval, last_step, sample, out_dir: files.dir })
}

/// A trained model loaded for inference: its configuration, tokenizer and weights.
pub struct Trained<B: Backend> {
    pub config: TrainConfig,
    pub tokenizer: data::Tokenizer,
    pub model: Model<B>,
    /// The checkpoint folder it came from.
    pub dir: PathBuf,
}

/// Loads the checkpoint in `path`: a run folder (its `checkpoint/`) or a checkpoint folder.
pub fn load_trained<B: Backend>(path: &Path, backend: &B) -> Result<Trained<B>, TrainError> {
    let dir = checkpoint::resolve(&path.join("checkpoint"))
        .or_else(|| checkpoint::resolve(path))
        .ok_or_else(|| TrainError::Config(format!("no checkpoint in {}", path.display())))?;
    let (config, _) = checkpoint::read_json(&dir)?;
    let config: TrainConfig = serde_json::from_value(config)
        .map_err(|e| TrainError::Config(format!("{}: config.json: {e}", dir.display())))?;
    let tokenizer = data::Tokenizer::load_hf(dir.join(TOKENIZER_FILE))?;
    let model = Model::new(&config.model, config.seed, backend).map_err(|e| TrainError::Config(e.to_string()))?;
    checkpoint::load_weights_from(&dir, &model.params())?;
    Ok(Trained { config, tokenizer, model, dir })
}
