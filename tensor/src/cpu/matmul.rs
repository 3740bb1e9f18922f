//! Batched matrix multiplication on strided operands through matrixmultiply's GEMM.

use super::pool;
use super::small_gemm::{small_gemm, SMALL_GEMM_MACS};
use super::strided::SendPtr;
use crate::element::Element;
use crate::layout::Layout;
use rayon::prelude::*;
use std::ops::Range;

/// Below this `m·k + k·n`, matrixmultiply (0.3) runs a GEMM on one thread: its
/// `LoopThreadConfig` allows one thread per 2¹⁴ of that size, and threading takes two.
const GEMM_THREADING_THRESHOLD: usize = 1 << 15;

/// Thinnest row block [`single_threaded_rows`] cuts: one AVX-512 microkernel height. Every
/// block packs all of B again, so thinner blocks would spend more on packing than they save.
const MIN_BLOCK_ROWS: usize = 16;

/// Rows per block when an `m×k · k×n` product is cut into equal row blocks that matrixmultiply
/// runs single-threaded (`rows·k + k·n` below [`GEMM_THREADING_THRESHOLD`]): `m` when the whole
/// product already is, `None` when blocks would be thinner than [`MIN_BLOCK_ROWS`].
fn single_threaded_rows(m: usize, k: usize, n: usize) -> Option<usize> {
    let max_rows = (GEMM_THREADING_THRESHOLD - 1).checked_sub(k * n)? / k;
    if max_rows >= m {
        Some(m)
    } else if max_rows >= MIN_BLOCK_ROWS {
        Some(m.div_ceil(m.div_ceil(max_rows)))
    } else {
        None
    }
}

/// One strided matrix operand: element `(i, j)` is at `offset + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef {
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

/// `C ← alpha·A·B + beta·C` for `m×k` A and `k×n` B, all strided.
///
/// # Safety
/// As [`Element::gemm`]: valid, bounds-respecting views; `c` does not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw<E: Element>(
    m: usize,
    k: usize,
    n: usize,
    alpha: E,
    a: *const E,
    ar: MatRef,
    b: *const E,
    br: MatRef,
    beta: E,
    c: *mut E,
    cr: MatRef,
) {
    E::gemm(
        m,
        k,
        n,
        alpha,
        a.add(ar.offset),
        ar.rs as isize,
        ar.cs as isize,
        b.add(br.offset),
        br.rs as isize,
        br.cs as isize,
        beta,
        c.add(cr.offset),
        cr.rs as isize,
        cr.cs as isize,
    )
}

/// Storage offsets of batch entry `i` for batch axes `shape` with `strides`.
fn batch_offset(mut i: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut off = 0;
    for ax in (0..shape.len()).rev() {
        off += (i % shape[ax]) * strides[ax];
        i /= shape[ax];
    }
    off
}

/// If the batch axes and the row axis of `l` (`[..., M, K]`) form one evenly strided
/// axis, returns its row stride: the whole batch is then a single `(batch·M)×K` matrix.
fn fold_rows(l: &Layout) -> Option<usize> {
    let r = l.rank();
    let mut stride = l.strides()[r - 2];
    let mut expect = stride * l.shape()[r - 2];
    for ax in (0..r - 2).rev() {
        if l.shape()[ax] != 1 && l.strides()[ax] != expect {
            return None;
        }
        expect *= l.shape()[ax];
    }
    if l.shape()[r - 2] == 1 {
        // A single row has no stride of its own: borrow the batch's.
        stride = (0..r - 2).rev().find(|&ax| l.shape()[ax] != 1).map_or(stride, |ax| l.strides()[ax]);
    }
    Some(stride)
}

pub(crate) fn matmul<E: Element>(a: &[E], la: &Layout, b: &[E], lb: &Layout) -> Vec<E> {
    let r = la.rank();
    let (m, k, n) = (la.shape()[r - 2], la.shape()[r - 1], lb.shape()[r - 1]);
    let batch_shape = &la.shape()[..r - 2];
    let batch: usize = batch_shape.iter().product();
    let len = batch * m * n;
    if len == 0 || k == 0 {
        return pool::filled(len, E::ZERO);
    }
    assert!(la.storage_extent() <= a.len() && lb.storage_extent() <= b.len(), "matmul: operand view out of bounds");
    // Every output element is written exactly once, by a GEMM with beta = 0, and such a
    // GEMM never reads C ("if β is zero, then C does not need to be initialized"). So the
    // buffer starts uninitialised: zeroing it first would be one more pass over the whole
    // output, serial, before a GEMM that may run on several threads.
    let mut out: Vec<E> = pool::with_capacity(len);
    let c = SendPtr(out.as_mut_ptr());
    let (ars, acs) = (la.strides()[r - 2], la.strides()[r - 1]);
    let (brs, bcs) = (lb.strides()[r - 2], lb.strides()[r - 1]);
    let b_shared = lb.strides()[..r - 2].iter().all(|&s| s == 0);
    let fold = if batch > 1 && b_shared { fold_rows(la) } else { None };
    if let Some(rs) = fold {
        // x·W with a shared W: one tall GEMM instead of `batch` small ones.
        let ar = MatRef { offset: la.offset(), rs, cs: acs };
        let br = MatRef { offset: lb.offset(), rs: brs, cs: bcs };
        let cr = MatRef { offset: 0, rs: n, cs: 1 };
        // SAFETY: the folded view covers exactly the elements of `la`, which lie within `a`
        // (checked above), as do those of `lb`; C is the whole `len`-element buffer.
        unsafe { gemm_raw(batch * m, k, n, E::ONE, a.as_ptr(), ar, b.as_ptr(), br, E::ZERO, c.get(), cr) };
    } else {
        let entry = |i: usize| {
            (
                MatRef { offset: la.offset() + batch_offset(i, batch_shape, &la.strides()[..r - 2]), rs: ars, cs: acs },
                MatRef { offset: lb.offset() + batch_offset(i, batch_shape, &lb.strides()[..r - 2]), rs: brs, cs: bcs },
            )
        };
        // Rows `rows` of batch entry `i`.
        // SAFETY (for the calls below): distinct `(i, rows)` write disjoint blocks of the
        // `len`-element buffer; each operand view is part of its layout, which lies within
        // its slice (checked above).
        let product = |i: usize, rows: Range<usize>| unsafe {
            let (mut ar, br) = entry(i);
            ar.offset += rows.start * ar.rs;
            let cr = MatRef { offset: (i * m + rows.start) * n, rs: n, cs: 1 };
            gemm_raw(rows.len(), k, n, E::ONE, a.as_ptr(), ar, b.as_ptr(), br, E::ZERO, c.get(), cr)
        };
        let block = if batch > 1 { single_threaded_rows(m, k, n) } else { None };
        match block {
            // Tiny entries (per-token routing products): direct loops, several per task.
            _ if batch > 1 && m * k * n <= SMALL_GEMM_MACS => {
                let per = (SMALL_GEMM_MACS / (m * k * n)).clamp(1, batch);
                (0..batch.div_ceil(per)).into_par_iter().for_each(|t| {
                    for i in t * per..((t + 1) * per).min(batch) {
                        let (ar, br) = entry(i);
                        // SAFETY: block `i` is written by this task alone; it is zeroed
                        // before a slice is made of it.
                        let block = unsafe {
                            let p = c.get().add(i * m * n);
                            std::ptr::write_bytes(p, 0, m * n);
                            std::slice::from_raw_parts_mut(p, m * n)
                        };
                        small_gemm((m, k, n), a, ar, b, br, block);
                    }
                });
            }
            // Independent single-threaded GEMMs, spread over rayon's threads. Where an entry
            // is too big to stay single-threaded in matrixmultiply, it is cut into row blocks
            // that are: matrixmultiply threads one GEMM with a barrier per packed panel of B,
            // and on products this small that costs much of the gain (64×(256×64)·(64×256)
            // on two threads: about 1.4× one thread that way, 1.8–1.9× in row blocks).
            // Rows are computed alike either way, so the results do not change.
            Some(rows) if rows == m || rayon::current_num_threads() > 1 => {
                let blocks = m.div_ceil(rows);
                (0..batch * blocks).into_par_iter().for_each(|t| {
                    let start = (t % blocks) * rows;
                    product(t / blocks, start..(start + rows).min(m))
                });
            }
            // Large entries: one after another, each threaded by matrixmultiply.
            _ => (0..batch).for_each(|i| product(i, 0..m)),
        }
    }
    // SAFETY: the GEMMs above wrote all `len` elements.
    unsafe { out.set_len(len) };
    out
}
