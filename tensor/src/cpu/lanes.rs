//! Sums in independent lanes, so that loops with a reduction vectorise.
//!
//! A plain `iter().sum()` adds in order, which the compiler may not reorder for floats: the
//! loop stays scalar, and so does any arithmetic feeding it (an exponential, a product).
//! Sixteen accumulators give it a fixed, size-determined order it can run as SIMD.

use crate::element::Element;

const LANES: usize = 16;

/// Folds `f(x[i])` with `combine` (associative and commutative) from `init`, in [`LANES`]
/// interleaved partial results.
#[inline(always)]
pub(crate) fn reduce_by<E: Element>(x: &[E], init: E, f: impl Fn(E) -> E, combine: impl Fn(E, E) -> E) -> E {
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(init, |a, &v| combine(a, f(v)));
    let mut acc = [init; LANES];
    for c in chunks {
        for l in 0..LANES {
            acc[l] = combine(acc[l], f(c[l]));
        }
    }
    acc.into_iter().fold(tail, combine)
}

/// `Σ f(x[i])`, in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn sum_by<E: Element>(x: &[E], f: impl Fn(E) -> E) -> E {
    reduce_by(x, E::ZERO, f, |a, b| a + b)
}

/// The largest element (−∞ for an empty slice).
#[inline(always)]
pub(crate) fn max<E: Element>(x: &[E]) -> E {
    reduce_by(x, E::NEG_INFINITY, |v| v, E::max)
}

/// `Σ x[i]·y[i]` over equal-length slices, in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn dot<E: Element>(x: &[E], y: &[E]) -> E {
    assert_eq!(x.len(), y.len(), "dot: lengths differ");
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: E = xc.remainder().iter().zip(yc.remainder()).map(|(&a, &b)| a * b).sum();
    let mut acc = [E::ZERO; LANES];
    for (a, b) in xc.zip(yc) {
        for l in 0..LANES {
            acc[l] += a[l] * b[l];
        }
    }
    acc.iter().copied().sum::<E>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_sequential_sums_on_every_length() {
        for n in 0..50 {
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let y: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            let seq: f64 = x.iter().map(|v| v.exp()).sum();
            assert!((sum_by(&x, f64::exp) - seq).abs() < 1e-12 * seq.abs().max(1.0), "sum_by, n = {n}");
            assert_eq!(max(&x), x.iter().copied().fold(f64::NEG_INFINITY, f64::max), "max, n = {n}");
            let seq: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            assert!((dot(&x, &y) - seq).abs() < 1e-12, "dot, n = {n}");
        }
    }
}
