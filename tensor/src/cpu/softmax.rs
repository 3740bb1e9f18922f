//! Softmax, log-softmax and fused softmax cross-entropy over the last axis (contiguous).
//! Every row is independent, so rows run in parallel.

use super::pool;
use super::strided::row_chunks;
use crate::element::Element;
use rayon::prelude::*;

/// Runs `f(row_index, out_row)` over rows of `cols` elements of `out`, in parallel.
pub(crate) fn par_rows<E: Element>(out: &mut [E], cols: usize, f: impl Fn(usize, &mut [E]) + Sync) {
    if cols == 0 {
        return;
    }
    let rows = out.len() / cols;
    let per = row_chunks(rows, cols);
    out.par_chunks_mut(per * cols).enumerate().for_each(|(c, chunk)| {
        for (i, row) in chunk.chunks_exact_mut(cols).enumerate() {
            f(c * per + i, row);
        }
    });
}

/// `(max, ln Σ exp(x − max))` of a row.
fn max_and_log_sum<E: Element>(x: &[E]) -> (E, E) {
    let max = x.iter().copied().fold(E::NEG_INFINITY, E::max);
    let sum: E = x.iter().map(|&v| (v - max).exp()).sum();
    (max, sum.ln())
}

pub(crate) fn softmax<E: Element>(x: &[E], cols: usize, log: bool) -> Vec<E> {
    let mut out = pool::filled(x.len(), E::ZERO);
    par_rows(&mut out, cols, |r, o| {
        let row = &x[r * cols..(r + 1) * cols];
        let (max, log_sum) = max_and_log_sum(row);
        let shift = max + log_sum;
        for (o, &v) in o.iter_mut().zip(row) {
            *o = if log { v - shift } else { (v - shift).exp() };
        }
    });
    out
}

pub(crate) fn softmax_backward<E: Element>(y: &[E], dy: &[E], cols: usize, log: bool) -> Vec<E> {
    let mut out = pool::filled(y.len(), E::ZERO);
    par_rows(&mut out, cols, |r, o| {
        let (y, dy) = (&y[r * cols..(r + 1) * cols], &dy[r * cols..(r + 1) * cols]);
        if log {
            // y = log p: dx = dy − p·Σdy
            let s: E = dy.iter().copied().sum();
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(dy) {
                *o = g - y.exp() * s;
            }
        } else {
            // dx = p ∘ (dy − ⟨dy, p⟩)
            let s: E = y.iter().zip(dy).map(|(&p, &g)| p * g).sum();
            for ((o, &p), &g) in o.iter_mut().zip(y).zip(dy) {
                *o = p * (g - s);
            }
        }
    });
    out
}

fn check_target(t: u32, cols: usize, ignore: Option<u32>) -> bool {
    if Some(t) == ignore {
        return false;
    }
    assert!((t as usize) < cols, "cross_entropy: target {t} out of range for {cols} classes");
    true
}

/// Returns per-row `(loss, logsumexp)`.
pub(crate) fn cross_entropy<E: Element>(
    logits: &[E],
    cols: usize,
    targets: &[u32],
    ignore: Option<u32>,
) -> (Vec<E>, Vec<E>) {
    let rows = targets.len();
    let pairs: Vec<(E, E)> = (0..rows)
        .into_par_iter()
        .with_min_len(row_chunks(rows, cols))
        .map(|r| {
            let row = &logits[r * cols..(r + 1) * cols];
            let (max, log_sum) = max_and_log_sum(row);
            let lse = max + log_sum;
            let t = targets[r];
            let loss = if check_target(t, cols, ignore) { lse - row[t as usize] } else { E::ZERO };
            (loss, lse)
        })
        .collect();
    pairs.into_iter().unzip()
}

pub(crate) fn cross_entropy_backward<E: Element>(
    logits: &[E],
    cols: usize,
    lse: &[E],
    targets: &[u32],
    ignore: Option<u32>,
    dloss: &[E],
) -> Vec<E> {
    let mut out = pool::filled(logits.len(), E::ZERO);
    par_rows(&mut out, cols, |r, o| {
        let t = targets[r];
        if !check_target(t, cols, ignore) {
            return;
        }
        let (g, lse) = (dloss[r], lse[r]);
        for (o, &v) in o.iter_mut().zip(&logits[r * cols..(r + 1) * cols]) {
            *o = (v - lse).exp() * g;
        }
        o[t as usize] -= g;
    });
    out
}
