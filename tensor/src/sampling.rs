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
/// and top-p, most likely first (ties: the lower id first).
///
/// Only the kept prefix is sorted: the most likely 64, 256, … tokens are selected
/// (`select_nth_unstable`, linear) until their mass reaches `top_p`, instead of sorting a
/// whole vocabulary per generated token.
pub fn filtered_distribution(logits: &[f32], p: &SamplingParams) -> Vec<(u32, f64)> {
    assert!(p.temperature > 0.0, "filtered_distribution needs a positive temperature");
    let by_rank = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut cand: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &x)| (i as u32, x as f64 / p.temperature)).collect();
    if p.top_k > 0 && p.top_k < cand.len() {
        cand.select_nth_unstable_by(p.top_k - 1, by_rank);
        cand.truncate(p.top_k);
        cand.sort_unstable_by_key(|c| c.0);
    }
    // The softmax total is summed in id order (its rounding decides where a top-p prefix
    // ends, so it must not depend on how the selection left the candidates); candidates
    // are ranked by scaled logit, as two logits can round to one probability.
    let max = cand.iter().fold(f64::NEG_INFINITY, |m, c| m.max(c.1));
    let total: f64 = cand.iter().map(|c| (c.1 - max).exp()).sum();
    let mut len = 64;
    let keep = loop {
        len = len.min(cand.len());
        if len < cand.len() {
            cand.select_nth_unstable_by(len - 1, by_rank);
        }
        cand[..len].sort_by(by_rank);
        let mut mass = 0.0;
        let reached = cand[..len].iter().position(|c| {
            mass += (c.1 - max).exp() / total;
            mass >= p.top_p
        });
        match reached {
            Some(i) => break i + 1,
            None if len == cand.len() => break len,
            None => len *= 4,
        }
    };
    cand.iter_mut().for_each(|c| c.1 = (c.1 - max).exp() / total);
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
