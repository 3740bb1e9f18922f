//! Batched matrix multiplication on strided operands through matrixmultiply's GEMM.

use super::strided::SendPtr;
use crate::element::Element;
use crate::layout::Layout;
use rayon::prelude::*;

/// Below this `m·k + k·n`, matrixmultiply runs single-threaded, so independent batch
/// entries are better spread over rayon's threads instead.
const GEMM_THREADING_THRESHOLD: usize = 1 << 15;

/// One strided matrix operand: element `(i, j)` is at `offset + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef {
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

/// `C ← alpha·A·B + beta·C` for `m×k` A and `k×n` B, all strided.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<E: Element>(
    m: usize,
    k: usize,
    n: usize,
    alpha: E,
    a: &[E],
    ar: MatRef,
    b: &[E],
    br: MatRef,
    beta: E,
    c: &mut [E],
    cr: MatRef,
) {
    if m == 0 || n == 0 {
        return;
    }
    let extent = |r: MatRef, rows: usize, cols: usize| r.offset + (rows - 1) * r.rs + (cols - 1) * r.cs + 1;
    assert!(extent(cr, m, n) <= c.len(), "gemm: C view out of bounds");
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let x = &mut c[cr.offset + i * cr.rs + j * cr.cs];
                *x = if beta == E::ZERO { E::ZERO } else { beta * *x };
            }
        }
        return;
    }
    assert!(extent(ar, m, k) <= a.len() && extent(br, k, n) <= b.len(), "gemm: operand view out of bounds");
    // SAFETY: the three views were bounds-checked above and `c` is a distinct `&mut`.
    unsafe { gemm_raw(m, k, n, alpha, a.as_ptr(), ar, b.as_ptr(), br, beta, c.as_mut_ptr(), cr) }
}

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
    let mut out = vec![E::ZERO; batch * m * n];
    let (ars, acs) = (la.strides()[r - 2], la.strides()[r - 1]);
    let (brs, bcs) = (lb.strides()[r - 2], lb.strides()[r - 1]);
    let b_shared = lb.strides()[..r - 2].iter().all(|&s| s == 0);
    if batch > 1 && b_shared {
        if let Some(rs) = fold_rows(la) {
            // x·W with a shared W: one tall GEMM instead of `batch` small ones.
            let ar = MatRef { offset: la.offset(), rs, cs: acs };
            let br = MatRef { offset: lb.offset(), rs: brs, cs: bcs };
            gemm(batch * m, k, n, E::ONE, a, ar, b, br, E::ZERO, &mut out, MatRef { offset: 0, rs: n, cs: 1 });
            return out;
        }
    }
    let entry = |i: usize| {
        (
            MatRef { offset: la.offset() + batch_offset(i, batch_shape, &la.strides()[..r - 2]), rs: ars, cs: acs },
            MatRef { offset: lb.offset() + batch_offset(i, batch_shape, &lb.strides()[..r - 2]), rs: brs, cs: bcs },
        )
    };
    let cr = |i: usize| MatRef { offset: i * m * n, rs: n, cs: 1 };
    if batch > 1 && m * k + k * n < GEMM_THREADING_THRESHOLD && m * n * k > 0 {
        let c = SendPtr(out.as_mut_ptr());
        (0..batch).into_par_iter().for_each(|i| {
            let (ar, br) = entry(i);
            // SAFETY: batch entries write disjoint `m×n` blocks of `out`; operand views lie
            // within their layouts, which the Tensor wrapper validated against the storage.
            unsafe { gemm_raw(m, k, n, E::ONE, a.as_ptr(), ar, b.as_ptr(), br, E::ZERO, c.get(), cr(i)) };
        });
    } else {
        for i in 0..batch {
            let (ar, br) = entry(i);
            gemm(m, k, n, E::ONE, a, ar, b, br, E::ZERO, &mut out, cr(i));
        }
    }
    out
}
