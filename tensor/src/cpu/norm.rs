//! RMSNorm and GroupNorm (LayerNorm is one group) over the last axis, forward and backward.
//! Rows are independent in the forward pass; the backward pass sums the gain and bias
//! gradients over rows with a parallel fold.

use super::pool;
use super::softmax::par_rows;
use super::strided::row_chunks;
use crate::element::Element;
use rayon::prelude::*;

pub(crate) fn rms_norm<E: Element>(x: &[E], dim: usize, gain: Option<&[E]>, eps: f64) -> (Vec<E>, Vec<E>) {
    let rows = x.len() / dim.max(1);
    let rstd: Vec<E> = (0..rows)
        .into_par_iter()
        .with_min_len(row_chunks(rows, dim))
        .map(|r| {
            let row = &x[r * dim..(r + 1) * dim];
            let ms = row.iter().map(|&v| v * v).sum::<E>() / E::from_usize(dim);
            E::ONE / (ms + E::from_f64(eps)).sqrt()
        })
        .collect();
    let mut y = pool::filled(x.len(), E::ZERO);
    par_rows(&mut y, dim, |r, o| {
        let row = &x[r * dim..(r + 1) * dim];
        for (c, (o, &v)) in o.iter_mut().zip(row).enumerate() {
            *o = v * rstd[r] * gain.map_or(E::ONE, |g| g[c]);
        }
    });
    (y, rstd)
}

/// Sums per-row contributions to `[dim]`-long parameter gradients while `row_fn` also
/// writes each row's input gradient. Rows are split into fixed chunks (by size alone),
/// partial sums are computed in parallel and added in chunk order, so the result is
/// bit-for-bit the same whatever the thread count or scheduling.
fn rows_with_param_grads<E: Element>(
    dx: &mut [E],
    dim: usize,
    n_params: usize,
    row_fn: impl Fn(usize, &mut [E], &mut [Vec<E>]) + Sync,
) -> Vec<Vec<E>> {
    let rows = dx.len() / dim.max(1);
    let per = row_chunks(rows, dim);
    let partials: Vec<Vec<Vec<E>>> = dx
        .par_chunks_mut((per * dim).max(1))
        .enumerate()
        .map(|(c, chunk)| {
            let mut acc = vec![vec![E::ZERO; dim]; n_params];
            for (i, row) in chunk.chunks_exact_mut(dim).enumerate() {
                row_fn(c * per + i, row, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![vec![E::ZERO; dim]; n_params];
    for part in partials {
        for (t, p) in total.iter_mut().zip(part) {
            for (x, y) in t.iter_mut().zip(p) {
                *x += y;
            }
        }
    }
    total
}

pub(crate) fn rms_norm_backward<E: Element>(
    x: &[E],
    dim: usize,
    gain: Option<&[E]>,
    rstd: &[E],
    dy: &[E],
) -> (Vec<E>, Option<Vec<E>>) {
    let mut dx = pool::filled(x.len(), E::ZERO);
    let inv_dim = E::ONE / E::from_usize(dim);
    let sums = rows_with_param_grads(&mut dx, dim, usize::from(gain.is_some()), |r, out, acc| {
        let (x, dy, rs) = (&x[r * dim..(r + 1) * dim], &dy[r * dim..(r + 1) * dim], rstd[r]);
        let g = |c: usize| gain.map_or(E::ONE, |g| g[c]);
        let dot: E = (0..dim).map(|c| dy[c] * g(c) * x[c] * rs).sum::<E>() * inv_dim;
        for c in 0..dim {
            let xhat = x[c] * rs;
            out[c] = rs * (dy[c] * g(c) - xhat * dot);
            if let Some(acc) = acc.first_mut() {
                acc[c] += dy[c] * xhat;
            }
        }
    });
    (dx, gain.map(|_| sums.into_iter().next().unwrap()))
}

/// Returns `(y, mean[rows·groups], rstd[rows·groups])`.
pub(crate) fn group_norm<E: Element>(
    x: &[E],
    channels: usize,
    groups: usize,
    gain: Option<&[E]>,
    bias: Option<&[E]>,
    eps: f64,
) -> (Vec<E>, Vec<E>, Vec<E>) {
    let gs = channels / groups;
    let n_groups = x.len() / gs.max(1);
    let stats: Vec<(E, E)> = (0..n_groups)
        .into_par_iter()
        .with_min_len(row_chunks(n_groups, gs))
        .map(|i| {
            let g = &x[i * gs..(i + 1) * gs];
            let n = E::from_usize(gs);
            let mean = g.iter().copied().sum::<E>() / n;
            let var = g.iter().map(|&v| (v - mean) * (v - mean)).sum::<E>() / n;
            (mean, E::ONE / (var + E::from_f64(eps)).sqrt())
        })
        .collect();
    let mut y = pool::filled(x.len(), E::ZERO);
    par_rows(&mut y, channels, |r, o| {
        let row = &x[r * channels..(r + 1) * channels];
        for (c, (o, &v)) in o.iter_mut().zip(row).enumerate() {
            let (mean, rstd) = stats[r * groups + c / gs];
            *o = (v - mean) * rstd * gain.map_or(E::ONE, |g| g[c]) + bias.map_or(E::ZERO, |b| b[c]);
        }
    });
    let (mean, rstd) = stats.into_iter().unzip();
    (y, mean, rstd)
}

/// Returns `(dx, dgain, dbias)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn group_norm_backward<E: Element>(
    x: &[E],
    channels: usize,
    groups: usize,
    gain: Option<&[E]>,
    has_bias: bool,
    mean: &[E],
    rstd: &[E],
    dy: &[E],
) -> (Vec<E>, Option<Vec<E>>, Option<Vec<E>>) {
    let gs = channels / groups;
    let inv_gs = E::ONE / E::from_usize(gs);
    let mut dx = pool::filled(x.len(), E::ZERO);
    let n_params = usize::from(gain.is_some()) + usize::from(has_bias);
    let sums = rows_with_param_grads(&mut dx, channels, n_params, |r, out, acc| {
        let (x, dy) = (&x[r * channels..(r + 1) * channels], &dy[r * channels..(r + 1) * channels]);
        let g = |c: usize| gain.map_or(E::ONE, |g| g[c]);
        for grp in 0..groups {
            let (mu, rs) = (mean[r * groups + grp], rstd[r * groups + grp]);
            let range = grp * gs..(grp + 1) * gs;
            let (mut sum_d, mut sum_dx) = (E::ZERO, E::ZERO);
            for c in range.clone() {
                let d = dy[c] * g(c);
                sum_d += d;
                sum_dx += d * (x[c] - mu) * rs;
            }
            let (mean_d, mean_dx) = (sum_d * inv_gs, sum_dx * inv_gs);
            for c in range {
                let xhat = (x[c] - mu) * rs;
                out[c] = rs * (dy[c] * g(c) - mean_d - xhat * mean_dx);
                let mut k = 0;
                if gain.is_some() {
                    acc[0][c] += dy[c] * xhat;
                    k = 1;
                }
                if has_bias {
                    acc[k][c] += dy[c];
                }
            }
        }
    });
    let mut sums = sums.into_iter();
    let dgain = gain.map(|_| sums.next().unwrap());
    let dbias = if has_bias { sums.next() } else { None };
    (dx, dgain, dbias)
}
