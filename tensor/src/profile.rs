//! Time per op kind, for any backend: [`Profiled`] wraps a backend, forwards every call
//! and records its wall time, call count and (for matmul) FLOPs under the current
//! [`Phase`].
//!
//! The phase is thread-local: autograd marks its backward walk, the trainer its optimizer
//! step and evaluations, so one op kind (a matmul, say) is reported separately for each.
//! On an asynchronous device the times are host-side dispatch times, not kernel times.

use crate::backend::{AttentionShape, Backend, NormGrads, NormStats, RopeArgs};
use crate::layout::Layout;
use crate::ops::{AdamWStep, BinaryOp, ReduceOp, SgdStep, UnaryOp};
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the program is doing when an op runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Forward,
    Backward,
    Optimizer,
    Eval,
    Checkpoint,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Optimizer => "optimizer",
            Phase::Eval => "eval",
            Phase::Checkpoint => "checkpoint",
        })
    }
}

thread_local! {
    static PHASE: Cell<Phase> = const { Cell::new(Phase::Forward) };
}

/// Runs `f` with ops attributed to `phase`, restoring the previous phase afterwards
/// (also when `f` panics).
pub fn in_phase<R>(phase: Phase, f: impl FnOnce() -> R) -> R {
    struct Restore(Phase);
    impl Drop for Restore {
        fn drop(&mut self) {
            PHASE.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PHASE.with(|p| p.replace(phase)));
    f()
}

/// Totals of one (phase, op) pair.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpTotals {
    pub calls: u64,
    pub seconds: f64,
    /// Floating-point operations, where the op counts them (matmul); else 0.
    pub flops: f64,
}

/// A snapshot of the recorded totals.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub ops: HashMap<(Phase, String), OpTotals>,
}

impl Profile {
    /// Seconds spent in ops of `phase` (all phases when `None`).
    pub fn seconds(&self, phase: Option<Phase>) -> f64 {
        self.ops.iter().filter(|((p, _), _)| phase.is_none_or(|want| *p == want)).map(|(_, t)| t.seconds).sum()
    }

    /// Entries sorted by descending time.
    pub fn sorted(&self) -> Vec<(&(Phase, String), &OpTotals)> {
        let mut v: Vec<_> = self.ops.iter().collect();
        v.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds).then_with(|| a.0.cmp(b.0)));
        v
    }
}

/// A backend that times every call of the backend it wraps. Clones share the totals.
#[derive(Clone, Debug)]
pub struct Profiled<B> {
    inner: B,
    totals: Arc<Mutex<Profile>>,
}

impl<B: Backend> Profiled<B> {
    pub fn new(inner: B) -> Self {
        Profiled { inner, totals: Arc::default() }
    }

    /// Returns the totals recorded since the last call and starts again from zero.
    pub fn take(&self) -> Profile {
        std::mem::take(&mut *self.totals.lock().expect("profile lock"))
    }

    fn timed<R>(&self, op: impl fmt::Debug, flops: f64, f: impl FnOnce(&B) -> R) -> R {
        let start = Instant::now();
        let out = f(&self.inner);
        let seconds = start.elapsed().as_secs_f64();
        // Scalar ops' Debug carries the scalar (`MulScalar(0.5)`): one row per op, not per value.
        let name = format!("{op:?}");
        let name = if name.starts_with("matmul") { name } else { name.split('(').next().unwrap_or_default().into() };
        let key = (PHASE.with(Cell::get), name);
        let mut totals = self.totals.lock().expect("profile lock");
        let t = totals.ops.entry(key).or_default();
        t.calls += 1;
        t.seconds += seconds;
        t.flops += flops;
        out
    }
}

/// A matmul's row name (`matmul 4096x256x8192`, batched `matmul 64*(256x64x256)`) and
/// its FLOPs, 2·m·k·n per product: GEMM throughput depends on the shape, so the profile
/// keeps shapes apart.
fn matmul_row(la: &Layout, lb: &Layout) -> (String, f64) {
    let (a, b) = (la.shape(), lb.shape());
    let (m, k, n) = (a[a.len() - 2], a[a.len() - 1], b[b.len() - 1]);
    let batch_a: usize = a[..a.len() - 2].iter().product();
    let batch_b: usize = b[..b.len() - 2].iter().product();
    let batch = batch_a.max(batch_b);
    let name = if batch == 1 { format!("matmul {m}x{k}x{n}") } else { format!("matmul {batch}*({m}x{k}x{n})") };
    (name, 2.0 * (batch * m * k * n) as f64)
}

/// A name for an op that the profile lists as one row.
struct Name(&'static str);

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<B: Backend> Backend for Profiled<B> {
    type Elem = B::Elem;
    type Storage = B::Storage;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn upload(&self, data: Vec<Self::Elem>) -> Self::Storage {
        self.timed(Name("upload"), 0.0, |b| b.upload(data))
    }
    fn to_vec(&self, s: &Self::Storage, l: &Layout) -> Vec<Self::Elem> {
        self.timed(Name("to_vec"), 0.0, |b| b.to_vec(s, l))
    }
    fn full(&self, len: usize, value: Self::Elem) -> Self::Storage {
        self.timed(Name("full"), 0.0, |b| b.full(len, value))
    }
    fn copy(&self, s: &Self::Storage, l: &Layout) -> Self::Storage {
        self.timed(Name("copy"), 0.0, |b| b.copy(s, l))
    }
    fn copy_into(&self, dst_storage: &mut Self::Storage, dst: &Layout, src_storage: &Self::Storage, src: &Layout) {
        self.timed(Name("copy_into"), 0.0, |b| b.copy_into(dst_storage, dst, src_storage, src))
    }

    fn unary(&self, op: UnaryOp, x: &Self::Storage, lx: &Layout) -> Self::Storage {
        self.timed(op, 0.0, |b| b.unary(op, x, lx))
    }
    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &Self::Storage,
        lx: &Layout,
        dy: &Self::Storage,
        ldy: &Layout,
    ) -> Self::Storage {
        self.timed(format_args!("{op:?}'"), 0.0, |b| b.unary_backward(op, x, lx, dy, ldy))
    }
    fn binary(&self, op: BinaryOp, a: &Self::Storage, la: &Layout, b: &Self::Storage, lb: &Layout) -> Self::Storage {
        self.timed(op, 0.0, |be| be.binary(op, a, la, b, lb))
    }
    fn where_cond(
        &self,
        cond: &Self::Storage,
        lc: &Layout,
        a: &Self::Storage,
        la: &Layout,
        b: &Self::Storage,
        lb: &Layout,
    ) -> Self::Storage {
        self.timed(Name("where"), 0.0, |be| be.where_cond(cond, lc, a, la, b, lb))
    }

    fn reduce(&self, op: ReduceOp, x: &Self::Storage, lx: &Layout, axes: &[usize]) -> Self::Storage {
        self.timed(op, 0.0, |b| b.reduce(op, x, lx, axes))
    }
    fn argmax(&self, x: &Self::Storage, lx: &Layout, axis: usize) -> Vec<u32> {
        self.timed(Name("argmax"), 0.0, |b| b.argmax(x, lx, axis))
    }

    fn matmul(&self, a: &Self::Storage, la: &Layout, b: &Self::Storage, lb: &Layout) -> Self::Storage {
        let (name, flops) = matmul_row(la, lb);
        self.timed(format_args!("{name}"), flops, |be| be.matmul(a, la, b, lb))
    }

    fn softmax(&self, x: &Self::Storage, lx: &Layout, log: bool) -> Self::Storage {
        self.timed(Name("softmax"), 0.0, |b| b.softmax(x, lx, log))
    }
    fn softmax_backward(&self, y: &Self::Storage, dy: &Self::Storage, l: &Layout, log: bool) -> Self::Storage {
        self.timed(Name("softmax'"), 0.0, |b| b.softmax_backward(y, dy, l, log))
    }
    fn cross_entropy(
        &self,
        logits: &Self::Storage,
        l: &Layout,
        targets: &[u32],
        ignore: Option<u32>,
    ) -> (Self::Storage, Self::Storage) {
        self.timed(Name("cross_entropy"), 0.0, |b| b.cross_entropy(logits, l, targets, ignore))
    }
    fn cross_entropy_backward(
        &self,
        logits: &Self::Storage,
        l: &Layout,
        lse: &Self::Storage,
        targets: &[u32],
        ignore: Option<u32>,
        dloss: &Self::Storage,
    ) -> Self::Storage {
        self.timed(Name("cross_entropy'"), 0.0, |b| b.cross_entropy_backward(logits, l, lse, targets, ignore, dloss))
    }

    fn rms_norm(
        &self,
        x: &Self::Storage,
        l: &Layout,
        gain: Option<&Self::Storage>,
        eps: f64,
    ) -> (Self::Storage, NormStats<Self::Storage>) {
        self.timed(Name("rms_norm"), 0.0, |b| b.rms_norm(x, l, gain, eps))
    }
    fn rms_norm_backward(
        &self,
        x: &Self::Storage,
        l: &Layout,
        gain: Option<&Self::Storage>,
        rstd: &Self::Storage,
        dy: &Self::Storage,
    ) -> NormGrads<Self::Storage> {
        self.timed(Name("rms_norm'"), 0.0, |b| b.rms_norm_backward(x, l, gain, rstd, dy))
    }
    fn group_norm(
        &self,
        x: &Self::Storage,
        l: &Layout,
        groups: usize,
        gain: Option<&Self::Storage>,
        bias: Option<&Self::Storage>,
        eps: f64,
    ) -> (Self::Storage, NormStats<Self::Storage>) {
        self.timed(Name("group_norm"), 0.0, |b| b.group_norm(x, l, groups, gain, bias, eps))
    }
    fn group_norm_backward(
        &self,
        x: &Self::Storage,
        l: &Layout,
        groups: usize,
        gain: Option<&Self::Storage>,
        has_bias: bool,
        mean: &Self::Storage,
        rstd: &Self::Storage,
        dy: &Self::Storage,
    ) -> NormGrads<Self::Storage> {
        self.timed(Name("group_norm'"), 0.0, |b| b.group_norm_backward(x, l, groups, gain, has_bias, mean, rstd, dy))
    }

    fn rope(
        &self,
        x: &Self::Storage,
        l: &Layout,
        cos: &Self::Storage,
        sin: &Self::Storage,
        args: RopeArgs,
    ) -> Self::Storage {
        self.timed(Name("rope"), 0.0, |b| b.rope(x, l, cos, sin, args))
    }

    fn attention(
        &self,
        shape: &AttentionShape,
        q: &Self::Storage,
        lq: &Layout,
        k: &Self::Storage,
        lk: &Layout,
        v: &Self::Storage,
        lv: &Layout,
    ) -> (Self::Storage, Self::Storage) {
        self.timed(Name("attention"), 0.0, |b| b.attention(shape, q, lq, k, lk, v, lv))
    }
    fn attention_backward(
        &self,
        shape: &AttentionShape,
        q: &Self::Storage,
        lq: &Layout,
        k: &Self::Storage,
        lk: &Layout,
        v: &Self::Storage,
        lv: &Layout,
        out: &Self::Storage,
        lse: &Self::Storage,
        dout: &Self::Storage,
        ldout: &Layout,
    ) -> (Self::Storage, Self::Storage, Self::Storage) {
        self.timed(Name("attention'"), 0.0, |b| b.attention_backward(shape, q, lq, k, lk, v, lv, out, lse, dout, ldout))
    }

    fn index_select(&self, x: &Self::Storage, l: &Layout, axis: usize, ids: &[u32]) -> Self::Storage {
        self.timed(Name("index_select"), 0.0, |b| b.index_select(x, l, axis, ids))
    }
    fn index_add(&self, src: &Self::Storage, l: &Layout, axis: usize, ids: &[u32], size: usize) -> Self::Storage {
        self.timed(Name("index_add"), 0.0, |b| b.index_add(src, l, axis, ids, size))
    }

    fn adamw_step(
        &self,
        param: &mut Self::Storage,
        grad: &Self::Storage,
        m: &mut Self::Storage,
        v: &mut Self::Storage,
        h: &AdamWStep,
    ) {
        self.timed(Name("adamw_step"), 0.0, |b| b.adamw_step(param, grad, m, v, h))
    }
    fn sgd_step(&self, param: &mut Self::Storage, grad: &Self::Storage, momentum: &mut Self::Storage, h: &SgdStep) {
        self.timed(Name("sgd_step"), 0.0, |b| b.sgd_step(param, grad, momentum, h))
    }
}
