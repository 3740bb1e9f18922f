//! `analyze`: the collapse analysis of spec §4.3 from two per-token loss dumps of the same
//! documents (`pretrain eval --dump`): one model trained on real data, one on synthetic.
//!
//! `loss_diff_i = loss_synt_i − loss_real_i`; the first anomaly position is the first `p`
//! whose window mean `|mean(loss_diff[p..p+w])|` exceeds `|μ| + k·σ` (μ, σ over the document,
//! `w = max(⌊0.05·L⌋, 1)`); its normalised position `100·p/L` (−1 when none) is histogrammed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// One document of a dump.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DocLosses {
    pub doc: serde_json::Value,
    pub tokens: Vec<u32>,
    pub losses: Vec<f64>,
}

/// Reads a dump, naming the file and line of anything malformed.
pub fn read_dump(path: &Path) -> Result<Vec<DocLosses>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut docs = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let d: DocLosses = serde_json::from_str(line).map_err(|e| Error::json(path, format!("line {}: {e}", n + 1)))?;
        if d.tokens.len() != d.losses.len() {
            return Err(Error::json(
                path,
                format!("line {}: {} tokens but {} losses", n + 1, d.tokens.len(), d.losses.len()),
            ));
        }
        docs.push(d);
    }
    Ok(docs)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnomalyConfig {
    /// Threshold in standard deviations (not given by the paper; spec's suggestion 2).
    pub k: f64,
    /// Window as a share of the document length.
    pub window: f64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig { k: 2.0, window: 0.05 }
    }
}

/// The first anomaly position of `diff`, if any.
pub fn first_anomaly(diff: &[f64], cfg: AnomalyConfig) -> Option<usize> {
    let n = diff.len();
    if n == 0 {
        return None;
    }
    let mean = diff.iter().sum::<f64>() / n as f64;
    let std = (diff.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    // The small margin keeps rounding noise (a constant difference has σ ≈ 1e-17, not 0)
    // from counting as an anomaly.
    let threshold = mean.abs() + cfg.k * std + 1e-9;
    let w = ((cfg.window * n as f64).floor() as usize).max(1);
    let mut prefix = vec![0.0; n + 1];
    for (i, d) in diff.iter().enumerate() {
        prefix[i + 1] = prefix[i] + d;
    }
    (0..=n - w).find(|&p| ((prefix[p + w] - prefix[p]) / w as f64).abs() > threshold)
}

/// One document's comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct DocAnalysis {
    pub doc: String,
    pub len: usize,
    pub mean_diff: f64,
    pub first_anomaly: Option<usize>,
    /// `100·p/L`, or −1 when there is no anomaly.
    pub normalized: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    pub docs: Vec<DocAnalysis>,
    pub cfg: AnomalyConfig,
}

/// Compares the dumps document by document (matched by `doc`; both must hold the same token ids).
pub fn analyze(
    real: &[DocLosses],
    synthetic: &[DocLosses],
    cfg: AnomalyConfig,
) -> std::result::Result<Analysis, String> {
    let by_doc: BTreeMap<String, &DocLosses> = real.iter().map(|d| (d.doc.to_string(), d)).collect();
    if by_doc.len() != real.len() {
        return Err("the real-data dump lists a document twice".into());
    }
    let mut docs = Vec::new();
    for s in synthetic {
        let key = s.doc.to_string();
        let r = by_doc.get(&key).ok_or_else(|| format!("document {key} is in the synthetic dump only"))?;
        if r.tokens != s.tokens {
            return Err(format!("document {key}: the dumps hold different tokens (another tokenizer or text?)"));
        }
        let diff: Vec<f64> = s.losses.iter().zip(&r.losses).map(|(a, b)| a - b).collect();
        let first = first_anomaly(&diff, cfg);
        let len = diff.len();
        docs.push(DocAnalysis {
            doc: key,
            len,
            mean_diff: diff.iter().sum::<f64>() / len.max(1) as f64,
            first_anomaly: first,
            normalized: first.map_or(-1.0, |p| 100.0 * p as f64 / len as f64),
        });
    }
    if docs.len() != real.len() {
        return Err(format!("{} documents in the real-data dump, {} in the synthetic one", real.len(), docs.len()));
    }
    Ok(Analysis { docs, cfg })
}

impl Analysis {
    /// Counts of normalised positions in ten 10% buckets, and of documents without an anomaly.
    pub fn histogram(&self) -> ([u64; 10], u64) {
        let mut buckets = [0u64; 10];
        let mut none = 0;
        for d in &self.docs {
            match d.first_anomaly {
                Some(_) => buckets[((d.normalized / 10.0) as usize).min(9)] += 1,
                None => none += 1,
            }
        }
        (buckets, none)
    }

    /// Documents the paper singles out for inspection: mean loss difference above 0.5.
    pub fn high_diff(&self) -> impl Iterator<Item = &DocAnalysis> {
        self.docs.iter().filter(|d| d.mean_diff > 0.5)
    }
}

impl fmt::Display for Analysis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.docs.len();
        let mean = self.docs.iter().map(|d| d.mean_diff).sum::<f64>() / n.max(1) as f64;
        writeln!(f, "{n} documents, mean token loss difference (synthetic − real) {mean:.4}")?;
        writeln!(f, "first anomaly: k = {}, window {}% of the length", self.cfg.k, 100.0 * self.cfg.window)?;
        let (buckets, none) = self.histogram();
        writeln!(f, "| normalised position | documents |")?;
        writeln!(f, "|---|---|")?;
        for (i, c) in buckets.iter().enumerate() {
            writeln!(f, "| {}–{}% | {c} |", 10 * i, 10 * (i + 1))?;
        }
        writeln!(f, "| none (−1) | {none} |")?;
        write!(f, "documents with mean difference > 0.5: {}", self.high_diff().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_planted_anomaly() {
        let mut diff = vec![0.0; 100];
        for d in diff.iter_mut().skip(70).take(5) {
            *d = 3.0;
        }
        // μ = 0.15, σ ≈ 0.654: threshold ≈ 1.46; 5-token windows first exceed it at p = 68 (mean 1.8).
        assert_eq!(first_anomaly(&diff, AnomalyConfig::default()), Some(68));
        assert_eq!(first_anomaly(&[0.1; 50], AnomalyConfig::default()), None);
        assert_eq!(first_anomaly(&[], AnomalyConfig::default()), None);
    }

    #[test]
    fn analyzes_matched_dumps_into_a_histogram() {
        let doc = |i: u32, losses: Vec<f64>| DocLosses { doc: i.into(), tokens: vec![1; losses.len()], losses };
        let real = vec![doc(0, vec![1.0; 20]), doc(1, vec![1.0; 20])];
        let mut spiky = vec![1.0; 20];
        spiky[15] = 9.0;
        let synthetic = vec![doc(1, vec![1.0; 20]), doc(0, spiky)];
        let a = analyze(&real, &synthetic, AnomalyConfig::default()).unwrap();
        assert_eq!(a.docs[1].first_anomaly, Some(15));
        assert_eq!(a.docs[1].normalized, 75.0);
        assert_eq!(a.histogram(), ([0, 0, 0, 0, 0, 0, 0, 1, 0, 0], 1));
        assert!(a.to_string().contains("| 70–80% | 1 |"));
        let other = vec![DocLosses { doc: 0.into(), tokens: vec![2; 20], losses: vec![1.0; 20] }];
        assert!(analyze(&real[..1], &other, AnomalyConfig::default()).unwrap_err().contains("different tokens"));
        assert!(analyze(&real, &synthetic[..1], AnomalyConfig::default()).unwrap_err().contains("2 documents"));
    }
}
