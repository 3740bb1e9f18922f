//! Reductions (`sum`/`mean`/`max`/`min` over axis subsets, `sum_all`, `argmax`,
//! `sum_to`), matmul in all its batch forms, and the large sizes that take the kernels'
//! parallel paths.

use super::elementwise::broadcastable;
use super::reference::{self as r, Arr};
use super::{
    any_view, check, check_shape, close, close_with, ensure, shape, tol_acc, tol_elem, Dist, Gen, View, EXACT,
};
use crate::backend::Backend;
use crate::tensor::Tensor;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

fn kept_shape(s: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    let kept = s.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d });
    if keepdim {
        kept.collect()
    } else {
        s.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
    }
}

/// Checks sum/mean/max/min of `x` over `axes` (given in any order).
fn check_reductions<B: Backend>(x: &Tensor<B>, xa: &Arr, axes: &[usize], keepdim: bool) -> TestCaseResult {
    let out = kept_shape(&xa.shape, axes, keepdim);
    let n: usize = (0..xa.rank()).filter(|a| axes.contains(a)).map(|a| xa.shape[a]).product();
    let what = |op: &str| format!("{op} over {axes:?} of {:?} (keepdim {keepdim})", xa.shape);
    let sum = xa.reduce(axes, 0.0, |a, b| a + b).reshape(&out);
    let scale = xa.map(f64::abs).reduce(axes, 0.0, |a, b| a + b).reshape(&out);
    close_with(&what("sum"), &x.sum(axes, keepdim), &sum, &scale.data, tol_acc::<B>())?;
    let mean = sum.map(|v| v / n as f64);
    let mscale: Vec<f64> = scale.data.iter().map(|v| v / n as f64).collect();
    close_with(&what("mean"), &x.mean(axes, keepdim), &mean, &mscale, tol_acc::<B>())?;
    let max = xa.reduce(axes, f64::NEG_INFINITY, f64::max).reshape(&out);
    close(&what("max"), &x.max(axes, keepdim), &max, EXACT)?;
    let min = xa.reduce(axes, f64::INFINITY, f64::min).reshape(&out);
    close(&what("min"), &x.min(axes, keepdim), &min, EXACT)
}

/// Reductions over every subset of axes (listed in shuffled order, sometimes with a
/// repeat), keepdim on and off,
/// on strided and broadcast inputs; `sum_all`.
pub fn reduce<B: Backend>(b: &B) {
    let strat = (shape(0..=4, 1..=5), any_view(), any::<u8>(), any::<bool>(), any::<u64>());
    check("reduce", 1.0, strat, |(s, v, mask, keepdim, seed)| {
        let mut g = Gen::new(b, seed);
        let (x, xa) = g.input(&s, v, Dist::Normal(1.0));
        let mut axes: Vec<usize> = (0..s.len()).filter(|i| mask >> i & 1 == 1).collect();
        if !axes.is_empty() && g.below(4) == 0 {
            // A repeated axis counts once.
            axes.push(axes[g.below(axes.len())]);
        }
        g.rng.shuffle(&mut axes);
        check_reductions(&x, &xa, &axes, keepdim)?;
        let all: Vec<usize> = (0..s.len()).collect();
        let want = xa.reduce(&all, 0.0, |a, b| a + b).reshape(&[]);
        let scale = xa.data.iter().map(|v| v.abs()).sum::<f64>();
        close_with("sum_all", &x.sum_all(), &want, &[scale], tol_acc::<B>())
    });
}

/// Reductions, elementwise maps and strided copies large enough for the kernels'
/// parallel paths (more than 2¹⁶ elements), contiguous and transposed.
pub fn parallel_paths<B: Backend>(b: &B) {
    let mut g = Gen::new(b, 7);
    let ok = |r: TestCaseResult| r.unwrap_or_else(|e| panic!("parallel_paths: {e}"));
    for view in [View::Contiguous, View::Transposed, View::Narrowed] {
        let (x, xa) = g.input(&[300, 230], view, Dist::Normal(1.0));
        for axes in [&[0][..], &[1], &[0, 1]] {
            ok(check_reductions(&x, &xa, axes, false));
        }
        let (y, ya) = g.input(&[300, 230], View::Transposed, Dist::Normal(1.0));
        ok(close("large add", &x.add(&y), &xa.zip(&ya, |a, b| a + b), tol_elem::<B>()));
        ok(close("large exp", &x.exp(), &xa.map(f64::exp), tol_elem::<B>()));
        ok(close("large copy", &x.contiguous(), &xa, EXACT));
        let (z, za) = g.input(&[300, 1], View::Contiguous, Dist::Normal(1.0));
        ok(close("large broadcast mul", &x.mul(&z), &xa.zip(&za, |a, b| a * b), tol_elem::<B>()));
        let joined = Tensor::concat(&[x.clone(), y.clone()], 1);
        let want = Arr::from_fn(&[300, 460], |i| if i[1] < 230 { xa.at(i) } else { ya.at(&[i[0], i[1] - 230]) });
        ok(close("large concat", &joined, &want, EXACT));
    }
}

/// `argmax` along every axis of strided inputs; ties resolve to the first index.
pub fn argmax<B: Backend>(b: &B) {
    const TIES: &[f64] = &[-1.0, 0.0, 2.0, 2.0];
    let strat = (shape(1..=4, 1..=5), any_view(), any::<prop::sample::Index>(), any::<bool>(), any::<u64>());
    check("argmax", 1.0, strat, |(s, v, axis, ties, seed)| {
        let mut g = Gen::new(b, seed);
        let axis = axis.index(s.len());
        let (x, xa) = g.input(&s, v, if ties { Dist::Choice(TIES) } else { Dist::Normal(1.0) });
        let mut outer = s.clone();
        outer.remove(axis);
        let mut want = Vec::new();
        r::for_each_index(&outer, |o| {
            let mut idx = o.to_vec();
            idx.insert(axis, 0);
            let mut best = 0;
            for i in 0..s[axis] {
                idx[axis] = i;
                let v = xa.at(&idx);
                idx[axis] = best;
                if v > xa.at(&idx) {
                    best = i;
                }
            }
            want.push(best as u32);
        });
        let got = x.argmax(axis);
        ensure(got == want, || format!("argmax axis {axis} of {s:?}: got {got:?}, expected {want:?}"))
    });
}

/// `sum_to` (the adjoint of broadcasting) to every shape that broadcasts to the input.
pub fn sum_to<B: Backend>(b: &B) {
    check("sum_to", 1.0, (shape(0..=4, 1..=4), any_view(), any::<u64>()), |(s, v, seed)| {
        let mut g = Gen::new(b, seed);
        let target = broadcastable(&mut g, &s);
        let (x, xa) = g.input(&s, v, Dist::Normal(1.0));
        let extra = s.len() - target.len();
        let axes: Vec<usize> = (0..s.len()).filter(|&i| i < extra || target[i - extra] == 1).collect();
        let want = xa.reduce(&axes, 0.0, |a, b| a + b).reshape(&target);
        let scale = xa.map(f64::abs).reduce(&axes, 0.0, |a, b| a + b).reshape(&target);
        close_with(&format!("sum_to {target:?} from {s:?}"), &x.sum_to(&target), &want, &scale.data, tol_acc::<B>())
    });
}

/// `a × b` against the reference, each element within a tolerance relative to `Σ|a·b|`.
fn check_matmul<B: Backend>(what: &str, a: &Tensor<B>, aa: &Arr, b: &Tensor<B>, ba: &Arr) -> TestCaseResult {
    let (want, scale) = r::matmul(aa, ba);
    let got = a.matmul(b);
    check_shape(what, &got, &want.shape)?;
    close_with(&format!("{what}: {:?} × {:?}", aa.shape, ba.shape), &got, &want, &scale.data, tol_acc::<B>())
}

/// Matmul: 2-D, batched, broadcast batches (the folded `[B,T,K]×[K,N]` GEMM and the
/// per-batch path, in parallel over batches), rank-4 batches (one operand broadcast over
/// some of them), single rows, on transposed
/// (`.t()`), permuted, narrowed and expanded operands.
pub fn matmul<B: Backend>(b: &B) {
    let strat = (
        (0..9usize, 1..=6usize, 1..=7usize, 1..=6usize),
        (1..=6usize, 1..=3usize),
        any_view(),
        any_view(),
        any::<u64>(),
    );
    check("matmul", 2.0, strat, |((kind, m, k, n), (bt, bt2), va, vb, seed)| {
        let mut g = Gen::new(b, seed);
        let (sa, sb): (Vec<usize>, Vec<usize>) = match kind {
            0 => (vec![m, k], vec![k, n]),
            1 => (vec![bt, m, k], vec![bt, k, n]),
            2 => (vec![bt, m, k], vec![k, n]),
            3 => (vec![bt, 1, m, k], vec![bt2, k, n]),
            4 => (vec![1, m, k], vec![bt, k, n]),
            5 => (vec![bt, 1, k], vec![k, n]),
            6 => (vec![bt2, bt, m, k], vec![bt2, bt, k, n]),
            7 => (vec![bt2, bt, m, k], vec![bt, k, n]),
            _ => (vec![m, k], vec![bt, k, n]),
        };
        let (x, xa) = g.input(&sa, va, Dist::Normal(1.0));
        let (y, ya) = g.input(&sb, vb, Dist::Normal(1.0));
        check_matmul(&format!("matmul case {kind}"), &x, &xa, &y, &ya)?;
        // x·yᵀ through a transposed view of a row-major [.., n, k] tensor.
        let (w, wa) = g.input(&[n, k], va, Dist::Normal(1.0));
        check_matmul("matmul by .t()", &x, &xa, &w.t(), &wa.transpose(0, 1))
    });
}

/// Matmul sizes past the GEMM threading threshold (sequential batch loop), many small
/// batch entries (parallel batch loop), a large folded GEMM on a narrowed view, and a
/// transposed weight.
pub fn matmul_large<B: Backend>(b: &B) {
    let mut g = Gen::new(b, 11);
    let ok = |r: TestCaseResult| r.unwrap_or_else(|e| panic!("matmul_large: {e}"));
    let (x, xa) = g.input(&[2, 48, 300], View::Contiguous, Dist::Normal(1.0));
    let (y, ya) = g.input(&[2, 300, 40], View::Transposed, Dist::Normal(1.0));
    ok(check_matmul("threaded GEMM per batch", &x, &xa, &y, &ya));
    let (x, xa) = g.input(&[16, 9, 7], View::Permuted, Dist::Normal(1.0));
    let (y, ya) = g.input(&[16, 7, 5], View::Narrowed, Dist::Normal(1.0));
    ok(check_matmul("16 batches in parallel", &x, &xa, &y, &ya));
    let (base, basea) = g.input(&[3, 40, 210], View::Contiguous, Dist::Normal(1.0));
    let (x, xa) = (base.narrow(2, 5, 200), basea.narrow(2, 5, 200));
    let (w, wa) = g.input(&[48, 200], View::Contiguous, Dist::Normal(1.0));
    ok(check_matmul("folded [B,T,K]×[K,N] with Wᵀ", &x, &xa, &w.t(), &wa.transpose(0, 1)));
    let (x, xa) = g.input(&[3, 1, 200], View::Contiguous, Dist::Normal(1.0));
    ok(check_matmul("folded single rows", &x, &xa, &w.t(), &wa.transpose(0, 1)));
}
