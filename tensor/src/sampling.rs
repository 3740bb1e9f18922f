//! Picking the next token from a row of logits: greedy, temperature, top-k, top-p.
//! Runs on the host: one row of logits per sequence is all generation reads back.

use crate::rng::Rng;

/// Sampling settings; `temperature == 0` means greedy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f64,
    /// Keep only the `k` most likely tokens (0: no limit).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `p` (1: all).
    pub top_p: f64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0 }
    }
}

impl SamplingParams {
    pub const GREEDY: SamplingParams = SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0 };
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The candidate tokens and their renormalised probabilities after temperature, top-k
/// and top-p, most likely first.
pub fn filtered_distribution(logits: &[f32], p: &SamplingParams) -> Vec<(u32, f64)> {
    assert!(p.temperature > 0.0, "filtered_distribution needs a positive temperature");
    let mut cand: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &x)| (i as u32, x as f64 / p.temperature)).collect();
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if p.top_k > 0 {
        cand.truncate(p.top_k);
    }
    let max = cand[0].1;
    let mut total = 0.0;
    for c in &mut cand {
        c.1 = (c.1 - max).exp();
        total += c.1;
    }
    let mut mass = 0.0;
    let n = cand.len();
    let mut keep = n;
    for (i, c) in cand.iter_mut().enumerate() {
        c.1 /= total;
        mass += c.1;
        if mass >= p.top_p && keep == n {
            keep = i + 1;
        }
    }
    cand.truncate(keep);
    let kept: f64 = cand.iter().map(|c| c.1).sum();
    cand.iter_mut().for_each(|c| c.1 /= kept);
    cand
}

/// Draws the next token.
pub fn sample(logits: &[f32], p: &SamplingParams, rng: &mut Rng) -> u32 {
    if p.temperature <= 0.0 {
        return argmax(logits);
    }
    let cand = filtered_distribution(logits, p);
    let mut u = rng.uniform();
    for &(id, prob) in &cand {
        if u < prob {
            return id;
        }
        u -= prob;
    }
    cand.last().expect("at least one candidate").0
}
