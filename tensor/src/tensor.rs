//! [`Tensor`]: a strided view of a backend storage, with the user-facing op API.

use crate::backend::{AttentionShape, Backend, NormGrads, NormStats, RopeArgs};
use crate::element::Element;
use crate::layout::{broadcast_shapes, shape_error, Layout};
use crate::ops::{AdamWStep, BinaryOp, ReduceOp, SgdStep, UnaryOp};
use std::fmt;
use std::sync::Arc;

/// An n-d array of `B::Elem` on device `B`. Cloning is cheap (the storage is shared);
/// views share storage too. Tensors are immutable except through the explicit in-place
/// optimizer methods.
pub struct Tensor<B: Backend> {
    storage: Arc<B::Storage>,
    layout: Layout,
    backend: B,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor { storage: self.storage.clone(), layout: self.layout.clone(), backend: self.backend.clone() }
    }
}

impl<B: Backend> fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.to_vec();
        let head: Vec<_> = v.iter().take(8).collect();
        write!(
            f,
            "Tensor{:?} on {} {:?}{}",
            self.shape(),
            self.backend.name(),
            head,
            if v.len() > 8 { " …" } else { "" }
        )
    }
}

type E<B> = <B as Backend>::Elem;

impl<B: Backend> Tensor<B> {
    // ---- construction ---------------------------------------------------------------

    fn from_storage(storage: B::Storage, shape: &[usize], backend: &B) -> Self {
        Tensor { storage: Arc::new(storage), layout: Layout::contiguous(shape), backend: backend.clone() }
    }

    fn view(&self, layout: Layout) -> Self {
        Tensor { storage: self.storage.clone(), layout, backend: self.backend.clone() }
    }

    /// A new tensor on the same device as `self`.
    fn wrap(&self, storage: B::Storage, shape: &[usize]) -> Self {
        Self::from_storage(storage, shape, &self.backend)
    }

    pub fn from_vec(data: Vec<E<B>>, shape: &[usize], backend: &B) -> Self {
        let numel: usize = shape.iter().product();
        if data.len() != numel {
            shape_error("from_vec", format_args!("{} values for shape {shape:?} ({numel} elements)", data.len()));
        }
        Self::from_storage(backend.upload(data), shape, backend)
    }

    /// Builds a tensor from `f64` values (converted to the backend's element type).
    pub fn from_f64(data: &[f64], shape: &[usize], backend: &B) -> Self {
        Self::from_vec(data.iter().map(|&x| E::<B>::from_f64(x)).collect(), shape, backend)
    }

    pub fn full(shape: &[usize], value: f64, backend: &B) -> Self {
        Self::from_storage(backend.full(shape.iter().product(), E::<B>::from_f64(value)), shape, backend)
    }
    pub fn zeros(shape: &[usize], backend: &B) -> Self {
        Self::full(shape, 0.0, backend)
    }
    pub fn ones(shape: &[usize], backend: &B) -> Self {
        Self::full(shape, 1.0, backend)
    }
    /// A rank-0 tensor.
    pub fn scalar(value: f64, backend: &B) -> Self {
        Self::full(&[], value, backend)
    }
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.shape(), &self.backend)
    }

    // ---- inspection -----------------------------------------------------------------

    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    pub fn dim(&self, axis: usize) -> usize {
        self.shape()[axis]
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn storage(&self) -> &B::Storage {
        &self.storage
    }
    pub fn backend(&self) -> &B {
        &self.backend
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// The elements in row-major order (a device-to-host copy on GPUs).
    pub fn to_vec(&self) -> Vec<E<B>> {
        self.backend.to_vec(&self.storage, &self.layout)
    }
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.to_vec().into_iter().map(Element::to_f64).collect()
    }
    /// The single element of a one-element tensor.
    pub fn item(&self) -> f64 {
        if self.numel() != 1 {
            shape_error("item", format_args!("tensor of shape {:?} has {} elements", self.shape(), self.numel()));
        }
        self.to_vec()[0].to_f64()
    }

    // ---- views ----------------------------------------------------------------------

    /// Same elements, new shape: a view when the strides allow, a copy otherwise.
    pub fn reshape(&self, shape: &[usize]) -> Self {
        match self.layout.reshape(shape) {
            Some(l) => self.view(l),
            None => self.contiguous().reshape(shape),
        }
    }
    /// Swaps two axes (view).
    pub fn transpose(&self, a: usize, b: usize) -> Self {
        self.view(self.layout.transpose(a, b))
    }
    /// Swaps the last two axes (view).
    pub fn t(&self) -> Self {
        let r = self.rank();
        if r < 2 {
            shape_error("t", format_args!("needs rank ≥ 2, got shape {:?}", self.shape()));
        }
        self.transpose(r - 2, r - 1)
    }
    pub fn permute(&self, perm: &[usize]) -> Self {
        self.view(self.layout.permute(perm))
    }
    /// Elements `start..start+len` of `axis` (view).
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        self.view(self.layout.narrow(axis, start, len))
    }
    pub fn broadcast_to(&self, shape: &[usize]) -> Self {
        self.view(self.layout.broadcast_to(shape))
    }
    pub fn unsqueeze(&self, axis: usize) -> Self {
        self.view(self.layout.unsqueeze(axis))
    }
    pub fn squeeze(&self, axis: usize) -> Self {
        self.view(self.layout.squeeze(axis))
    }
    /// `self` if contiguous, else a contiguous copy.
    pub fn contiguous(&self) -> Self {
        if self.is_contiguous() {
            self.clone()
        } else {
            self.wrap(self.backend.copy(&self.storage, &self.layout), self.shape())
        }
    }
    /// Contiguous, starting at offset 0 of a storage of exactly its size: the form in which
    /// fused kernels take auxiliary operands.
    pub fn dense(&self) -> Self {
        if self.is_contiguous() && self.layout.offset() == 0 && self.layout.storage_extent() == self.numel() {
            self.clone()
        } else {
            self.wrap(self.backend.copy(&self.storage, &self.layout), self.shape())
        }
    }
    /// Splits `axis` into pieces of the given sizes (views).
    pub fn split(&self, axis: usize, sizes: &[usize]) -> Vec<Self> {
        if sizes.iter().sum::<usize>() != self.dim(axis) {
            shape_error("split", format_args!("sizes {sizes:?} do not add up to axis {axis} of {:?}", self.shape()));
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                start += n;
                self.narrow(axis, start - n, n)
            })
            .collect()
    }

    // ---- elementwise ----------------------------------------------------------------

    pub fn unary(&self, op: UnaryOp) -> Self {
        self.wrap(self.backend.unary(op, &self.storage, &self.layout), self.shape())
    }
    /// `grad · f'(self)` for the unary op `f` (the backward of [`Tensor::unary`]).
    pub fn unary_backward(&self, op: UnaryOp, grad: &Self) -> Self {
        self.check_same_shape("unary_backward", grad);
        self.wrap(
            self.backend.unary_backward(op, &self.storage, &self.layout, &grad.storage, &grad.layout),
            self.shape(),
        )
    }

    /// `self op other` with NumPy broadcasting.
    pub fn binary(&self, op: BinaryOp, other: &Self) -> Self {
        let shape = broadcast_shapes(self.shape(), other.shape()).unwrap_or_else(|| {
            shape_error(
                &format!("{op:?}"),
                format_args!("cannot broadcast {:?} with {:?}", self.shape(), other.shape()),
            )
        });
        let (la, lb) = (self.layout.broadcast_to(&shape), other.layout.broadcast_to(&shape));
        self.wrap(self.backend.binary(op, &self.storage, &la, &other.storage, &lb), &shape)
    }

    /// `cond ≠ 0 ? a : b`, broadcasting all three.
    pub fn where_cond(cond: &Self, a: &Self, b: &Self) -> Self {
        let shape = broadcast_shapes(cond.shape(), a.shape())
            .and_then(|s| broadcast_shapes(&s, b.shape()))
            .unwrap_or_else(|| {
                shape_error(
                    "where",
                    format_args!("cannot broadcast {:?}, {:?}, {:?}", cond.shape(), a.shape(), b.shape()),
                )
            });
        let (lc, la, lb) =
            (cond.layout.broadcast_to(&shape), a.layout.broadcast_to(&shape), b.layout.broadcast_to(&shape));
        cond.wrap(cond.backend.where_cond(&cond.storage, &lc, &a.storage, &la, &b.storage, &lb), &shape)
    }

    /// Replaces elements where `mask ≠ 0` with `value`.
    pub fn masked_fill(&self, mask: &Self, value: f64) -> Self {
        Self::where_cond(mask, &Self::scalar(value, &self.backend), self)
    }

    // ---- reductions -----------------------------------------------------------------

    fn reduce(&self, op: ReduceOp, axes: &[usize], keepdim: bool) -> Self {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        if let Some(&a) = axes.iter().find(|&&a| a >= self.rank()) {
            shape_error(&format!("{op:?}"), format_args!("axis {a} out of range for shape {:?}", self.shape()));
        }
        let kept: Vec<usize> =
            self.shape().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
        let out = self.wrap(self.backend.reduce(op, &self.storage, &self.layout, &axes), &kept);
        if keepdim {
            out
        } else {
            let shape: Vec<usize> = (0..self.rank()).filter(|i| !axes.contains(i)).map(|i| self.dim(i)).collect();
            out.reshape(&shape)
        }
    }
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Self {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Self {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Self {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Self {
        let sum = self.sum(axes, keepdim);
        // Count each axis once, as `sum` does.
        let mut distinct = axes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let n: usize = distinct.iter().map(|&a| self.dim(a)).product();
        sum.unary(UnaryOp::MulScalar(1.0 / n as f64))
    }
    /// Sum of all elements, as a rank-0 tensor.
    pub fn sum_all(&self) -> Self {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum(&axes, false)
    }
    /// Indices of the maxima along `axis`, row-major over the other axes.
    pub fn argmax(&self, axis: usize) -> Vec<u32> {
        if axis >= self.rank() {
            shape_error("argmax", format_args!("axis {axis} for shape {:?}", self.shape()));
        }
        self.backend.argmax(&self.storage, &self.layout, axis)
    }
    /// Sums a broadcast result back to `shape` (the adjoint of broadcasting).
    pub fn sum_to(&self, shape: &[usize]) -> Self {
        if self.shape() == shape {
            return self.clone();
        }
        let extra = self.rank() - shape.len();
        let axes: Vec<usize> =
            (0..self.rank()).filter(|&i| i < extra || (shape[i - extra] == 1 && self.dim(i) != 1)).collect();
        self.sum(&axes, true).reshape(shape)
    }

    // ---- linear algebra -------------------------------------------------------------

    /// Matrix product over the last two axes, broadcasting batch axes.
    pub fn matmul(&self, other: &Self) -> Self {
        let (ra, rb) = (self.rank(), other.rank());
        if ra < 2 || rb < 2 || self.dim(ra - 1) != other.dim(rb - 2) {
            shape_error("matmul", format_args!("{:?} × {:?}", self.shape(), other.shape()));
        }
        let batch = broadcast_shapes(&self.shape()[..ra - 2], &other.shape()[..rb - 2]).unwrap_or_else(|| {
            shape_error("matmul", format_args!("batch axes of {:?} × {:?}", self.shape(), other.shape()))
        });
        let (m, k, n) = (self.dim(ra - 2), self.dim(ra - 1), other.dim(rb - 1));
        let la = self.layout.broadcast_to(&[batch.as_slice(), &[m, k]].concat());
        let lb = other.layout.broadcast_to(&[batch.as_slice(), &[k, n]].concat());
        let out = self.backend.matmul(&self.storage, &la, &other.storage, &lb);
        self.wrap(out, &[batch.as_slice(), &[m, n]].concat())
    }

    // ---- fused ops ------------------------------------------------------------------

    pub fn softmax(&self) -> Self {
        let x = self.contiguous();
        self.wrap(self.backend.softmax(&x.storage, &x.layout, false), self.shape())
    }
    pub fn log_softmax(&self) -> Self {
        let x = self.contiguous();
        self.wrap(self.backend.softmax(&x.storage, &x.layout, true), self.shape())
    }
    /// Backward of softmax (`log = false`) or log-softmax (`log = true`), given the output.
    pub fn softmax_backward(&self, grad: &Self, log: bool) -> Self {
        self.check_same_shape("softmax_backward", grad);
        let (y, g) = (self.dense(), grad.dense());
        self.wrap(self.backend.softmax_backward(&y.storage, &g.storage, &y.layout, log), self.shape())
    }

    /// Per-row cross-entropy of `[rows, vocab]` logits: `(loss[rows], logsumexp[rows])`.
    pub fn cross_entropy(&self, targets: &[u32], ignore: Option<u32>) -> (Self, Self) {
        if self.rank() != 2 || self.dim(0) != targets.len() {
            shape_error("cross_entropy", format_args!("logits {:?} with {} targets", self.shape(), targets.len()));
        }
        let x = self.contiguous();
        let (loss, lse) = self.backend.cross_entropy(&x.storage, &x.layout, targets, ignore);
        (self.wrap(loss, &[targets.len()]), self.wrap(lse, &[targets.len()]))
    }
    /// `dlogits` for per-row loss gradients `dloss[rows]`.
    pub fn cross_entropy_backward(&self, lse: &Self, targets: &[u32], ignore: Option<u32>, dloss: &Self) -> Self {
        let (x, lse, g) = (self.contiguous(), lse.dense(), dloss.dense());
        self.wrap(
            self.backend.cross_entropy_backward(&x.storage, &x.layout, &lse.storage, targets, ignore, &g.storage),
            self.shape(),
        )
    }

    fn check_param(&self, op: &str, p: Option<&Self>) {
        if let Some(p) = p {
            if p.shape() != [*self.shape().last().unwrap_or(&1)] {
                shape_error(op, format_args!("parameter {:?} for input {:?}", p.shape(), self.shape()));
            }
        }
    }

    /// RMSNorm over the last axis; returns the output and the saved statistics.
    pub fn rms_norm(&self, gain: Option<&Self>, eps: f64) -> (Self, NormStats<Self>) {
        self.check_param("rms_norm", gain);
        let x = self.contiguous();
        let gain = gain.map(Self::dense);
        let (y, stats) = self.backend.rms_norm(&x.storage, &x.layout, gain.as_ref().map(|g| &*g.storage), eps);
        let rows = self.numel() / self.shape().last().unwrap_or(&1).max(&1);
        (self.wrap(y, self.shape()), NormStats { mean: None, rstd: self.wrap(stats.rstd, &[rows]) })
    }
    pub fn rms_norm_backward(&self, gain: Option<&Self>, stats: &NormStats<Self>, grad: &Self) -> NormGrads<Self> {
        self.check_same_shape("rms_norm_backward", grad);
        let (x, g, dy, rstd) = (self.contiguous(), gain.map(Self::dense), grad.dense(), stats.rstd.dense());
        let r = self.backend.rms_norm_backward(
            &x.storage,
            &x.layout,
            g.as_ref().map(|g| &*g.storage),
            &rstd.storage,
            &dy.storage,
        );
        self.norm_grads(r, gain.map(|g| g.shape().to_vec()))
    }

    /// GroupNorm over the last axis in `groups` contiguous groups (LayerNorm: 1 group).
    pub fn group_norm(
        &self,
        groups: usize,
        gain: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> (Self, NormStats<Self>) {
        let c = *self.shape().last().unwrap_or(&1);
        if groups == 0 || !c.is_multiple_of(groups) {
            shape_error("group_norm", format_args!("{c} channels in {groups} groups (input {:?})", self.shape()));
        }
        self.check_param("group_norm", gain);
        self.check_param("group_norm", bias);
        let x = self.contiguous();
        let (g, b) = (gain.map(Self::dense), bias.map(Self::dense));
        let (y, stats) = self.backend.group_norm(
            &x.storage,
            &x.layout,
            groups,
            g.as_ref().map(|g| &*g.storage),
            b.as_ref().map(|b| &*b.storage),
            eps,
        );
        let n = self.numel() / c.max(1) * groups;
        let mean = stats.mean.map(|m| self.wrap(m, &[n]));
        (self.wrap(y, self.shape()), NormStats { mean, rstd: self.wrap(stats.rstd, &[n]) })
    }
    pub fn group_norm_backward(
        &self,
        groups: usize,
        gain: Option<&Self>,
        has_bias: bool,
        stats: &NormStats<Self>,
        grad: &Self,
    ) -> NormGrads<Self> {
        self.check_same_shape("group_norm_backward", grad);
        let (x, g, dy) = (self.contiguous(), gain.map(Self::dense), grad.dense());
        let mean = stats
            .mean
            .as_ref()
            .unwrap_or_else(|| shape_error("group_norm_backward", "statistics without a mean"))
            .dense();
        let rstd = stats.rstd.dense();
        let r = self.backend.group_norm_backward(
            &x.storage,
            &x.layout,
            groups,
            g.as_ref().map(|g| &*g.storage),
            has_bias,
            &mean.storage,
            &rstd.storage,
            &dy.storage,
        );
        self.norm_grads(r, Some(vec![*self.shape().last().unwrap_or(&1)]))
    }

    fn norm_grads(&self, r: NormGrads<B::Storage>, param_shape: Option<Vec<usize>>) -> NormGrads<Self> {
        let p = param_shape.unwrap_or_default();
        NormGrads {
            dx: self.wrap(r.dx, self.shape()),
            dgain: r.dgain.map(|g| self.wrap(g, &p)),
            dbias: r.dbias.map(|b| self.wrap(b, &p)),
        }
    }

    /// Rotary embedding of a `[batch, seq, heads, head_dim]` tensor.
    pub fn rope(&self, cos: &Self, sin: &Self, args: RopeArgs) -> Self {
        if self.rank() != 4
            || !self.dim(3).is_multiple_of(2)
            || cos.shape() != sin.shape()
            || cos.rank() != 2
            || cos.dim(1) * 2 != self.dim(3)
            || cos.dim(0) < self.dim(1) + args.pos_offset
        {
            shape_error(
                "rope",
                format_args!(
                    "input {:?} with tables {:?}/{:?} at offset {}",
                    self.shape(),
                    cos.shape(),
                    sin.shape(),
                    args.pos_offset
                ),
            );
        }
        let (c, s) = (cos.dense(), sin.dense());
        self.wrap(self.backend.rope(&self.storage, &self.layout, &c.storage, &s.storage, args), self.shape())
    }

    /// The shape of an attention call, checked against q, k and v.
    fn attention_shape(q: &Self, k: &Self, v: &Self, causal: bool, scale: f64) -> AttentionShape {
        let dims = |t: &Self| if t.rank() == 4 { [t.dim(0), t.dim(1), t.dim(2), t.dim(3)] } else { [0; 4] };
        let ([batch, seq_q, q_heads, head_dim], [_, seq_kv, kv_heads, _]) = (dims(q), dims(k));
        let s = AttentionShape { batch, seq_q, seq_kv, q_heads, kv_heads, head_dim, causal, scale };
        let ok = q.rank() == 4
            && k.shape() == [s.batch, s.seq_kv, s.kv_heads, s.head_dim]
            && v.shape() == k.shape()
            && s.kv_heads > 0
            && s.q_heads.is_multiple_of(s.kv_heads)
            && s.seq_q <= s.seq_kv;
        if !ok {
            shape_error("attention", format_args!("q {:?}, k {:?}, v {:?}", q.shape(), k.shape(), v.shape()));
        }
        s
    }

    /// Fused attention on token-major `[batch, seq, heads, head_dim]` q/k/v. Returns the
    /// output (same layout as q) and the per-row log-sum-exp `[batch, q_heads, seq_q]`.
    pub fn attention(q: &Self, k: &Self, v: &Self, causal: bool, scale: f64) -> (Self, Self) {
        let s = Self::attention_shape(q, k, v, causal, scale);
        let (q, k, v) = (q.unit_last(), k.unit_last(), v.unit_last());
        let (o, lse) = q.backend.attention(&s, &q.storage, &q.layout, &k.storage, &k.layout, &v.storage, &v.layout);
        (q.wrap(o, q.shape()), q.wrap(lse, &[s.batch, s.q_heads, s.seq_q]))
    }

    /// Gradients of [`Tensor::attention`] with respect to q, k and v.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward(
        q: &Self,
        k: &Self,
        v: &Self,
        out: &Self,
        lse: &Self,
        grad: &Self,
        causal: bool,
        scale: f64,
    ) -> (Self, Self, Self) {
        let s = Self::attention_shape(q, k, v, causal, scale);
        q.check_same_shape("attention_backward", grad);
        let (q, k, v, g) = (q.unit_last(), k.unit_last(), v.unit_last(), grad.unit_last());
        let (out, lse) = (out.dense(), lse.dense());
        let (dq, dk, dv) = q.backend.attention_backward(
            &s,
            &q.storage,
            &q.layout,
            &k.storage,
            &k.layout,
            &v.storage,
            &v.layout,
            &out.storage,
            &lse.storage,
            &g.storage,
            &g.layout,
        );
        (q.wrap(dq, q.shape()), q.wrap(dk, k.shape()), q.wrap(dv, v.shape()))
    }

    /// `self`, or a contiguous copy when its last axis is not unit-stride.
    fn unit_last(&self) -> Self {
        if self.layout.strides().last().is_none_or(|&s| s == 1) {
            self.clone()
        } else {
            self.contiguous()
        }
    }

    // ---- indexing and joining ---------------------------------------------------------

    pub fn index_select(&self, axis: usize, ids: &[u32]) -> Self {
        if axis >= self.rank() {
            shape_error("index_select", format_args!("axis {axis} for shape {:?}", self.shape()));
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = ids.len();
        self.wrap(self.backend.index_select(&self.storage, &self.layout, axis, ids), &shape)
    }
    /// Adjoint of [`Tensor::index_select`]: scatters slices of `self` along `axis` into a
    /// zero tensor whose `axis` has length `size`, adding on repeated ids.
    pub fn index_add(&self, axis: usize, ids: &[u32], size: usize) -> Self {
        if axis >= self.rank() || self.dim(axis) != ids.len() {
            shape_error("index_add", format_args!("{} ids along axis {axis} of {:?}", ids.len(), self.shape()));
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = size;
        self.wrap(self.backend.index_add(&self.storage, &self.layout, axis, ids, size), &shape)
    }
    /// Rows of a `[vocab, dim]` table for token ids: `[ids.len(), dim]`.
    pub fn embedding(&self, ids: &[u32]) -> Self {
        self.index_select(0, ids)
    }

    /// Joins tensors along `axis`; all other axes must agree.
    /// Zeros with `self` placed at `before..` along `axis`, `before + after` longer there:
    /// the adjoint of [`Tensor::narrow`].
    pub fn zero_pad(&self, axis: usize, before: usize, after: usize) -> Self {
        let mut shape = self.shape().to_vec();
        if axis >= shape.len() {
            shape_error("zero_pad", format_args!("axis {axis} for shape {shape:?}"));
        }
        shape[axis] += before + after;
        let b = &self.backend;
        let mut storage = b.full(shape.iter().product(), E::<B>::ZERO);
        b.copy_into(
            &mut storage,
            &Layout::contiguous(&shape).narrow(axis, before, self.dim(axis)),
            &self.storage,
            &self.layout,
        );
        Self::from_storage(storage, &shape, b)
    }

    pub fn concat(parts: &[Self], axis: usize) -> Self {
        let first = parts.first().unwrap_or_else(|| shape_error("concat", "no tensors"));
        let mut shape = first.shape().to_vec();
        if axis >= shape.len() {
            shape_error("concat", format_args!("axis {axis} for shape {shape:?}"));
        }
        shape[axis] = 0;
        for p in parts {
            let mut s = p.shape().to_vec();
            if s.len() != shape.len() {
                shape_error("concat", format_args!("rank mismatch: {:?} and {:?}", first.shape(), p.shape()));
            }
            shape[axis] += s[axis];
            s[axis] = 0;
            let mut expect = shape.clone();
            expect[axis] = 0;
            if s != expect {
                shape_error("concat", format_args!("{:?} and {:?} along axis {axis}", first.shape(), p.shape()));
            }
        }
        let b = &first.backend;
        let mut storage = b.full(shape.iter().product(), E::<B>::ZERO);
        let out_layout = Layout::contiguous(&shape);
        let mut start = 0;
        for p in parts {
            let n = p.dim(axis);
            b.copy_into(&mut storage, &out_layout.narrow(axis, start, n), &p.storage, &p.layout);
            start += n;
        }
        Self::from_storage(storage, &shape, b)
    }
    /// Stacks equal-shaped tensors along a new axis.
    pub fn stack(parts: &[Self], axis: usize) -> Self {
        let parts: Vec<Self> = parts.iter().map(|p| p.unsqueeze(axis)).collect();
        Self::concat(&parts, axis)
    }

    // ---- in-place optimizer updates ---------------------------------------------------

    /// Exclusive access to a dense storage for in-place updates (copying first if the
    /// storage is shared or the view is not dense).
    fn storage_mut(&mut self) -> &mut B::Storage {
        if !(self.is_contiguous() && self.layout.offset() == 0 && self.layout.storage_extent() == self.numel())
            || Arc::strong_count(&self.storage) > 1
        {
            *self = self.wrap(self.backend.copy(&self.storage, &self.layout), self.shape());
        }
        Arc::get_mut(&mut self.storage).expect("a freshly copied storage is unshared")
    }

    /// One AdamW step on the parameter `self` with moment buffers `m` and `v`.
    pub fn adamw_step(&mut self, grad: &Self, m: &mut Self, v: &mut Self, h: &AdamWStep) {
        self.check_same_shape("adamw_step", grad);
        let g = grad.dense();
        let backend = self.backend.clone();
        backend.adamw_step(self.storage_mut(), &g.storage, m.storage_mut(), v.storage_mut(), h);
    }

    /// One SGD step on the parameter `self` with momentum buffer `buf`.
    pub fn sgd_step(&mut self, grad: &Self, buf: &mut Self, h: &SgdStep) {
        self.check_same_shape("sgd_step", grad);
        let g = grad.dense();
        let backend = self.backend.clone();
        backend.sgd_step(self.storage_mut(), &g.storage, buf.storage_mut(), h);
    }

    #[track_caller]
    fn check_same_shape(&self, op: &str, other: &Self) {
        if self.shape() != other.shape() {
            shape_error(op, format_args!("{:?} vs {:?}", self.shape(), other.shape()));
        }
    }
}

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl<B: Backend> Tensor<B> {
            $(pub fn $name(&self) -> Self { self.unary(UnaryOp::$op) })*
        }
    };
}
unary_methods!(neg => Neg, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt, recip => Recip, tanh => Tanh,
    sigmoid => Sigmoid, relu => Relu, silu => Silu, gelu => GeluTanh, square => Square, abs => Abs);

macro_rules! scalar_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl<B: Backend> Tensor<B> {
            $(pub fn $name(&self, s: f64) -> Self { self.unary(UnaryOp::$op(s)) })*
        }
    };
}
scalar_methods!(add_scalar => AddScalar, mul_scalar => MulScalar, pow_scalar => PowScalar, max_scalar => MaxScalar);

macro_rules! binary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl<B: Backend> Tensor<B> {
            $(pub fn $name(&self, other: &Self) -> Self { self.binary(BinaryOp::$op, other) })*
        }
    };
}
binary_methods!(add => Add, sub => Sub, mul => Mul, div => Div, maximum => Max, minimum => Min, pow => Pow,
    eq => Eq, gt => Gt, ge => Ge);
