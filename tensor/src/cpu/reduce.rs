//! Reductions over arbitrary axes of strided views.

use super::pool;
use super::strided::{row_chunks, Rows, PAR_GRAIN};
use crate::element::Element;
use crate::layout::{contiguous_strides, Layout};
use crate::ops::ReduceOp;
use rayon::prelude::*;

fn identity<E: Element>(op: ReduceOp) -> E {
    match op {
        ReduceOp::Sum => E::ZERO,
        ReduceOp::Max => E::NEG_INFINITY,
        ReduceOp::Min => -E::NEG_INFINITY,
    }
}

#[inline(always)]
fn combine<E: Element>(op: ReduceOp, a: E, b: E) -> E {
    match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Max => a.max(b),
        ReduceOp::Min => a.min(b),
    }
}

/// Reduces a strided run of `len` elements.
#[inline]
fn reduce_run<E: Element>(op: ReduceOp, x: &[E], start: usize, len: usize, stride: usize) -> E {
    if stride == 1 && op == ReduceOp::Sum {
        // Eight independent accumulators let the compiler vectorise and keep rounding
        // error growth lower than one running sum.
        let run = &x[start..start + len];
        let mut acc = [E::ZERO; 8];
        let chunks = run.chunks_exact(8);
        let tail: E = chunks.remainder().iter().copied().sum();
        for c in chunks {
            for k in 0..8 {
                acc[k] += c[k];
            }
        }
        return acc.iter().copied().sum::<E>() + tail;
    }
    (0..len).fold(identity(op), |a, i| combine(op, a, x[start + i * stride]))
}

/// Output shape: the input shape with `axes` set to 1.
pub(crate) fn reduced_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect()
}

pub(crate) fn reduce<E: Element>(op: ReduceOp, x: &[E], l: &Layout, axes: &[usize]) -> Vec<E> {
    let out_shape = reduced_shape(l.shape(), axes);
    let out_numel: usize = out_shape.iter().product();
    let mut out = pool::filled(out_numel, identity::<E>(op));
    if l.numel() == 0 {
        return out;
    }
    // View the output with the input's shape, reduced axes at stride 0: every input element
    // then has exactly one destination and one loop covers all axis combinations.
    let mut ostrides = contiguous_strides(&out_shape);
    for &a in axes {
        ostrides[a] = 0;
    }
    let ol = Layout::new(l.shape().to_vec(), ostrides, 0);
    let rows = Rows::new([l, &ol]);
    let (len, [xs, os]) = (rows.inner_len, rows.inner_strides);
    let count = rows.count();
    if os == 0 {
        // Row reduction: each row folds into one output element. Rows with distinct
        // outputs can run in parallel; when every reduced axis coalesced into the row,
        // each output element has exactly one row.
        let one_row_per_output = count == out_numel;
        if one_row_per_output && count * len >= 2 * PAR_GRAIN {
            let per = row_chunks(count, len);
            out.par_chunks_mut(per).enumerate().for_each(|(c, o)| {
                rows.for_each(c * per..c * per + o.len(), |r, [xo, _]| {
                    o[r - c * per] = reduce_run(op, x, xo, len, xs);
                });
            });
        } else {
            rows.for_each(0..count, |_, [xo, oo]| {
                out[oo] = combine(op, out[oo], reduce_run(op, x, xo, len, xs));
            });
        }
    } else {
        // Column reduction: accumulate whole rows into output rows, in row order, up to
        // [`FOLD`] rows (that share an output row) per pass over the output row.
        //
        // It runs on one thread. That streams at about this machine's read bandwidth
        // (19 GB/s on a [4096, 8192] sum over the first axis); splitting the columns among
        // two threads measured slower there (13–16 GB/s: shorter runs per row, and no more
        // bandwidth to gain), and on in-cache inputs ([1024, 1024]) went either way from
        // run to run.
        assert_eq!(os, 1, "reduce: the output's innermost kept axis is unit-stride");
        let (mut group, mut size, mut group_oo) = ([0; FOLD], 0, 0);
        let mut flush = |starts: &[usize], oo: usize| {
            let o = &mut out[oo..oo + len];
            match op {
                ReduceOp::Sum => accumulate(o, x, starts, xs, |a, b| a + b),
                ReduceOp::Max => accumulate(o, x, starts, xs, E::max),
                ReduceOp::Min => accumulate(o, x, starts, xs, E::min),
            }
        };
        rows.for_each(0..count, |_, [xo, oo]| {
            if size == FOLD || (size > 0 && oo != group_oo) {
                flush(&group[..size], group_oo);
                size = 0;
            }
            (group[size], group_oo, size) = (xo, oo, size + 1);
        });
        flush(&group[..size], group_oo);
    }
    out
}

/// Rows a column reduction folds into the output per pass: the output is then loaded and
/// stored once per `FOLD` input rows rather than once per row, while each element still
/// combines its inputs row by row, in order, as a sequential loop would. (A [4096, 8192] sum
/// over the first axis: 12 GB/s one row per pass, 18.5 GB/s four rows per pass.)
const FOLD: usize = 4;

/// `o[i] = f(…f(f(o[i], x[s₀ + i·stride]), x[s₁ + i·stride])…)` for the row starts
/// `s₀, s₁, …` in order, with unit-stride loops the compiler vectorises.
#[inline(always)]
fn accumulate<E: Element>(o: &mut [E], x: &[E], starts: &[usize], stride: usize, f: impl Fn(E, E) -> E) {
    let n = o.len();
    let row = |s: usize| &x[s..s + n];
    match (starts, stride) {
        (&[s0, s1, s2, s3], 1) => {
            for ((((o, &a), &b), &c), &d) in o.iter_mut().zip(row(s0)).zip(row(s1)).zip(row(s2)).zip(row(s3)) {
                *o = f(f(f(f(*o, a), b), c), d);
            }
        }
        (_, 1) => {
            for &s in starts {
                for (o, &v) in o.iter_mut().zip(row(s)) {
                    *o = f(*o, v);
                }
            }
        }
        _ => {
            for &s in starts {
                for (i, o) in o.iter_mut().enumerate() {
                    *o = f(*o, x[s + i * stride]);
                }
            }
        }
    }
}

pub(crate) fn argmax<E: Element>(x: &[E], l: &Layout, axis: usize) -> Vec<u32> {
    // Move `axis` last; each row of that view is one argmax.
    let mut perm: Vec<usize> = (0..l.rank()).filter(|&a| a != axis).collect();
    perm.push(axis);
    let pl = l.permute(&perm);
    let len = l.shape()[axis];
    let outer = Layout::new(pl.shape()[..l.rank() - 1].to_vec(), pl.strides()[..l.rank() - 1].to_vec(), pl.offset());
    let mut out = Vec::with_capacity(outer.numel());
    let stride = l.strides()[axis];
    let mut visit = |start: usize| {
        let mut best = 0;
        for i in 1..len {
            if x[start + i * stride] > x[start + best * stride] {
                best = i;
            }
        }
        out.push(best as u32);
    };
    let rows = Rows::new([&outer]);
    rows.for_each(0..rows.count(), |_, [o]| {
        for i in 0..rows.inner_len {
            visit(o + i * rows.inner_strides[0]);
        }
    });
    out
}
