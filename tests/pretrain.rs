//! End-to-end tests of the training loop and the `pretrain` binary on the embedded
//! corpus (tiny configurations; the corpus preparation is cached across tests).

use model::checkpoint;
use model::train_config::{preset, TrainConfig};
use model::trainer::{train, Observer, StepMetrics};
use model::Model;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use tensor::Cpu;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn cache_dir() -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus-cache").to_string_lossy().into_owned()
}

fn tiny(out: &Path) -> TrainConfig {
    let mut c = preset("tiny").unwrap();
    c.out_dir = out.to_string_lossy().into_owned();
    c.cache_dir = cache_dir();
    c.sample_tokens = 8;
    c
}

/// Stops the run after `stop_at` steps (as Ctrl-C would).
struct StopAt(u64);
impl Observer for StopAt {
    fn step(&mut self, m: &StepMetrics, _: u64) -> bool {
        m.step < self.0
    }
}
struct Quiet;
impl Observer for Quiet {}

/// `(step, loss)` of every logged step.
fn losses(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn tiny_pretraining_lowers_the_loss() {
    let out = scratch("lowers");
    let mut cfg = tiny(&out);
    cfg.steps = 40;
    cfg.eval_interval = 40;
    let summary = train(cfg, None, &Cpu::<f32>::new(), &AtomicBool::new(false), &mut Quiet).unwrap();
    let val = summary.final_eval.expect("an evaluation at the end").val_loss;
    // A model at initialisation scores about ln(vocab) = ln 512 ≈ 6.24.
    assert!(val < 512f64.ln() - 0.4, "validation loss {val} did not fall far below the uniform baseline");
    assert!(summary.sample.is_some());
    for f in ["metrics.jsonl", "loss.svg", "config.json", "checkpoint/model.safetensors", "checkpoint/tokenizer.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}

#[test]
fn stop_and_resume_reproduces_the_uninterrupted_losses_bit_for_bit() {
    let (a, b) = (scratch("uninterrupted"), scratch("resumed"));
    let backend = Cpu::<f32>::new();
    let never = AtomicBool::new(false);
    let mut cfg = tiny(&a);
    cfg.steps = 12;
    cfg.sample_tokens = 0;
    train(cfg.clone(), None, &backend, &never, &mut Quiet).unwrap();
    let mut cfg_b = cfg.clone();
    cfg_b.out_dir = b.to_string_lossy().into_owned();
    let stopped = train(cfg_b.clone(), None, &backend, &never, &mut StopAt(5)).unwrap();
    assert!(stopped.interrupted && stopped.steps_done == 5);
    let resumed = train(cfg_b, Some(&b.join("checkpoint")), &backend, &never, &mut Quiet).unwrap();
    assert_eq!(resumed.steps_done, 12);
    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la.len(), 12);
    assert_eq!(la, lb, "losses after resuming differ from the uninterrupted run");
}

#[test]
fn checkpoint_round_trip_restores_every_weight() {
    let out = scratch("roundtrip");
    let mut cfg = tiny(&out);
    cfg.steps = 2;
    cfg.sample_tokens = 0;
    train(cfg.clone(), None, &Cpu::<f32>::new(), &AtomicBool::new(false), &mut Quiet).unwrap();
    let dir = out.join("checkpoint");
    let (config, _) = checkpoint::read_json(&dir).unwrap();
    let saved: TrainConfig = serde_json::from_value(config).unwrap();
    let fresh = Model::new(&saved.model, 999, &Cpu::<f32>::new()).unwrap();
    checkpoint::load_weights_from(&dir, &fresh.params()).unwrap();
    let reloaded = Model::new(&saved.model, 42, &Cpu::<f32>::new()).unwrap();
    checkpoint::load_weights_from(&dir, &reloaded.params()).unwrap();
    for (p, q) in fresh.params().iter().zip(reloaded.params()) {
        assert_eq!(p.value().to_vec(), q.value().to_vec(), "{}", p.name());
    }
    // A truncated weights file is refused with a clear error.
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::load_weights_from(&dir, &fresh.params()).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

fn pretrain(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pretrain")).args(args).output().expect("pretrain runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_binary_trains_and_rejects_bad_settings_clearly() {
    let out = scratch("binary");
    let (out_s, cache) = (out.to_string_lossy().into_owned(), cache_dir());
    let (ok, stdout, stderr) =
        pretrain(&["--preset", "tiny", "--steps", "3", "--out-dir", &out_s, "--cache-dir", &cache]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("final validation loss"), "{stdout}");
    let (ok, stdout, stderr) = pretrain(&["eval", "--checkpoint", &out_s, "--data", "data/corpus/ATTRIBUTION.md"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("bits/byte"), "{stdout}");
    let sample = Command::new(env!("CARGO_BIN_EXE_sample"))
        .args(["--checkpoint", &out_s, "--prompt", "The", "--max-tokens", "5", "--temperature", "0"])
        .output()
        .unwrap();
    assert!(sample.status.success(), "{}", String::from_utf8_lossy(&sample.stderr));
    assert!(String::from_utf8_lossy(&sample.stdout).starts_with("The"));
    for (args, expect) in [
        (vec!["--preset", "tiny", "--n", "1"], "must be at least vwn.m"),
        (vec!["--preset", "tiny", "--d-model", "36", "--m", "8", "--n", "16"], "not divisible by vwn.m"),
        (vec!["--preset", "huge"], "unknown preset"),
        (vec!["--preset", "tiny", "--widht", "3"], "unknown setting --widht"),
        (vec!["--preset", "tiny", "--lr", "fast"], "lr"),
    ] {
        let (ok, _, stderr) = pretrain(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

/// `--profile` reports every phase's matmuls with their throughput, the time outside the
/// ops, and allocations, over the steps after the warm-up.
#[test]
fn profile_reports_time_per_op_and_allocations() {
    let out = scratch("profile");
    let (out_s, cache) = (out.to_string_lossy().into_owned(), cache_dir());
    let (ok, stdout, stderr) =
        pretrain(&["--preset", "tiny", "--steps", "5", "--profile", "--out-dir", &out_s, "--cache-dir", &cache]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("profile over 3 steps after 2 warm-up"), "{stdout}");
    assert!(stdout.contains("allocations per step"), "{stdout}");
    for phase in ["forward", "backward", "optimizer"] {
        let row = stdout.lines().find(|l| l.starts_with(phase)).unwrap_or_else(|| panic!("no {phase} row: {stdout}"));
        assert!(row.split_whitespace().count() >= 5, "{row}");
    }
    let matmul = stdout.lines().find(|l| l.starts_with("forward") && l.contains("matmul")).expect("forward matmul row");
    let gflops: f64 = matmul.split_whitespace().last().unwrap().parse().expect("GFLOP/s column");
    assert!(gflops > 0.0, "{matmul}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_message_and_keeps_the_last_checkpoint() {
    let out = scratch("diverge");
    let mut cfg = tiny(&out);
    cfg.steps = 20;
    cfg.checkpoint_interval = 1;
    cfg.optim.lr = 1e30; // the first update overflows the weights
    cfg.optim.warmup_steps = 0;
    cfg.optim.grad_clip = 0.0;
    let err = train(cfg, None, &Cpu::<f32>::new(), &AtomicBool::new(false), &mut Quiet).unwrap_err().to_string();
    assert!(err.contains(" became "), "{err}");
    assert!(err.contains("last good checkpoint"), "{err}");
    let (_, state) = checkpoint::read_json(&out.join("checkpoint")).unwrap();
    assert!(state["step"].as_u64().unwrap() >= 1);
    let (weights, _) = model::safetensors::read(&out.join("checkpoint/model.safetensors")).unwrap();
    assert!(
        weights.values().all(|t| t.data.iter().all(|x| x.is_finite())),
        "a checkpoint with non-finite weights was kept"
    );
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let out = scratch("sigint");
    let out_s = out.to_string_lossy().into_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_pretrain"))
        .args(["--preset", "tiny", "--steps", "1000000", "--out-dir", &out_s, "--cache-dir", &cache_dir()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way, then interrupt it as a terminal would.
    let metrics = out.join("metrics.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(&metrics).map_or(true, |s| s.lines().count() < 3) {
        assert!(std::time::Instant::now() < deadline, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("resume with"), "{stderr}");
    let (_, state) = checkpoint::read_json(&out.join("checkpoint")).unwrap();
    assert!(state["step"].as_u64().unwrap() >= 3);
}
