//! Fused causal multi-head attention, forward and backward (FlashAttention's recurrence
//! on the CPU).
//!
//! Queries are processed in blocks of [`Q_BLOCK`] rows; a block's scores against the keys
//! it may see live in a `Q_BLOCK × seq_kv` scratch, so no `T × T` matrix is ever kept.
//! The forward pass stores only the output and each row's log-sum-exp; the backward
//! pass recomputes the probabilities from them. Every product is a strided GEMM straight
//! on the (token-major, possibly strided) q/k/v views.

use super::matmul::{gemm_raw, MatRef};
use super::pool;
use super::strided::SendPtr;
use crate::backend::AttentionShape;
use crate::element::Element;
use crate::layout::Layout;
use rayon::prelude::*;

const Q_BLOCK: usize = 64;

/// Addressing of a `[batch, seq, heads, head_dim]` view.
#[derive(Clone, Copy)]
struct Heads {
    offset: usize,
    sb: usize,
    st: usize,
    sh: usize,
    sd: usize,
}

impl Heads {
    fn new(l: &Layout) -> Self {
        let s = l.strides();
        Heads { offset: l.offset(), sb: s[0], st: s[1], sh: s[2], sd: s[3] }
    }
    fn contiguous(seq: usize, heads: usize, dh: usize) -> Self {
        Heads { offset: 0, sb: seq * heads * dh, st: heads * dh, sh: dh, sd: 1 }
    }
    /// Rows `t0..` of head `h` in batch `b` as a `rows × head_dim` matrix.
    fn mat(&self, b: usize, h: usize, t0: usize) -> MatRef {
        MatRef { offset: self.offset + b * self.sb + h * self.sh + t0 * self.st, rs: self.st, cs: self.sd }
    }
    /// The same, transposed (`head_dim × rows`).
    fn mat_t(&self, b: usize, h: usize, t0: usize) -> MatRef {
        let m = self.mat(b, h, t0);
        MatRef { offset: m.offset, rs: m.cs, cs: m.rs }
    }
}

/// Number of keys query row `t` (0-based within the queries) may attend to.
fn visible(s: &AttentionShape, t: usize) -> usize {
    if s.causal {
        (t + s.q_offset() + 1).min(s.seq_kv)
    } else {
        s.seq_kv
    }
}

/// Turns scaled scores of rows `t0..t0+rows` into probabilities in place (zero beyond each
/// row's visible keys) and returns each row's log-sum-exp.
fn softmax_rows<E: Element>(s: &AttentionShape, scores: &mut [E], cols: usize, t0: usize, rows: usize) -> Vec<E> {
    (0..rows)
        .map(|i| {
            let row = &mut scores[i * cols..(i + 1) * cols];
            let vis = visible(s, t0 + i);
            let max = row[..vis].iter().copied().fold(E::NEG_INFINITY, E::max);
            let mut sum = E::ZERO;
            for x in &mut row[..vis] {
                *x = (*x - max).exp();
                sum += *x;
            }
            let inv = E::ONE / sum;
            row[..vis].iter_mut().for_each(|x| *x *= inv);
            row[vis..].iter_mut().for_each(|x| *x = E::ZERO);
            max + sum.ln()
        })
        .collect()
}

fn group_size(s: &AttentionShape) -> usize {
    assert!(
        s.kv_heads > 0 && s.q_heads.is_multiple_of(s.kv_heads),
        "attention: {} query heads not a multiple of {} kv heads",
        s.q_heads,
        s.kv_heads
    );
    s.q_heads / s.kv_heads
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<E: Element>(
    s: &AttentionShape,
    q: &[E],
    lq: &Layout,
    k: &[E],
    lk: &Layout,
    v: &[E],
    lv: &Layout,
) -> (Vec<E>, Vec<E>) {
    let group = group_size(s);
    let (qh, kh, vh) = (Heads::new(lq), Heads::new(lk), Heads::new(lv));
    let oh = Heads::contiguous(s.seq_q, s.q_heads, s.head_dim);
    let mut out = pool::filled(s.batch * s.seq_q * s.q_heads * s.head_dim, E::ZERO);
    let mut lse = pool::filled(s.batch * s.q_heads * s.seq_q, E::ZERO);
    let blocks = s.seq_q.div_ceil(Q_BLOCK);
    let (out_p, lse_p) = (SendPtr(out.as_mut_ptr()), SendPtr(lse.as_mut_ptr()));
    let scale = E::from_f64(s.scale);
    (0..s.batch * s.q_heads * blocks).into_par_iter().for_each(|task| {
        let (bh, blk) = (task / blocks, task % blocks);
        let (b, h) = (bh / s.q_heads, bh % s.q_heads);
        let t0 = blk * Q_BLOCK;
        let rows = Q_BLOCK.min(s.seq_q - t0);
        let cols = visible(s, t0 + rows - 1);
        let mut scores = vec![E::ZERO; rows * cols];
        let srow = MatRef { offset: 0, rs: cols, cs: 1 };
        // SAFETY: operand views lie inside the validated q/k/v layouts; each task writes
        // only its own rows of head `h` in `out` and `lse`.
        unsafe {
            gemm_raw(
                rows,
                s.head_dim,
                cols,
                scale,
                q.as_ptr(),
                qh.mat(b, h, t0),
                k.as_ptr(),
                kh.mat_t(b, h / group, 0),
                E::ZERO,
                scores.as_mut_ptr(),
                srow,
            );
            let row_lse = softmax_rows(s, &mut scores, cols, t0, rows);
            gemm_raw(
                rows,
                cols,
                s.head_dim,
                E::ONE,
                scores.as_ptr(),
                srow,
                v.as_ptr(),
                vh.mat(b, h / group, 0),
                E::ZERO,
                out_p.get(),
                oh.mat(b, h, t0),
            );
            let lse_row = lse_p.get().add((b * s.q_heads + h) * s.seq_q + t0);
            for (i, x) in row_lse.into_iter().enumerate() {
                *lse_row.add(i) = x;
            }
        }
    });
    (out, lse)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<E: Element>(
    s: &AttentionShape,
    q: &[E],
    lq: &Layout,
    k: &[E],
    lk: &Layout,
    v: &[E],
    lv: &Layout,
    out: &[E],
    lse: &[E],
    dout: &[E],
    ldout: &Layout,
) -> (Vec<E>, Vec<E>, Vec<E>) {
    let group = group_size(s);
    let (qh, kh, vh, doh) = (Heads::new(lq), Heads::new(lk), Heads::new(lv), Heads::new(ldout));
    let oh = Heads::contiguous(s.seq_q, s.q_heads, s.head_dim);
    let kvh = Heads::contiguous(s.seq_kv, s.kv_heads, s.head_dim);
    let mut dq = pool::filled(s.batch * s.seq_q * s.q_heads * s.head_dim, E::ZERO);
    let mut dk = pool::filled(s.batch * s.seq_kv * s.kv_heads * s.head_dim, E::ZERO);
    let mut dv = pool::filled(dk.len(), E::ZERO);
    let (dq_p, dk_p, dv_p) = (SendPtr(dq.as_mut_ptr()), SendPtr(dk.as_mut_ptr()), SendPtr(dv.as_mut_ptr()));
    let scale = E::from_f64(s.scale);
    let dh = s.head_dim;
    // One task per (batch, kv head): it owns that head's dk/dv and its query heads' dq.
    (0..s.batch * s.kv_heads).into_par_iter().for_each(|task| {
        let (b, g) = (task / s.kv_heads, task % s.kv_heads);
        for h in g * group..(g + 1) * group {
            for t0 in (0..s.seq_q).step_by(Q_BLOCK) {
                let rows = Q_BLOCK.min(s.seq_q - t0);
                let cols = visible(s, t0 + rows - 1);
                let srow = MatRef { offset: 0, rs: cols, cs: 1 };
                let scol = MatRef { offset: 0, rs: 1, cs: cols };
                let mut p = vec![E::ZERO; rows * cols];
                let mut dp = vec![E::ZERO; rows * cols];
                let lse_row = &lse[(b * s.q_heads + h) * s.seq_q + t0..][..rows];
                // SAFETY: views lie inside validated layouts; dq/dk/dv regions written here
                // belong to this task alone.
                unsafe {
                    gemm_raw(
                        rows,
                        dh,
                        cols,
                        scale,
                        q.as_ptr(),
                        qh.mat(b, h, t0),
                        k.as_ptr(),
                        kh.mat_t(b, g, 0),
                        E::ZERO,
                        p.as_mut_ptr(),
                        srow,
                    );
                    gemm_raw(
                        rows,
                        dh,
                        cols,
                        E::ONE,
                        dout.as_ptr(),
                        doh.mat(b, h, t0),
                        v.as_ptr(),
                        vh.mat_t(b, g, 0),
                        E::ZERO,
                        dp.as_mut_ptr(),
                        srow,
                    );
                }
                for i in 0..rows {
                    let vis = visible(s, t0 + i);
                    let o = oh.mat(b, h, t0 + i).offset;
                    let d = doh.mat(b, h, t0 + i);
                    let di: E = (0..dh).map(|c| out[o + c] * dout[d.offset + c * d.cs]).sum();
                    let (pr, dpr) = (&mut p[i * cols..(i + 1) * cols], &mut dp[i * cols..(i + 1) * cols]);
                    for j in 0..cols {
                        let pij = if j < vis { (pr[j] - lse_row[i]).exp() } else { E::ZERO };
                        pr[j] = pij;
                        dpr[j] = pij * (dpr[j] - di);
                    }
                }
                unsafe {
                    gemm_raw(
                        rows,
                        cols,
                        dh,
                        scale,
                        dp.as_ptr(),
                        srow,
                        k.as_ptr(),
                        kh.mat(b, g, 0),
                        E::ZERO,
                        dq_p.get(),
                        oh.mat(b, h, t0),
                    );
                    gemm_raw(
                        cols,
                        rows,
                        dh,
                        scale,
                        dp.as_ptr(),
                        scol,
                        q.as_ptr(),
                        qh.mat(b, h, t0),
                        E::ONE,
                        dk_p.get(),
                        kvh.mat(b, g, 0),
                    );
                    gemm_raw(
                        cols,
                        rows,
                        dh,
                        E::ONE,
                        p.as_ptr(),
                        scol,
                        dout.as_ptr(),
                        doh.mat(b, h, t0),
                        E::ONE,
                        dv_p.get(),
                        kvh.mat(b, g, 0),
                    );
                }
            }
        }
    });
    (dq, dk, dv)
}
