//! Preparing the embedded default corpus for pretraining: train (or load)
//! the project tokenizer on the train split, tokenize both splits into
//! shards, and cache it all in a folder keyed by a hash of the corpus and
//! the settings, so a second run starts at once.
//!
//! Every file is written atomically and a manifest is written last: a run
//! killed mid-way leaves no manifest, and the next run rebuilds.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::corpus::{self, DEFAULT_VAL_FRACTION};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::hash::StableHasher;
use crate::readers::ReadReport;
use crate::shard::{Shard, ShardSetWriter};
use crate::tokenizer::{train, PreTokenizer, Tokenizer, TrainConfig, ENDOFTEXT};

/// Bump when the cached files' meaning changes.
const CACHE_FORMAT: u64 = 1;
const MANIFEST: &str = "manifest.json";
const TOKENIZER: &str = "tokenizer.json";

/// Settings that determine the prepared data.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareConfig {
    pub vocab_size: usize,
    pub pretokenizer: PreTokenizer,
    pub val_fraction: f64,
    /// Upper bound (roughly) on tokens per shard file.
    pub max_shard_tokens: u64,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        PrepareConfig {
            vocab_size: 8192,
            pretokenizer: PreTokenizer::Gpt2,
            val_fraction: DEFAULT_VAL_FRACTION,
            max_shard_tokens: 1 << 28,
        }
    }
}

/// The tokenizer and shards of the default corpus.
#[derive(Debug)]
pub struct PreparedCorpus {
    /// The cache folder holding everything below.
    pub dir: PathBuf,
    pub tokenizer: Tokenizer,
    pub tokenizer_path: PathBuf,
    pub train_shards: Vec<PathBuf>,
    pub val_shards: Vec<PathBuf>,
    /// True when everything came from the cache.
    pub reused: bool,
    /// Why an existing cache entry was not usable, if one was found.
    pub rebuilt_because: Option<String>,
    /// What reading the corpus produced (on a fresh build only).
    pub read_report: Option<ReadReport>,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    tokenizer_fingerprint: u64,
    train: Vec<String>,
    val: Vec<String>,
}

/// Prepares the default corpus with the default settings and `vocab_size`.
pub fn prepare(cache_dir: impl AsRef<Path>, vocab_size: usize) -> Result<PreparedCorpus> {
    prepare_with(cache_dir, &PrepareConfig { vocab_size, ..PrepareConfig::default() })
}

/// Prepares the default corpus, reusing the cache when it is complete and
/// consistent.
pub fn prepare_with(cache_dir: impl AsRef<Path>, cfg: &PrepareConfig) -> Result<PreparedCorpus> {
    let dir = cache_dir.as_ref().join(format!("default-corpus-{:016x}", cache_key(cfg)));
    let rebuilt_because = match load_cached(&dir) {
        Ok(Some(prepared)) => return Ok(prepared),
        Ok(None) => None,
        Err(e) => Some(e.to_string()),
    };
    let mut prepared = build(&dir, cfg)?;
    prepared.rebuilt_because = rebuilt_because;
    Ok(prepared)
}

fn cache_key(cfg: &PrepareConfig) -> u64 {
    let mut h = StableHasher::new();
    h.u64(CACHE_FORMAT).u64(corpus::content_hash()).u64(cfg.vocab_size as u64);
    h.field(cfg.pretokenizer.name().as_bytes()).u64(cfg.val_fraction.to_bits()).u64(cfg.max_shard_tokens);
    h.finish()
}

/// `Ok(None)` when there is no complete cache entry; an error when there is
/// one but it does not check out.
fn load_cached(dir: &Path) -> Result<Option<PreparedCorpus>> {
    let manifest_path = dir.join(MANIFEST);
    if !manifest_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::json(&manifest_path, e))?;
    let tokenizer_path = dir.join(TOKENIZER);
    let tokenizer = Tokenizer::load_hf(&tokenizer_path)?;
    if tokenizer.fingerprint() != manifest.tokenizer_fingerprint {
        return Err(Error::TokenizerMismatch {
            path: tokenizer_path,
            expected: manifest.tokenizer_fingerprint,
            found: tokenizer.fingerprint(),
        });
    }
    let check = |names: &[String]| -> Result<Vec<PathBuf>> {
        names
            .iter()
            .map(|n| {
                let p = dir.join(n);
                Shard::open_for(&p, &tokenizer)?;
                Ok(p)
            })
            .collect()
    };
    let (train_shards, val_shards) = (check(&manifest.train)?, check(&manifest.val)?);
    Ok(Some(PreparedCorpus {
        dir: dir.to_path_buf(),
        tokenizer,
        tokenizer_path,
        train_shards,
        val_shards,
        reused: true,
        rebuilt_because: None,
        read_report: None,
    }))
}

fn build(dir: &Path, cfg: &PrepareConfig) -> Result<PreparedCorpus> {
    let (docs, read_report) = corpus::documents()?;
    let split = corpus::split(docs, cfg.val_fraction);
    let train_texts: Vec<&str> = split.train.iter().map(|d| d.text.as_str()).collect();
    let train_cfg = TrainConfig {
        vocab_size: cfg.vocab_size,
        pretokenizer: cfg.pretokenizer,
        special_tokens: vec![ENDOFTEXT.into()],
    };
    let tokenizer = train(&train_texts, &train_cfg)?;
    let tokenizer_path = dir.join(TOKENIZER);
    tokenizer.save_hf(&tokenizer_path)?;

    let write = |stem: &str, docs: Vec<crate::readers::Document>| -> Result<Vec<PathBuf>> {
        let mut w = ShardSetWriter::new(&tokenizer, dir, stem, cfg.max_shard_tokens);
        for d in docs {
            w.push(d)?;
        }
        w.finish()
    };
    let train_shards = write("train", split.train)?;
    let val_shards = write("val", split.val)?;
    let names = |paths: &[PathBuf]| {
        paths.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect()
    };
    let manifest = Manifest {
        tokenizer_fingerprint: tokenizer.fingerprint(),
        train: names(&train_shards),
        val: names(&val_shards),
    };
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| Error::json(dir.join(MANIFEST), e))?;
    write_atomic(&dir.join(MANIFEST), json.as_bytes())?;
    Ok(PreparedCorpus {
        dir: dir.to_path_buf(),
        tokenizer,
        tokenizer_path,
        train_shards,
        val_shards,
        reused: false,
        rebuilt_because: None,
        read_report: Some(read_report),
    })
}
