//! Direct loops for tiny matrix products.
//!
//! A batched matmul of many tiny matrices (the per-token routing products of a GHC
//! module: a few rows by a few slots by `d_b` features) spends most of its time in
//! matrixmultiply's packing and dispatch, not in arithmetic. Plain loops that stream the
//! contiguous operand do better there. Two loop orders cover the layouts that occur:
//! rows of B contiguous (`C[i,:] += A[i,p]·B[p,:]`, vectorised over `n`), or A's rows and
//! B's columns contiguous (dot products over `k`); anything else takes a strided loop.

use super::lanes::dot;
use super::matmul::MatRef;
use crate::element::Element;

/// Multiply-accumulates below which a product takes these loops instead of GEMM.
pub(crate) const SMALL_GEMM_MACS: usize = 1 << 15;

/// `C = A·B` for an `m×k` A and `k×n` B (strided views of `a`, `b`) into the contiguous
/// `m×n` block `c`.
pub(crate) fn small_gemm<E: Element>(
    (m, k, n): (usize, usize, usize),
    a: &[E],
    ar: MatRef,
    b: &[E],
    br: MatRef,
    c: &mut [E],
) {
    let a_at = |i: usize, p: usize| a[ar.offset + i * ar.rs + p * ar.cs];
    if br.cs == 1 {
        for (i, row) in c.chunks_exact_mut(n).enumerate().take(m) {
            row.fill(E::ZERO);
            for p in 0..k {
                let x = a_at(i, p);
                let b_row = &b[br.offset + p * br.rs..][..n];
                for (o, &y) in row.iter_mut().zip(b_row) {
                    *o += x * y;
                }
            }
        }
    } else if ar.cs == 1 && br.rs == 1 {
        for i in 0..m {
            let a_row = &a[ar.offset + i * ar.rs..][..k];
            for j in 0..n {
                let b_col = &b[br.offset + j * br.cs..][..k];
                c[i * n + j] = dot(a_row, b_col);
            }
        }
    } else {
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a_at(i, p) * b[br.offset + p * br.rs + j * br.cs]).sum();
            }
        }
    }
}
