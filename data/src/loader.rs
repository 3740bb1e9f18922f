//! The batch loader: fixed windows of `seq_len + 1` tokens from token
//! shards, mixed across sources, with an exact, resumable position.
//!
//! Each source's shards are cut into non-overlapping windows (window k of
//! a shard starts at token k·seq_len and holds seq_len + 1 tokens, so the
//! last token of one window is the first of the next: inputs are
//! `[..seq_len]`, targets `[1..]`). An epoch of a source visits each of its
//! windows once, in a fresh seeded permutation per epoch (or in order, for
//! evaluation). Sources are interleaved deterministically: each draw goes
//! to the source furthest behind its target share, so every prefix of the
//! stream holds the stated proportions as closely as whole windows allow.
//!
//! The whole position is the number of windows drawn from each source; a
//! [`LoaderState`] stores it (with a fingerprint of the configuration and
//! data), and [`Loader::restore`] continues with exactly the batches an
//! uninterrupted run would have produced.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::{mix64, SplitMix64, StableHasher};
use crate::shard::Shard;

/// How much of the stream a source gets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Weight {
    /// A relative share of the windows drawn.
    Proportion(f64),
    /// This many passes over the source (fractions allowed): a fixed number
    /// of windows. "source × 2 + reformulations × 2" is two `Epochs(2.0)`.
    Epochs(f64),
}

/// One source of windows.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub shards: Vec<PathBuf>,
    pub weight: Weight,
}

/// Window order within a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    /// A new seeded permutation every epoch (training).
    Shuffled,
    /// Shard order, front to back (evaluation).
    Sequential,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub seq_len: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub order: Order,
    /// Total windows to draw. Implied when every weight is in epochs;
    /// required when proportions and epochs are mixed; without it a
    /// proportions-only loader never ends.
    pub budget_windows: Option<u64>,
    /// If set, every shard must carry this tokenizer fingerprint.
    pub tokenizer_hash: Option<u64>,
}

/// A batch of `rows` windows of `seq_len + 1` tokens, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub tokens: Vec<u32>,
    pub rows: usize,
    pub seq_len: usize,
    /// The source index of each row.
    pub sources: Vec<usize>,
}

impl Batch {
    /// Row `r`: `seq_len + 1` tokens.
    pub fn row(&self, r: usize) -> &[u32] {
        let w = self.seq_len + 1;
        &self.tokens[r * w..(r + 1) * w]
    }

    pub fn inputs(&self, r: usize) -> &[u32] {
        &self.row(r)[..self.seq_len]
    }

    pub fn targets(&self, r: usize) -> &[u32] {
        &self.row(r)[1..]
    }
}

/// The loader's position, for checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    /// Fingerprint of the configuration and data the position refers to.
    pub fingerprint: u64,
    pub sources: Vec<SourcePosition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    pub name: String,
    pub windows_drawn: u64,
}

/// Per-source accounting.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceStats {
    pub name: String,
    pub windows_per_epoch: u64,
    pub windows_drawn: u64,
    /// Epochs completed, fractional.
    pub epochs: f64,
    /// Windows this source will give in total, when bounded.
    pub quota: Option<u64>,
    /// Tokens per epoch that no window covers (shard tails shorter than a
    /// window), reported so that nothing is lost unseen.
    pub unused_tokens: u64,
}

struct SourceData {
    name: String,
    shards: Vec<Shard>,
    /// Windows before each shard, and the total at the end.
    window_starts: Vec<u64>,
    quota: Option<u64>,
    share: f64,
    unused_tokens: u64,
    drawn: u64,
    /// The permutation of the epoch `perm_epoch`.
    perm_epoch: Option<u64>,
    perm: Vec<u32>,
}

impl SourceData {
    fn windows(&self) -> u64 {
        *self.window_starts.last().expect("one entry per shard plus one")
    }
}

/// Yields batches from one or more sources of shards.
pub struct Loader {
    cfg: LoaderConfig,
    sources: Vec<SourceData>,
    fingerprint: u64,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("cfg", &self.cfg).field("sources", &self.stats()).finish()
    }
}

impl Loader {
    pub fn new(specs: &[SourceSpec], cfg: LoaderConfig) -> Result<Loader> {
        if cfg.seq_len == 0 || cfg.batch_size == 0 {
            return Err(Error::Loader("seq_len and batch_size must be positive".into()));
        }
        if specs.is_empty() {
            return Err(Error::Loader("no sources".into()));
        }
        let window = cfg.seq_len as u64 + 1;
        let mut sources = Vec::with_capacity(specs.len());
        let mut tokenizer_hash = cfg.tokenizer_hash;
        for spec in specs {
            let shards = spec.shards.iter().map(Shard::open).collect::<Result<Vec<_>>>()?;
            let mut window_starts = vec![0u64];
            let mut unused_tokens = 0;
            for shard in &shards {
                let found = shard.header().tokenizer_hash;
                match tokenizer_hash {
                    Some(expected) if expected != found => {
                        return Err(Error::TokenizerMismatch { path: shard.path().into(), expected, found })
                    }
                    _ => tokenizer_hash = Some(found),
                }
                let len = shard.len() as u64;
                let n = if len >= window { (len - 1) / cfg.seq_len as u64 } else { 0 };
                unused_tokens += len - if n > 0 { n * cfg.seq_len as u64 + 1 } else { 0 };
                window_starts.push(window_starts.last().expect("non-empty") + n);
            }
            let data = SourceData {
                name: spec.name.clone(),
                shards,
                window_starts,
                quota: None,
                share: 0.0,
                unused_tokens,
                drawn: 0,
                perm_epoch: None,
                perm: Vec::new(),
            };
            if data.windows() == 0 {
                return Err(Error::Loader(format!("source {:?} has no window of {window} tokens", spec.name)));
            }
            if data.windows() > u64::from(u32::MAX) {
                return Err(Error::Loader(format!("source {:?} has more than 2^32 windows", spec.name)));
            }
            sources.push(data);
        }
        let weights: Vec<Weight> = specs.iter().map(|s| s.weight).collect();
        allot(&mut sources, &weights, cfg.budget_windows)?;
        let fingerprint = fingerprint(&cfg, specs, &sources);
        Ok(Loader { cfg, sources, fingerprint })
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Total windows this loader yields, when bounded.
    pub fn total_windows(&self) -> Option<u64> {
        self.sources.iter().map(|s| s.quota).sum()
    }

    /// The next batch; `None` once every source has given its quota. The
    /// last batch may have fewer rows.
    pub fn next_batch(&mut self) -> Option<Batch> {
        let width = self.cfg.seq_len + 1;
        let mut batch = Batch {
            tokens: Vec::with_capacity(self.cfg.batch_size * width),
            rows: 0,
            seq_len: self.cfg.seq_len,
            sources: Vec::new(),
        };
        while batch.rows < self.cfg.batch_size {
            let Some(i) = self.pick() else { break };
            self.draw(i, &mut batch.tokens);
            batch.sources.push(i);
            batch.rows += 1;
        }
        (batch.rows > 0).then_some(batch)
    }

    /// The source furthest behind its share, among those with windows left.
    fn pick(&self) -> Option<usize> {
        let next = self.sources.iter().map(|s| s.drawn).sum::<u64>() + 1;
        let mut best: Option<(usize, f64)> = None;
        for (i, s) in self.sources.iter().enumerate() {
            if s.quota.is_some_and(|q| s.drawn >= q) {
                continue;
            }
            let deficit = s.share * next as f64 - s.drawn as f64;
            if best.is_none_or(|(_, d)| deficit > d) {
                best = Some((i, deficit));
            }
        }
        best.map(|(i, _)| i)
    }

    fn draw(&mut self, i: usize, out: &mut Vec<u32>) {
        let (seed, order, seq_len) = (self.cfg.seed, self.cfg.order, self.cfg.seq_len);
        let s = &mut self.sources[i];
        let windows = s.windows();
        let (epoch, k) = (s.drawn / windows, s.drawn % windows);
        let w = match order {
            Order::Sequential => k,
            Order::Shuffled => {
                if s.perm_epoch != Some(epoch) {
                    s.perm = (0..windows as u32).collect();
                    SplitMix64::new(mix64(seed ^ mix64(i as u64 ^ mix64(epoch)))).shuffle(&mut s.perm);
                    s.perm_epoch = Some(epoch);
                }
                u64::from(s.perm[k as usize])
            }
        };
        let shard = s.window_starts.partition_point(|&start| start <= w) - 1;
        let start = (w - s.window_starts[shard]) as usize * seq_len;
        s.shards[shard].read_into(start, seq_len + 1, out);
        s.drawn += 1;
    }

    /// The current position.
    pub fn state(&self) -> LoaderState {
        LoaderState {
            fingerprint: self.fingerprint,
            sources: self
                .sources
                .iter()
                .map(|s| SourcePosition { name: s.name.clone(), windows_drawn: s.drawn })
                .collect(),
        }
    }

    /// Moves to a stored position. Refuses a state from another
    /// configuration or other data, which would not resume the same stream.
    pub fn restore(&mut self, state: &LoaderState) -> Result<()> {
        if state.fingerprint != self.fingerprint {
            return Err(Error::Loader(format!(
                "resume state is for loader {:016x}, this loader is {:016x} (different sources, shards, seed, order, seq_len or budget)",
                state.fingerprint, self.fingerprint
            )));
        }
        let names_match = state.sources.len() == self.sources.len()
            && state
                .sources
                .iter()
                .zip(&self.sources)
                .all(|(p, s)| p.name == s.name && s.quota.is_none_or(|q| p.windows_drawn <= q));
        if !names_match {
            return Err(Error::Loader("resume state lists other sources or positions past their quota".into()));
        }
        for (p, s) in state.sources.iter().zip(&mut self.sources) {
            s.drawn = p.windows_drawn;
        }
        Ok(())
    }

    pub fn stats(&self) -> Vec<SourceStats> {
        self.sources
            .iter()
            .map(|s| SourceStats {
                name: s.name.clone(),
                windows_per_epoch: s.windows(),
                windows_drawn: s.drawn,
                epochs: s.drawn as f64 / s.windows() as f64,
                quota: s.quota,
                unused_tokens: s.unused_tokens,
            })
            .collect()
    }
}

/// Turns weights into shares of the stream and, when the stream is
/// bounded, a window quota per source.
fn allot(sources: &mut [SourceData], weights: &[Weight], budget: Option<u64>) -> Result<()> {
    let mut epoch_total = 0u64;
    let mut proportion_total = 0.0;
    for (s, w) in sources.iter_mut().zip(weights) {
        match *w {
            Weight::Epochs(e) | Weight::Proportion(e) if !(e.is_finite() && e > 0.0) => {
                return Err(Error::Loader(format!("source {:?}: weight {e} must be positive and finite", s.name)))
            }
            Weight::Epochs(e) => {
                let q = (e * s.windows() as f64).round() as u64;
                s.quota = Some(q.max(1));
                epoch_total += q.max(1);
            }
            Weight::Proportion(p) => proportion_total += p,
        }
    }
    let has_proportions = proportion_total > 0.0;
    let budget = match (budget, has_proportions) {
        (None, false) => Some(epoch_total),
        (None, true) if epoch_total > 0 => {
            return Err(Error::Loader("mixing proportions with epochs needs budget_windows".into()))
        }
        (None, true) => None,
        (Some(b), false) if b != epoch_total => {
            return Err(Error::Loader(format!("the epochs fix the budget at {epoch_total} windows, not {b}")))
        }
        (Some(b), _) if b < epoch_total => {
            return Err(Error::Loader(format!("budget {b} is below the {epoch_total} windows the epochs need")))
        }
        (Some(b), _) => Some(b),
    };
    match budget {
        None => {
            for (s, w) in sources.iter_mut().zip(weights) {
                if let Weight::Proportion(p) = *w {
                    s.share = p / proportion_total;
                }
            }
        }
        Some(total) => {
            let mut left = total - epoch_total;
            let mut remaining_weight = proportion_total;
            for (s, w) in sources.iter_mut().zip(weights) {
                if let Weight::Proportion(p) = *w {
                    // Each takes its share of what is still unassigned, so
                    // the last takes the rest and the quotas sum to `total`.
                    let q = ((left as f64) * p / remaining_weight).round() as u64;
                    s.quota = Some(q.min(left));
                    left -= q.min(left);
                    remaining_weight -= p;
                }
            }
            for s in sources.iter_mut() {
                s.share = s.quota.unwrap_or(0) as f64 / total.max(1) as f64;
            }
        }
    }
    Ok(())
}

fn fingerprint(cfg: &LoaderConfig, specs: &[SourceSpec], sources: &[SourceData]) -> u64 {
    let mut h = StableHasher::new();
    h.field(b"loader-v1").u64(cfg.seq_len as u64).u64(cfg.seed);
    h.u64(matches!(cfg.order, Order::Shuffled) as u64).u64(cfg.budget_windows.unwrap_or(u64::MAX));
    for (spec, s) in specs.iter().zip(sources) {
        h.field(spec.name.as_bytes());
        let (kind, value) = match spec.weight {
            Weight::Proportion(p) => (0, p),
            Weight::Epochs(e) => (1, e),
        };
        h.u64(kind).u64(value.to_bits());
        for shard in &s.shards {
            h.u64(shard.header().tokens).u64(shard.header().tokenizer_hash);
        }
    }
    h.finish()
}
