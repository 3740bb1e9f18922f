//! Checkpoints: a folder with `model.safetensors` (weights by parameter name),
//! `optimizer.safetensors` (AdamW moments as `<name>.exp_avg` / `<name>.exp_avg_sq`),
//! `config.json`, `state.json` (whatever the trainer needs to resume exactly) and any
//! extra files the caller adds (the trainer adds `tokenizer.json`).
//!
//! A checkpoint is written to `<dir>.tmp`, every file fsynced, then swapped in by
//! renames: an interruption at any point leaves either the old or the new checkpoint
//! complete (`<dir>.prev` is used if the crash fell between the two renames).

use crate::safetensors::{self, HostTensor, SafetensorsError};
use autograd::{AdamState, AdamW, Param};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use tensor::{Backend, Tensor};

const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const CONFIG_FILE: &str = "config.json";
const STATE_FILE: &str = "state.json";

#[derive(Debug)]
pub enum CheckpointError {
    Io(PathBuf, std::io::Error),
    Format(PathBuf, String),
    /// The checkpoint does not fit the model being restored.
    Mismatch(String),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CheckpointError::Format(p, m) => write!(f, "{}: {m}", p.display()),
            CheckpointError::Mismatch(m) => write!(f, "checkpoint does not match the model: {m}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

fn io_err(p: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |e| CheckpointError::Io(p.to_path_buf(), e)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io_err(path))
}

fn host<B: Backend>(t: &Tensor<B>) -> HostTensor {
    HostTensor { shape: t.shape().to_vec(), data: t.to_f64_vec().into_iter().map(|x| x as f32).collect() }
}

fn device<B: Backend>(t: &HostTensor, backend: &B) -> Tensor<B> {
    let data: Vec<f64> = t.data.iter().map(|&x| x as f64).collect();
    Tensor::from_f64(&data, &t.shape, backend)
}

/// Weights as a name → host tensor map.
pub fn weights_to_host<B: Backend>(params: &[&Param<B>]) -> BTreeMap<String, HostTensor> {
    params.iter().map(|p| (p.name().to_string(), host(&p.value()))).collect()
}

/// Loads weights by name; every parameter must be present with its shape.
pub fn load_weights<B: Backend>(
    params: &[&Param<B>],
    tensors: &BTreeMap<String, HostTensor>,
) -> Result<(), CheckpointError> {
    for p in params {
        let t = tensors
            .get(p.name())
            .ok_or_else(|| CheckpointError::Mismatch(format!("no tensor for parameter {}", p.name())))?;
        if t.shape != p.shape() {
            return Err(CheckpointError::Mismatch(format!(
                "{}: shape {:?} in the file, {:?} in the model",
                p.name(),
                t.shape,
                p.shape()
            )));
        }
        let backend = p.value().backend().clone();
        p.set_value(device(t, &backend));
    }
    if tensors.len() != params.len() {
        let known: std::collections::HashSet<&str> = params.iter().map(|p| p.name()).collect();
        let extra: Vec<&String> = tensors.keys().filter(|k| !known.contains(k.as_str())).collect();
        return Err(CheckpointError::Mismatch(format!("tensors not in the model: {extra:?}")));
    }
    Ok(())
}

fn read_safetensors(path: &Path) -> Result<safetensors::Parsed, CheckpointError> {
    safetensors::read(path).map_err(|e| match e {
        SafetensorsError::Io(io) => CheckpointError::Io(path.to_path_buf(), io),
        SafetensorsError::Format(m) => CheckpointError::Format(path.to_path_buf(), m),
    })
}

/// Writes a complete checkpoint to `dir` atomically.
pub fn save<B: Backend>(
    dir: &Path,
    params: &[&Param<B>],
    optimizer: &AdamW<B>,
    config: &serde_json::Value,
    state: &serde_json::Value,
    extra_files: &[(&str, &[u8])],
) -> Result<(), CheckpointError> {
    let tmp = dir.with_extension("tmp");
    let prev = dir.with_extension("prev");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    write_synced(&tmp.join(MODEL_FILE), &safetensors::to_bytes(&weights_to_host(params), &meta))?;
    let (moments, step) = optimizer.state();
    let mut opt = BTreeMap::new();
    for (name, s) in moments {
        opt.insert(format!("{name}.exp_avg"), host(&s.m));
        opt.insert(format!("{name}.exp_avg_sq"), host(&s.v));
    }
    let opt_meta: BTreeMap<String, String> = [("step".to_string(), step.to_string())].into();
    write_synced(&tmp.join(OPTIMIZER_FILE), &safetensors::to_bytes(&opt, &opt_meta))?;
    let pretty = |v: &serde_json::Value| serde_json::to_vec_pretty(v).expect("json values serialise");
    write_synced(&tmp.join(CONFIG_FILE), &pretty(config))?;
    write_synced(&tmp.join(STATE_FILE), &pretty(state))?;
    for (name, bytes) in extra_files {
        write_synced(&tmp.join(name), bytes)?;
    }
    if let Ok(d) = File::open(&tmp) {
        let _ = d.sync_all(); // the directory entries themselves (best effort: not every OS allows it)
    }
    if dir.exists() {
        if prev.exists() {
            fs::remove_dir_all(&prev).map_err(io_err(&prev))?;
        }
        fs::rename(dir, &prev).map_err(io_err(dir))?;
    }
    fs::rename(&tmp, dir).map_err(io_err(&tmp))?;
    if prev.exists() {
        fs::remove_dir_all(&prev).map_err(io_err(&prev))?;
    }
    Ok(())
}

/// The folder to load from: `dir`, or `<dir>.prev` when a save was cut off between its
/// two renames.
pub fn resolve(dir: &Path) -> Option<PathBuf> {
    let prev = dir.with_extension("prev");
    [dir.to_path_buf(), prev].into_iter().find(|d| d.join(STATE_FILE).exists())
}

/// The saved config and state of a checkpoint, without loading tensors.
pub fn read_json(dir: &Path) -> Result<(serde_json::Value, serde_json::Value), CheckpointError> {
    let read = |name: &str| {
        let p = dir.join(name);
        let text = fs::read_to_string(&p).map_err(io_err(&p))?;
        serde_json::from_str(&text).map_err(|e| CheckpointError::Format(p.clone(), e.to_string()))
    };
    Ok((read(CONFIG_FILE)?, read(STATE_FILE)?))
}

/// Restores weights and optimizer state saved by [`save`].
pub fn load<B: Backend>(dir: &Path, params: &[&Param<B>], optimizer: &mut AdamW<B>) -> Result<(), CheckpointError> {
    let (weights, _) = read_safetensors(&dir.join(MODEL_FILE))?;
    load_weights(params, &weights)?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let (moments, meta) = read_safetensors(&opt_path)?;
    let step: u64 = meta
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CheckpointError::Format(opt_path.clone(), "no optimizer step in the metadata".into()))?;
    let mut state = HashMap::new();
    for p in params {
        let (m, v) = (moments.get(&format!("{}.exp_avg", p.name())), moments.get(&format!("{}.exp_avg_sq", p.name())));
        match (m, v) {
            (Some(m), Some(v)) => {
                let b = p.value().backend().clone();
                state.insert(p.name().to_string(), AdamState { m: device(m, &b), v: device(v, &b) });
            }
            (None, None) => {} // never updated (no gradient reached it yet)
            _ => return Err(CheckpointError::Format(opt_path.clone(), format!("incomplete moments for {}", p.name()))),
        }
    }
    optimizer.load_state(state, step);
    Ok(())
}

/// Loads only the weights of a checkpoint (for sampling and evaluation).
pub fn load_weights_from<B: Backend>(dir: &Path, params: &[&Param<B>]) -> Result<(), CheckpointError> {
    load_weights(params, &read_safetensors(&dir.join(MODEL_FILE))?.0)
}
