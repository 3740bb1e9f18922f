//! The backend conformance suite: every op of [`Tensor`] checked against a naive f64
//! reference ([`reference`]) on random shapes (proptest), non-contiguous inputs
//! (transposed, permuted, narrowed, broadcast views) and NumPy broadcasting.
//!
//! Every test is a function generic over the backend, so any device runs the very same
//! checks. A backend's test file expands them into one `#[test]` each (like candle's
//! `test_device!`):
//!
//! ```text
//! // gpu/tests/conformance.rs, with `tensor = { workspace = true, features = ["conformance"] }`
//! // among the dev-dependencies:
//! mod wgpu_f32 {
//!     tensor::conformance_tests!(gpu::Wgpu::new());
//! }
//! ```
//!
//! or calls [`run_all`] / an entry of [`all`]. Tolerances follow the element type
//! (tight for `f64`, fp32-sized for `f32`); f64 backends additionally check every
//! hand-written backward against central finite differences of their own forward.
//!
//! Knobs (environment): `CONFORMANCE_CASES` (proptest cases per property, default 24),
//! `CONFORMANCE_SEED` (mixed into each property's fixed seed; runs are deterministic).
//!
//! Only compiled with the `conformance` feature (it needs `proptest`).

mod elementwise;
mod fused;
mod linalg;
mod misc;
pub mod reference;

pub use elementwise::{binary, scalar_ops, unary, unary_backward, where_cond};
pub use fused::{attention, attention_backward, cross_entropy, group_norm, rms_norm, rope, softmax};
pub use linalg::{argmax, matmul, matmul_large, parallel_paths, reduce, sum_to};
pub use misc::{
    adamw_step, concat_split_stack, empty_tensors, index_add, index_select, init, reshape, sgd_step, views,
};

use crate::backend::Backend;
use crate::element::Element;
use crate::rng::Rng;
use crate::tensor::Tensor;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestCaseResult, TestRng, TestRunner};
use reference::Arr;
use std::fmt::Debug;

macro_rules! define_suite {
    ($($name:ident),* $(,)?) => {
        /// Names of every conformance test, in [`all`]'s order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        /// Every conformance test with its name.
        pub fn all<B: Backend>() -> Vec<(&'static str, fn(&B))> {
            vec![$((stringify!($name), $name::<B> as fn(&B))),*]
        }
    };
}

define_suite!(
    init,
    views,
    reshape,
    unary,
    unary_backward,
    scalar_ops,
    binary,
    where_cond,
    reduce,
    parallel_paths,
    argmax,
    sum_to,
    matmul,
    matmul_large,
    softmax,
    cross_entropy,
    rms_norm,
    group_norm,
    rope,
    attention,
    attention_backward,
    index_select,
    index_add,
    concat_split_stack,
    empty_tensors,
    adamw_step,
    sgd_step,
);

/// Expands into one `#[test]` per conformance test for the backend expression (evaluated
/// afresh in each test), plus a test that the expansion lists every test in [`all`].
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@expand $backend;
            init, views, reshape, unary, unary_backward, scalar_ops, binary, where_cond, reduce, parallel_paths,
            argmax, sum_to, matmul, matmul_large, softmax, cross_entropy, rms_norm, group_norm, rope, attention,
            attention_backward, index_select, index_add, concat_split_stack, empty_tensors, adamw_step, sgd_step);
    };
    (@expand $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::$name(&$backend);
            }
        )*
        #[test]
        fn conformance_list_is_complete() {
            assert_eq!(&[$(stringify!($name)),*][..], $crate::conformance::NAMES);
        }
    };
}

/// Runs every conformance test on `backend`, panicking on the first failure.
pub fn run_all<B: Backend>(backend: &B) {
    for (name, test) in all::<B>() {
        eprintln!("conformance: {name} on {}", backend.name());
        test(backend);
    }
}

// ---- tolerances and comparisons ------------------------------------------------------

/// Accepts `|got − want| ≤ abs + rel·(|want| + scale)`, where `scale` is the size of the
/// terms that produced `want` (zero for elementwise ops).
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub rel: f64,
    pub abs: f64,
}

pub(crate) fn is_f64<B: Backend>() -> bool {
    std::mem::size_of::<B::Elem>() == 8
}

/// Tolerance for results of a few roundings (elementwise ops, copies).
pub(crate) fn tol_elem<B: Backend>() -> Tol {
    if is_f64::<B>() {
        Tol { rel: 1e-12, abs: 1e-13 }
    } else {
        Tol { rel: 2e-6, abs: 1e-6 }
    }
}

/// Tolerance for accumulated results (reductions, products, fused ops), relative to a
/// scale of the accumulated terms.
pub(crate) fn tol_acc<B: Backend>() -> Tol {
    if is_f64::<B>() {
        Tol { rel: 1e-10, abs: 1e-12 }
    } else {
        Tol { rel: 2e-5, abs: 1e-6 }
    }
}

/// Exact comparison (values that are selected, not computed).
pub(crate) const EXACT: Tol = Tol { rel: 0.0, abs: 0.0 };

fn fail(msg: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(msg))
}

/// Compares values with per-element scales (`None`: zero scale).
pub(crate) fn close_scaled(what: &str, got: &[f64], want: &[f64], scale: Option<&[f64]>, tol: Tol) -> TestCaseResult {
    if got.len() != want.len() {
        return fail(format!("{what}: {} values, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let s = scale.map_or(0.0, |s| s[i]);
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= tol.abs + tol.rel * (w.abs() + s)
        };
        if !ok {
            return fail(format!(
                "{what}: element {i}: got {g:e}, expected {w:e} (diff {:e}, scale {s:e}, {tol:?})\n  got  {:?}\n  want {:?}",
                (g - w).abs(),
                head(got),
                head(want)
            ));
        }
    }
    Ok(())
}

fn head(v: &[f64]) -> &[f64] {
    &v[..v.len().min(12)]
}

/// A tensor against its reference: shape, then values within `tol`.
pub(crate) fn close<B: Backend>(what: &str, got: &Tensor<B>, want: &Arr, tol: Tol) -> TestCaseResult {
    check_shape(what, got, &want.shape)?;
    close_scaled(what, &got.to_f64_vec(), &want.data, None, tol)
}

/// As [`close`], with a scale per element.
pub(crate) fn close_with<B: Backend>(
    what: &str,
    got: &Tensor<B>,
    want: &Arr,
    scale: &[f64],
    tol: Tol,
) -> TestCaseResult {
    check_shape(what, got, &want.shape)?;
    close_scaled(what, &got.to_f64_vec(), &want.data, Some(scale), tol)
}

/// As [`close`], every element scaled by the largest reference magnitude (for results of
/// long sums with cancellation).
pub(crate) fn close_norm<B: Backend>(what: &str, got: &Tensor<B>, want: &Arr, tol: Tol) -> TestCaseResult {
    let s = vec![want.max_abs(); want.numel()];
    close_with(what, got, want, &s, tol)
}

pub(crate) fn check_shape<B: Backend>(what: &str, got: &Tensor<B>, shape: &[usize]) -> TestCaseResult {
    if got.shape() != shape {
        return fail(format!("{what}: shape {:?}, expected {shape:?}", got.shape()));
    }
    Ok(())
}

pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> TestCaseResult {
    if cond {
        Ok(())
    } else {
        fail(msg())
    }
}

// ---- the property runner ---------------------------------------------------------------

fn cases() -> u32 {
    std::env::var("CONFORMANCE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(24)
}

/// FNV-1a, to give every property its own fixed seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Runs a property with `cases()·weight` cases (at least 1) from a deterministic seed;
/// panics with the shrunk counter-example on failure.
pub(crate) fn check<S>(name: &str, weight: f64, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let extra: u64 = std::env::var("CONFORMANCE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let seed = name_hash(name) ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(16 * i as u32).to_le_bytes());
    }
    let config = Config {
        cases: ((f64::from(cases()) * weight).round() as u32).max(1),
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("conformance property `{name}` failed (CONFORMANCE_SEED={extra}): {e}");
    }
}

// ---- random inputs ---------------------------------------------------------------------

/// How a test input is laid out in memory. Every variant has the requested logical shape
/// and values; only the strides, offset and sharing differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Contiguous,
    /// A permutation of a contiguous tensor of permuted shape.
    Permuted,
    /// The last two axes transposed with `.t()`.
    Transposed,
    /// A slice (`narrow` on every axis) of a larger tensor, at a nonzero offset.
    Narrowed,
    /// `broadcast_to` of a tensor with size-1 (and missing leading) axes.
    Broadcast,
    /// Permuted, narrowed and broadcast at once.
    Mixed,
}

pub(crate) const ALL_VIEWS: [View; 6] =
    [View::Contiguous, View::Permuted, View::Transposed, View::Narrowed, View::Broadcast, View::Mixed];

/// Any view (shrinks towards contiguous).
pub(crate) fn any_view() -> impl Strategy<Value = View> {
    prop::sample::select(ALL_VIEWS.to_vec())
}

/// Views that hold distinct elements (no stride-0 axes), for inputs whose broadcast would
/// change the meaning (e.g. parameters of in-place updates).
pub(crate) fn distinct_view() -> impl Strategy<Value = View> {
    prop::sample::select(vec![View::Contiguous, View::Permuted, View::Transposed, View::Narrowed])
}

/// A shape of `rank` in `ranks` with axes in `dims`.
pub(crate) fn shape(
    ranks: std::ops::RangeInclusive<usize>,
    dims: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(dims, ranks)
}

/// Distribution of generated values.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dist {
    Normal(f64),
    Uniform(f64, f64),
    /// Uniform magnitude in `[lo, hi)` with a random sign.
    Signed(f64, f64),
    /// A few discrete values (ties, equalities).
    Choice(&'static [f64]),
}

/// Seeded generator of test inputs on one backend.
pub(crate) struct Gen<'a, B: Backend> {
    pub b: &'a B,
    pub rng: Rng,
}

impl<'a, B: Backend> Gen<'a, B> {
    pub fn new(b: &'a B, seed: u64) -> Self {
        Gen { b, rng: Rng::seed(seed) }
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    pub fn coin(&mut self) -> bool {
        self.rng.below(2) == 0
    }

    /// One value, rounded to the backend's element type.
    pub fn value(&mut self, d: Dist) -> f64 {
        let x = match d {
            Dist::Normal(s) => s * self.rng.normal(),
            Dist::Uniform(lo, hi) => lo + (hi - lo) * self.rng.uniform(),
            Dist::Signed(lo, hi) => {
                let m = lo + (hi - lo) * self.rng.uniform();
                if self.coin() {
                    m
                } else {
                    -m
                }
            }
            Dist::Choice(v) => v[self.below(v.len())],
        };
        B::Elem::from_f64(x).to_f64()
    }

    pub fn values(&mut self, n: usize, d: Dist) -> Vec<f64> {
        (0..n).map(|_| self.value(d)).collect()
    }

    /// A contiguous tensor and its reference.
    pub fn dense(&mut self, shape: &[usize], d: Dist) -> (Tensor<B>, Arr) {
        let data = self.values(shape.iter().product(), d);
        (Tensor::from_f64(&data, shape, self.b), Arr::new(shape, data))
    }

    /// A random permutation of `0..n`.
    pub fn perm(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut p);
        p
    }

    pub fn ids(&mut self, n: usize, below: usize) -> Vec<u32> {
        (0..n).map(|_| self.below(below) as u32).collect()
    }

    /// A tensor of logical `shape` laid out as `view`, and its reference.
    pub fn input(&mut self, shape: &[usize], view: View, d: Dist) -> (Tensor<B>, Arr) {
        let r = shape.len();
        let (permute, narrow, bcast) = match view {
            View::Contiguous | View::Transposed => (false, false, false),
            View::Permuted => (true, false, false),
            View::Narrowed => (false, true, false),
            View::Broadcast => (false, false, true),
            View::Mixed => (true, true, true),
        };
        // Before broadcasting: some axes of size 1, maybe fewer leading axes.
        let mut s1 = shape.to_vec();
        if bcast {
            for d in s1.iter_mut() {
                if *d > 1 && self.coin() {
                    *d = 1;
                }
            }
            let lead = if r > 0 && self.coin() { 1 + self.below(r) } else { 0 };
            s1.drain(..lead);
        }
        // Before narrowing: padded axes.
        let pads: Vec<usize> = s1.iter().map(|_| if narrow { self.below(3) } else { 0 }).collect();
        let starts: Vec<usize> = pads.iter().map(|&p| self.below(p + 1)).collect();
        let s2: Vec<usize> = s1.iter().zip(&pads).map(|(d, p)| d + p).collect();
        if view == View::Transposed && r >= 2 {
            let mut base_shape = s2.clone();
            base_shape.swap(r - 2, r - 1);
            let (t, a) = self.dense(&base_shape, d);
            return (t.t(), a.transpose(r - 2, r - 1));
        }
        // The stored tensor: `permute(q)` of it has shape s2.
        let q = if permute { self.perm(s2.len()) } else { (0..s2.len()).collect() };
        let mut s3 = vec![0; s2.len()];
        for (i, &p) in q.iter().enumerate() {
            s3[p] = s2[i];
        }
        let (t, a) = self.dense(&s3, d);
        let (mut t, mut a) = (t.permute(&q), a.permute(&q));
        if narrow {
            for ax in 0..s1.len() {
                t = t.narrow(ax, starts[ax], s1[ax]);
                a = a.narrow(ax, starts[ax], s1[ax]);
            }
        }
        if bcast {
            t = t.broadcast_to(shape);
            a = a.broadcast_to(shape);
        }
        (t, a)
    }

    /// Uploads a reference array as a contiguous tensor.
    pub fn upload(&self, a: &Arr) -> Tensor<B> {
        Tensor::from_f64(&a.data, &a.shape, self.b)
    }
}

/// Rounds reference values to the backend's element type (for values a test feeds back
/// into a kernel).
pub(crate) fn round<B: Backend>(a: &Arr) -> Arr {
    a.map(|x| B::Elem::from_f64(x).to_f64())
}

/// A reference array of a tensor's current values.
pub(crate) fn arr<B: Backend>(t: &Tensor<B>) -> Arr {
    Arr::new(t.shape(), t.to_f64_vec())
}
