//! The CPU backend: portable Rust kernels, GEMM from matrixmultiply, threads from rayon.

mod attention;
mod elementwise;
mod index;
mod matmul;
mod norm;
mod optim;
pub mod pool;
mod reduce;
mod rope;
mod small_gemm;
mod softmax;
mod storage;
mod strided;

pub use pool::{pooled_bytes, release_pooled};
pub use storage::{live_buffers, live_bytes, peak_bytes, reset_peak_bytes, CpuStorage};

use crate::backend::{AttentionShape, Backend, NormGrads, NormStats, RopeArgs};
use crate::element::Element;
use crate::layout::Layout;
use crate::ops::{AdamWStep, BinaryOp, ReduceOp, SgdStep, UnaryOp};
use std::marker::PhantomData;

/// The CPU device computing in `E` (`f32` for training, `f64` for gradient checks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu<E: Element = f32>(PhantomData<E>);

impl<E: Element> Cpu<E> {
    pub fn new() -> Self {
        Cpu(PhantomData)
    }
}

/// The contiguous run of a contiguous view.
fn dense<'a, E: Element>(s: &'a CpuStorage<E>, l: &Layout) -> &'a [E] {
    debug_assert!(l.is_contiguous());
    &s.as_slice()[l.offset()..][..l.numel()]
}

fn st<E: Element>(v: Vec<E>) -> CpuStorage<E> {
    CpuStorage::new(v)
}

fn last_dim(l: &Layout) -> usize {
    *l.shape().last().unwrap_or(&1)
}

impl<E: Element> Backend for Cpu<E> {
    type Elem = E;
    type Storage = CpuStorage<E>;

    fn name(&self) -> String {
        format!("cpu ({}, {} threads)", E::NAME, rayon::current_num_threads())
    }

    fn upload(&self, data: Vec<E>) -> CpuStorage<E> {
        st(data)
    }
    fn to_vec(&self, s: &CpuStorage<E>, l: &Layout) -> Vec<E> {
        if l.is_contiguous() {
            let mut v = pool::with_capacity(l.numel());
            v.extend_from_slice(dense(s, l));
            v
        } else {
            elementwise::map([(s.as_slice(), l)], |[x]| x)
        }
    }
    fn full(&self, len: usize, value: E) -> CpuStorage<E> {
        st(pool::filled(len, value))
    }
    fn copy(&self, s: &CpuStorage<E>, l: &Layout) -> CpuStorage<E> {
        st(self.to_vec(s, l))
    }
    fn copy_into(&self, dst: &mut CpuStorage<E>, dl: &Layout, src: &CpuStorage<E>, sl: &Layout) {
        elementwise::copy_into(dst.as_mut_slice(), dl, src.as_slice(), sl)
    }

    fn unary(&self, op: UnaryOp, x: &CpuStorage<E>, lx: &Layout) -> CpuStorage<E> {
        st(elementwise::unary(op, x.as_slice(), lx))
    }
    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &CpuStorage<E>,
        lx: &Layout,
        dy: &CpuStorage<E>,
        ldy: &Layout,
    ) -> CpuStorage<E> {
        st(elementwise::unary_backward(op, x.as_slice(), lx, dy.as_slice(), ldy))
    }
    fn binary(&self, op: BinaryOp, a: &CpuStorage<E>, la: &Layout, b: &CpuStorage<E>, lb: &Layout) -> CpuStorage<E> {
        st(elementwise::binary(op, a.as_slice(), la, b.as_slice(), lb))
    }
    fn where_cond(
        &self,
        c: &CpuStorage<E>,
        lc: &Layout,
        a: &CpuStorage<E>,
        la: &Layout,
        b: &CpuStorage<E>,
        lb: &Layout,
    ) -> CpuStorage<E> {
        st(elementwise::map([(c.as_slice(), lc), (a.as_slice(), la), (b.as_slice(), lb)], |[c, a, b]| {
            if c != E::ZERO {
                a
            } else {
                b
            }
        }))
    }

    fn reduce(&self, op: ReduceOp, x: &CpuStorage<E>, lx: &Layout, axes: &[usize]) -> CpuStorage<E> {
        st(reduce::reduce(op, x.as_slice(), lx, axes))
    }
    fn argmax(&self, x: &CpuStorage<E>, lx: &Layout, axis: usize) -> Vec<u32> {
        reduce::argmax(x.as_slice(), lx, axis)
    }

    fn matmul(&self, a: &CpuStorage<E>, la: &Layout, b: &CpuStorage<E>, lb: &Layout) -> CpuStorage<E> {
        st(matmul::matmul(a.as_slice(), la, b.as_slice(), lb))
    }

    fn softmax(&self, x: &CpuStorage<E>, lx: &Layout, log: bool) -> CpuStorage<E> {
        st(softmax::softmax(dense(x, lx), last_dim(lx), log))
    }
    fn softmax_backward(&self, y: &CpuStorage<E>, dy: &CpuStorage<E>, l: &Layout, log: bool) -> CpuStorage<E> {
        st(softmax::softmax_backward(dense(y, l), dense(dy, l), last_dim(l), log))
    }
    fn cross_entropy(
        &self,
        logits: &CpuStorage<E>,
        l: &Layout,
        targets: &[u32],
        ignore: Option<u32>,
    ) -> (CpuStorage<E>, CpuStorage<E>) {
        let (loss, lse) = softmax::cross_entropy(dense(logits, l), last_dim(l), targets, ignore);
        (st(loss), st(lse))
    }
    fn cross_entropy_backward(
        &self,
        logits: &CpuStorage<E>,
        l: &Layout,
        lse: &CpuStorage<E>,
        targets: &[u32],
        ignore: Option<u32>,
        dloss: &CpuStorage<E>,
    ) -> CpuStorage<E> {
        st(softmax::cross_entropy_backward(
            dense(logits, l),
            last_dim(l),
            lse.as_slice(),
            targets,
            ignore,
            dloss.as_slice(),
        ))
    }

    fn rms_norm(
        &self,
        x: &CpuStorage<E>,
        l: &Layout,
        gain: Option<&CpuStorage<E>>,
        eps: f64,
    ) -> (CpuStorage<E>, NormStats<CpuStorage<E>>) {
        let (y, rstd) = norm::rms_norm(dense(x, l), last_dim(l), gain.map(|g| g.as_slice()), eps);
        (st(y), NormStats { mean: None, rstd: st(rstd) })
    }
    fn rms_norm_backward(
        &self,
        x: &CpuStorage<E>,
        l: &Layout,
        gain: Option<&CpuStorage<E>>,
        rstd: &CpuStorage<E>,
        dy: &CpuStorage<E>,
    ) -> NormGrads<CpuStorage<E>> {
        let (dx, dgain) = norm::rms_norm_backward(
            dense(x, l),
            last_dim(l),
            gain.map(|g| g.as_slice()),
            rstd.as_slice(),
            dy.as_slice(),
        );
        NormGrads { dx: st(dx), dgain: dgain.map(st), dbias: None }
    }
    fn group_norm(
        &self,
        x: &CpuStorage<E>,
        l: &Layout,
        groups: usize,
        gain: Option<&CpuStorage<E>>,
        bias: Option<&CpuStorage<E>>,
        eps: f64,
    ) -> (CpuStorage<E>, NormStats<CpuStorage<E>>) {
        let (y, mean, rstd) = norm::group_norm(
            dense(x, l),
            last_dim(l),
            groups,
            gain.map(|g| g.as_slice()),
            bias.map(|b| b.as_slice()),
            eps,
        );
        (st(y), NormStats { mean: Some(st(mean)), rstd: st(rstd) })
    }
    fn group_norm_backward(
        &self,
        x: &CpuStorage<E>,
        l: &Layout,
        groups: usize,
        gain: Option<&CpuStorage<E>>,
        has_bias: bool,
        mean: &CpuStorage<E>,
        rstd: &CpuStorage<E>,
        dy: &CpuStorage<E>,
    ) -> NormGrads<CpuStorage<E>> {
        let (dx, dgain, dbias) = norm::group_norm_backward(
            dense(x, l),
            last_dim(l),
            groups,
            gain.map(|g| g.as_slice()),
            has_bias,
            mean.as_slice(),
            rstd.as_slice(),
            dy.as_slice(),
        );
        NormGrads { dx: st(dx), dgain: dgain.map(st), dbias: dbias.map(st) }
    }

    fn rope(
        &self,
        x: &CpuStorage<E>,
        l: &Layout,
        cos: &CpuStorage<E>,
        sin: &CpuStorage<E>,
        args: RopeArgs,
    ) -> CpuStorage<E> {
        st(rope::rope(x.as_slice(), l, cos.as_slice(), sin.as_slice(), args))
    }

    fn attention(
        &self,
        s: &AttentionShape,
        q: &CpuStorage<E>,
        lq: &Layout,
        k: &CpuStorage<E>,
        lk: &Layout,
        v: &CpuStorage<E>,
        lv: &Layout,
    ) -> (CpuStorage<E>, CpuStorage<E>) {
        let (o, lse) = attention::forward(s, q.as_slice(), lq, k.as_slice(), lk, v.as_slice(), lv);
        (st(o), st(lse))
    }
    fn attention_backward(
        &self,
        s: &AttentionShape,
        q: &CpuStorage<E>,
        lq: &Layout,
        k: &CpuStorage<E>,
        lk: &Layout,
        v: &CpuStorage<E>,
        lv: &Layout,
        out: &CpuStorage<E>,
        lse: &CpuStorage<E>,
        dout: &CpuStorage<E>,
        ldout: &Layout,
    ) -> (CpuStorage<E>, CpuStorage<E>, CpuStorage<E>) {
        let (dq, dk, dv) = attention::backward(
            s,
            q.as_slice(),
            lq,
            k.as_slice(),
            lk,
            v.as_slice(),
            lv,
            out.as_slice(),
            lse.as_slice(),
            dout.as_slice(),
            ldout,
        );
        (st(dq), st(dk), st(dv))
    }

    fn index_select(&self, x: &CpuStorage<E>, l: &Layout, axis: usize, ids: &[u32]) -> CpuStorage<E> {
        st(index::index_select(x.as_slice(), l, axis, ids))
    }
    fn index_add(&self, src: &CpuStorage<E>, l: &Layout, axis: usize, ids: &[u32], size: usize) -> CpuStorage<E> {
        st(index::index_add(src.as_slice(), l, axis, ids, size))
    }

    fn adamw_step(
        &self,
        p: &mut CpuStorage<E>,
        g: &CpuStorage<E>,
        m: &mut CpuStorage<E>,
        v: &mut CpuStorage<E>,
        h: &AdamWStep,
    ) {
        optim::adamw(p.as_mut_slice(), g.as_slice(), m.as_mut_slice(), v.as_mut_slice(), h)
    }
    fn sgd_step(&self, p: &mut CpuStorage<E>, g: &CpuStorage<E>, buf: &mut CpuStorage<E>, h: &SgdStep) {
        optim::sgd(p.as_mut_slice(), g.as_slice(), buf.as_mut_slice(), h)
    }
}
