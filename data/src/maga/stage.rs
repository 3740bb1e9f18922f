//! The driver every stage runs under: sharding, batching, atomic output, resume and rejects.
//!
//! A stage's output folder holds, per shard `sIIIIofNNNN` and batch `bBBBBBB`:
//! `rejects-<shard>-<batch>.jsonl`, then `part-<shard>-<batch>.jsonl`, each written atomically
//! (temporary file, fsync, rename), and at the end `done-<shard>.json`. A part file is the
//! batch's commit marker: on restart, batches whose part exists are skipped and the rest are
//! recomputed, so a run killed at any point (even SIGKILL) and restarted ends with every
//! input in exactly one output or reject line. Batches are cut from the input in a fixed
//! order, which `manifest-<shard>.json` pins (batch size and settings) so that a restart with
//! different settings is refused rather than silently mixed.
//!
//! Inputs are assigned to shards by a stable hash of their document id, at every stage, so a
//! document's whole lineage stays in one shard and shard `i` of a stage reads only shard `i`
//! of the stage before it: N processes or machines need no coordinator.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::hash::StableHasher;
use crate::maga::schema::Reject;

/// This process's share of the inputs: `index` of `count` (`--shard i/N`, 0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the document `docid` belongs to this shard.
    pub fn owns(&self, docid: &str) -> bool {
        let h = StableHasher::new().bytes(b"maga-shard").field(docid.as_bytes()).finish();
        h % self.count as u64 == self.index as u64
    }

    /// The tag in file names, e.g. `s0002of0008`.
    pub fn tag(&self) -> String {
        format!("s{:04}of{:04}", self.index, self.count)
    }

    fn from_tag(tag: &str) -> Option<Shard> {
        let (i, n) = tag.strip_prefix('s')?.split_once("of")?;
        Some(Shard { index: i.parse().ok()?, count: n.parse().ok()? })
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let bad = || format!("--shard {s:?}: expected i/N with 0 <= i < N (for example 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One input of a stage: a parsed record with its id and document id, or a line that could
/// not be read (already a reject, written with the batch it falls in).
pub enum Item<T> {
    Good { id: String, docid: String, value: T },
    Bad { docid: String, reject: Reject },
}

impl<T> Item<T> {
    fn docid(&self) -> &str {
        match self {
            Item::Good { docid, .. } | Item::Bad { docid, .. } => docid,
        }
    }
}

/// What processing one batch produced.
pub struct Outcome<O> {
    pub outputs: Vec<O>,
    pub rejects: Vec<Reject>,
    /// Tokens generated (or otherwise processed) for the progress line.
    pub tokens: u64,
}

impl<O> Default for Outcome<O> {
    fn default() -> Self {
        Outcome { outputs: Vec::new(), rejects: Vec::new(), tokens: 0 }
    }
}

/// Progress after one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub batches: u64,
    /// Batches found already done (resumed over), and their inputs.
    pub resumed_batches: u64,
    pub resumed_inputs: u64,
    pub inputs: u64,
    pub outputs: u64,
    pub rejects: u64,
    pub tokens: u64,
}

/// Where and how a stage writes.
#[derive(Clone, Debug)]
pub struct StageConfig {
    pub stage: &'static str,
    pub out_dir: PathBuf,
    pub shard: Shard,
    pub batch_size: usize,
    /// Everything that changes the output (prompt version, model, sampling, thresholds):
    /// recorded in the manifest; a restart with other settings is refused.
    pub settings: serde_json::Value,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct Manifest {
    stage: String,
    shard: Shard,
    batch_size: usize,
    settings: serde_json::Value,
}

fn part_path(dir: &Path, kind: &str, shard: Shard, batch: u64) -> PathBuf {
    dir.join(format!("{kind}-{}-b{batch:06}.jsonl", shard.tag()))
}

fn done_path(dir: &Path, shard: Shard) -> PathBuf {
    dir.join(format!("done-{}.json", shard.tag()))
}

fn jsonl<T: Serialize>(rows: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut out, r).expect("rows serialise");
        out.push(b'\n');
    }
    out
}

/// Writes (or checks against) the manifest of this stage and shard.
fn pin_manifest(cfg: &StageConfig) -> Result<()> {
    let path = cfg.out_dir.join(format!("manifest-{}.json", cfg.shard.tag()));
    let want = Manifest {
        stage: cfg.stage.to_string(),
        shard: cfg.shard,
        batch_size: cfg.batch_size,
        settings: cfg.settings.clone(),
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let have: Manifest = serde_json::from_str(&text).map_err(|e| Error::json(&path, e))?;
        if have != want {
            return Err(Error::Stage(format!(
                "{}: this folder holds a {} run with other settings ({}); resume with the same settings or use a new output folder",
                path.display(),
                have.stage,
                serde_json::json!({"batch_size": have.batch_size, "settings": have.settings})
            )));
        }
        return Ok(());
    }
    write_atomic(&path, serde_json::to_string_pretty(&want).expect("manifest serialises").as_bytes())
}

/// Runs a stage over `items`: owned items are cut into batches of `cfg.batch_size`, batches
/// already committed are skipped, the others go through `process` and are committed.
/// `observe` sees the running counts after every batch.
pub fn run_stage<T, O: Serialize>(
    cfg: &StageConfig,
    items: impl Iterator<Item = Result<Item<T>>>,
    mut process: impl FnMut(Vec<(String, T)>) -> Result<Outcome<O>>,
    observe: &mut dyn FnMut(&Counts),
) -> Result<Counts> {
    if cfg.batch_size == 0 {
        return Err(Error::Stage("batch size must be at least 1".into()));
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| Error::io(&cfg.out_dir, e))?;
    pin_manifest(cfg)?;
    let mut counts = Counts::default();
    let mut batch: Vec<Item<T>> = Vec::with_capacity(cfg.batch_size);
    let mut flush = |batch: &mut Vec<Item<T>>, counts: &mut Counts| -> Result<()> {
        let index = counts.batches;
        counts.batches += 1;
        counts.inputs += batch.len() as u64;
        let part = part_path(&cfg.out_dir, "part", cfg.shard, index);
        if part.exists() {
            counts.resumed_batches += 1;
            counts.resumed_inputs += batch.len() as u64;
            batch.clear();
            return Ok(());
        }
        let mut rejects = Vec::new();
        let mut good = Vec::new();
        for item in batch.drain(..) {
            match item {
                Item::Good { id, value, .. } => good.push((id, value)),
                Item::Bad { reject, .. } => rejects.push(reject),
            }
        }
        let mut out = if good.is_empty() { Outcome::default() } else { process(good)? };
        rejects.append(&mut out.rejects);
        counts.outputs += out.outputs.len() as u64;
        counts.rejects += rejects.len() as u64;
        counts.tokens += out.tokens;
        // Rejects first: the part file is the commit marker, and a rewrite of an existing
        // rejects file by a restarted run replaces it rather than adding to it.
        write_atomic(&part_path(&cfg.out_dir, "rejects", cfg.shard, index), &jsonl(&rejects))?;
        write_atomic(&part, &jsonl(&out.outputs))?;
        observe(counts);
        Ok(())
    };
    for item in items {
        let item = item?;
        if !cfg.shard.owns(item.docid()) {
            continue;
        }
        batch.push(item);
        if batch.len() == cfg.batch_size {
            flush(&mut batch, &mut counts)?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut counts)?;
    }
    let done = serde_json::to_string_pretty(&counts).expect("counts serialise");
    write_atomic(&done_path(&cfg.out_dir, cfg.shard), done.as_bytes())?;
    Ok(counts)
}

/// The committed files of `kind` ("part" or "rejects") in a stage folder, in batch order,
/// for one shard or (with `None`) for all of them.
pub fn stage_files(dir: &Path, kind: &str, shard: Option<Shard>) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let prefix = format!("{kind}-");
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(rest) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".jsonl")) else { continue };
        let Some(tag) = rest.split('-').next().and_then(Shard::from_tag) else { continue };
        if shard.is_none_or(|s| s == tag) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Checks that the stage in `dir` finished for `shard`, or for every shard of its run when
/// `shard` is `None` (stages that need the whole corpus, such as dedup).
pub fn require_finished(dir: &Path, shard: Option<Shard>) -> Result<()> {
    let unfinished = |s: Shard| {
        Error::Stage(format!(
            "{}: shard {s} has not finished (no {}); run that stage first",
            dir.display(),
            done_path(dir, s).file_name().unwrap_or_default().to_string_lossy()
        ))
    };
    if !dir.is_dir() {
        return Err(Error::Stage(format!("{}: no such stage folder; run the stage before it first", dir.display())));
    }
    match shard {
        Some(s) => done_path(dir, s).exists().then_some(()).ok_or_else(|| unfinished(s)),
        None => {
            let mut count = None;
            for f in stage_files(dir, "part", None)? {
                let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let tag = name.trim_start_matches("part-").split('-').next().and_then(Shard::from_tag);
                count = count.or(tag.map(|t| t.count));
            }
            let count = count.unwrap_or(1);
            (0..count).map(|index| Shard { index, count }).try_for_each(|s| {
                if done_path(dir, s).exists() {
                    Ok(())
                } else {
                    Err(unfinished(s))
                }
            })
        }
    }
}

/// Reads the JSONL rows of `files` in order; `id_of` gives a row's id and document id.
/// Lines that do not parse become `malformed_input` rejects of `stage`, with their
/// `file:line` location as document id (so they are sharded and resumed like any input).
pub fn read_rows<'a, T: DeserializeOwned + 'a>(
    stage: &'a str,
    files: Vec<PathBuf>,
    id_of: impl Fn(&T) -> (String, String) + 'a,
) -> impl Iterator<Item = Result<Item<T>>> + 'a {
    let id_of = std::rc::Rc::new(id_of);
    files.into_iter().flat_map(move |path| -> Box<dyn Iterator<Item = Result<Item<T>>> + 'a> {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => return Box::new(std::iter::once(Err(Error::io(&path, e)))),
        };
        let id_of = std::rc::Rc::clone(&id_of);
        Box::new(BufReader::new(file).split(b'\n').enumerate().filter_map(move |(n, line)| {
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(Error::io(&path, e))),
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            let location = format!("{}:{}", path.display(), n + 1);
            let parsed = std::str::from_utf8(&line)
                .map_err(|e| format!("invalid UTF-8: {e}"))
                .and_then(|s| serde_json::from_str::<T>(s).map_err(|e| e.to_string()));
            Some(Ok(match parsed {
                Ok(value) => {
                    let (id, docid) = id_of(&value);
                    Item::Good { id, docid, value }
                }
                Err(detail) => Item::Bad {
                    docid: location.clone(),
                    reject: Reject {
                        stage: stage.to_string(),
                        reason: "malformed_input".into(),
                        id: location,
                        detail,
                        record: String::from_utf8_lossy(&line).into_owned(),
                    },
                },
            }))
        }))
    })
}

/// Reads every committed row of a stage folder (all shards), failing on unreadable lines.
pub fn read_all_rows<T: DeserializeOwned>(dir: &Path, kind: &str) -> Result<Vec<T>> {
    let mut rows = Vec::new();
    for path in stage_files(dir, kind, None)? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            rows.push(serde_json::from_str(line).map_err(|e| Error::json(&path, format!("line {}: {e}", n + 1)))?);
        }
    }
    Ok(rows)
}

/// Writes a report (a table, a summary) atomically, ending in a newline.
pub fn write_report(path: &Path, text: &str) -> Result<()> {
    let mut bytes = text.as_bytes().to_vec();
    if !text.ends_with('\n') {
        bytes.push(b'\n');
    }
    write_atomic(path, &bytes)
}
