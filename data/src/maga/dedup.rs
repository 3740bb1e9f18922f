//! `dedup`: near-duplicate removal with MinHash-LSH over word 5-gram shingles and union-find
//! clustering (datatrove's defaults: 14 bands × 8 rows), within a chunk's siblings and across
//! the corpus. Each cluster keeps its first member in input order.

use std::collections::HashMap;

use crate::hash::StableHasher;
use crate::maga::text::shingles;

const MERSENNE_61: u64 = (1 << 61) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    pub bands: usize,
    pub rows: usize,
    pub ngram: usize,
    pub seed: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig { bands: 14, rows: 8, ngram: 5, seed: 1 }
    }
}

fn mul_mod(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) % MERSENNE_61 as u128) as u64
}

/// MinHash signatures: `bands × rows` permutations `(a·h + b) mod (2^61 − 1)` of shingle hashes.
pub struct MinHasher {
    cfg: DedupConfig,
    perms: Vec<(u64, u64)>,
}

impl MinHasher {
    pub fn new(cfg: DedupConfig) -> Self {
        let perms = (0..cfg.bands * cfg.rows)
            .map(|i| {
                let draw =
                    |salt: &[u8]| StableHasher::new().u64(cfg.seed).u64(i as u64).field(salt).finish() % MERSENNE_61;
                (draw(b"a").max(1), draw(b"b"))
            })
            .collect();
        MinHasher { cfg, perms }
    }

    pub fn signature(&self, text: &str) -> Vec<u64> {
        let sh: Vec<u64> = shingles(text, self.cfg.ngram).into_iter().map(|h| h % MERSENNE_61).collect();
        self.perms
            .iter()
            .map(|&(a, b)| sh.iter().map(|&h| (mul_mod(a, h) + b) % MERSENNE_61).min().unwrap_or(u64::MAX))
            .collect()
    }
}

/// The estimated Jaccard similarity of two signatures: the share of agreeing positions.
pub fn estimated_jaccard(a: &[u64], b: &[u64]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// The cluster representative of every text: texts sharing any LSH band bucket are joined,
/// and each cluster is represented by its smallest index. `cluster[i] == i` means "keep".
pub fn clusters(texts: &[&str], cfg: DedupConfig) -> Vec<usize> {
    let hasher = MinHasher::new(cfg);
    let mut parent: Vec<usize> = (0..texts.len()).collect();
    let mut buckets: HashMap<(usize, u64), usize> = HashMap::new();
    for (i, text) in texts.iter().enumerate() {
        let sig = hasher.signature(text);
        for (band, rows) in sig.chunks(cfg.rows).enumerate() {
            let mut h = StableHasher::new();
            rows.iter().for_each(|r| {
                h.u64(*r);
            });
            match buckets.entry((band, h.finish())) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let (a, b) = (find(&mut parent, *e.get()), find(&mut parent, i));
                    // The smaller index becomes the root, so the earliest text represents the cluster.
                    let (lo, hi) = (a.min(b), a.max(b));
                    parent[hi] = lo;
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
    }
    (0..texts.len()).map(|i| find(&mut parent, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maga::text::jaccard;

    #[test]
    fn minhash_estimates_jaccard() {
        let base: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
        let a = base.join(" ");
        let b = base[..150].join(" ") + " " + &(0..50).map(|i| format!("x{i}")).collect::<Vec<_>>().join(" ");
        let exact = jaccard(&shingles(&a, 5), &shingles(&b, 5));
        let cfg = DedupConfig { bands: 32, rows: 8, ..DedupConfig::default() };
        let h = MinHasher::new(cfg);
        let est = estimated_jaccard(&h.signature(&a), &h.signature(&b));
        // 256 permutations: standard error ≈ sqrt(J(1−J)/256) ≈ 0.03.
        assert!((est - exact).abs() < 0.1, "estimate {est} vs exact {exact}");
    }

    #[test]
    fn clusters_near_duplicates_and_keeps_the_first() {
        let long: String = (0..120).map(|i| format!("word{i} ")).collect();
        let near = long.replacen("word60 ", "changed ", 1);
        let other: String = (0..120).map(|i| format!("other{i} ")).collect();
        let texts = [other.as_str(), long.as_str(), near.as_str(), other.as_str()];
        assert_eq!(clusters(&texts, DedupConfig::default()), [0, 1, 1, 0]);
    }
}
