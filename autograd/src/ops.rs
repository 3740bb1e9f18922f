//! Differentiable ops on [`Var`]: each forward calls the tensor op and records the
//! matching backward rule. Fused ops (norms, cross-entropy, attention, RoPE) use their
//! hand-written backward kernels; the rest compose tensor primitives.

use crate::var::Var;
use tensor::{Backend, BinaryOp, RopeArgs, Tensor, UnaryOp};

/// How per-row losses combine into one scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Mean over rows that are not ignored.
    Mean,
    Sum,
}

impl<B: Backend> Var<B> {
    // ---- elementwise ---------------------------------------------------------------

    pub fn unary(&self, op: UnaryOp) -> Self {
        let x = self.value().clone();
        Var::from_op(x.unary(op), &[self], move |g, _| vec![Some(x.unary_backward(op, g))])
    }

    /// `self op other` with broadcasting; gradients are summed back to each input's shape.
    pub fn binary(&self, op: BinaryOp, other: &Self) -> Self {
        let (a, b) = (self.value().clone(), other.value().clone());
        let out = a.binary(op, &b);
        let saved_out = matches!(op, BinaryOp::Pow).then(|| out.clone());
        Var::from_op(out, &[self, other], move |g, needs| {
            let (da, db) = match op {
                BinaryOp::Add => (Some(g.clone()), Some(g.clone())),
                BinaryOp::Sub => (Some(g.clone()), needs[1].then(|| g.neg())),
                BinaryOp::Mul => (needs[0].then(|| g.mul(&b)), needs[1].then(|| g.mul(&a))),
                BinaryOp::Div => (needs[0].then(|| g.div(&b)), needs[1].then(|| g.mul(&a).div(&b.square()).neg())),
                BinaryOp::Max | BinaryOp::Min => {
                    // The larger (smaller) input takes the gradient; ties split it evenly.
                    let (wins_a, wins_b) =
                        if op == BinaryOp::Max { (a.gt(&b), b.gt(&a)) } else { (b.gt(&a), a.gt(&b)) };
                    let tie = a.eq(&b).mul_scalar(0.5);
                    (needs[0].then(|| g.mul(&wins_a.add(&tie))), needs[1].then(|| g.mul(&wins_b.add(&tie))))
                }
                BinaryOp::Pow => {
                    let out = saved_out.expect("saved for pow");
                    (needs[0].then(|| g.mul(&b).mul(&out).div(&a)), needs[1].then(|| g.mul(&out).mul(&a.log())))
                }
                BinaryOp::Eq | BinaryOp::Gt | BinaryOp::Ge => (None, None),
            };
            vec![da.map(|d| d.sum_to(a.shape())), db.map(|d| d.sum_to(b.shape()))]
        })
    }

    pub fn add(&self, o: &Self) -> Self {
        self.binary(BinaryOp::Add, o)
    }
    pub fn sub(&self, o: &Self) -> Self {
        self.binary(BinaryOp::Sub, o)
    }
    pub fn mul(&self, o: &Self) -> Self {
        self.binary(BinaryOp::Mul, o)
    }
    pub fn div(&self, o: &Self) -> Self {
        self.binary(BinaryOp::Div, o)
    }
    pub fn maximum(&self, o: &Self) -> Self {
        self.binary(BinaryOp::Max, o)
    }
    pub fn minimum(&self, o: &Self) -> Self {
        self.binary(BinaryOp::Min, o)
    }
    pub fn pow(&self, o: &Self) -> Self {
        self.binary(BinaryOp::Pow, o)
    }

    /// `cond ≠ 0 ? a : b` with a constant condition, broadcasting all three.
    pub fn where_cond(cond: &Tensor<B>, a: &Self, b: &Self) -> Self {
        let out = Tensor::where_cond(cond, a.value(), b.value());
        let (cond, sa, sb) = (cond.clone(), a.shape().to_vec(), b.shape().to_vec());
        Var::from_op(out, &[a, b], move |g, needs| {
            let zero = Tensor::scalar(0.0, g.backend());
            vec![
                needs[0].then(|| Tensor::where_cond(&cond, g, &zero).sum_to(&sa)),
                needs[1].then(|| Tensor::where_cond(&cond, &zero, g).sum_to(&sb)),
            ]
        })
    }

    /// Replaces elements where `mask ≠ 0` with `value` (no gradient flows there).
    pub fn masked_fill(&self, mask: &Tensor<B>, value: f64) -> Self {
        Var::where_cond(mask, &Var::constant(Tensor::scalar(value, self.value().backend())), self)
    }

    // ---- reductions ----------------------------------------------------------------

    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Self {
        let shape = self.shape().to_vec();
        let kept = keep_shape(&shape, axes);
        Var::from_op(self.value().sum(axes, keepdim), &[self], move |g, _| {
            vec![Some(g.reshape(&kept).broadcast_to(&shape))]
        })
    }
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Self {
        let n: usize = axes.iter().map(|&a| self.dim(a)).product();
        self.sum(axes, keepdim).mul_scalar(1.0 / n as f64)
    }
    pub fn sum_all(&self) -> Self {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum(&axes, false)
    }
    pub fn mean_all(&self) -> Self {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.mean(&axes, false)
    }
    /// Maximum over `axes`; the gradient is shared evenly among tied maxima.
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Self {
        self.extremum(axes, keepdim, true)
    }
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Self {
        self.extremum(axes, keepdim, false)
    }
    fn extremum(&self, axes: &[usize], keepdim: bool, is_max: bool) -> Self {
        let x = self.value().clone();
        let kept = keep_shape(x.shape(), axes);
        let axes = axes.to_vec();
        let m = if is_max { x.max(&axes, true) } else { x.min(&axes, true) };
        let out = if keepdim { m.clone() } else { m.reshape(&keep_shape_dropped(x.shape(), &axes)) };
        Var::from_op(out, &[self], move |g, _| {
            let hit = x.eq(&m);
            let count = hit.sum(&axes, true);
            vec![Some(hit.mul(&g.reshape(&kept)).div(&count))]
        })
    }

    // ---- linear algebra -------------------------------------------------------------

    /// Matrix product over the last two axes with broadcast batch axes.
    pub fn matmul(&self, other: &Self) -> Self {
        let (a, b) = (self.value().clone(), other.value().clone());
        Var::from_op(a.matmul(&b), &[self, other], move |g, needs| {
            vec![
                needs[0].then(|| g.matmul(&b.t()).sum_to(a.shape())),
                needs[1].then(|| a.t().matmul(g).sum_to(b.shape())),
            ]
        })
    }

    /// `self · wᵀ (+ bias)` for `self` of shape `[..., in]` and `w` of shape `[out, in]`
    /// (PyTorch's `nn.Linear` layout). The weight gradient is one GEMM over all rows.
    pub fn linear(&self, w: &Self, bias: Option<&Self>) -> Self {
        let (x, wv) = (self.value().clone(), w.value().clone());
        let (d_in, d_out) = (wv.dim(1), wv.dim(0));
        let mut y = x.matmul(&wv.t());
        if let Some(b) = bias {
            y = y.add(b.value());
        }
        let inputs: Vec<&Var<B>> = [self, w].into_iter().chain(bias).collect();
        Var::from_op(y, &inputs, move |g, needs| {
            let rows = g.numel() / d_out;
            let g2 = g.reshape(&[rows, d_out]);
            let mut out =
                vec![needs[0].then(|| g.matmul(&wv)), needs[1].then(|| g2.t().matmul(&x.reshape(&[rows, d_in])))];
            if needs.len() == 3 {
                out.push(needs[2].then(|| g2.sum(&[0], false)));
            }
            out
        })
    }

    // ---- shape ----------------------------------------------------------------------

    pub fn reshape(&self, shape: &[usize]) -> Self {
        let old = self.shape().to_vec();
        Var::from_op(self.value().reshape(shape), &[self], move |g, _| vec![Some(g.reshape(&old))])
    }
    pub fn transpose(&self, a: usize, b: usize) -> Self {
        Var::from_op(self.value().transpose(a, b), &[self], move |g, _| vec![Some(g.transpose(a, b))])
    }
    /// Swaps the last two axes.
    pub fn t(&self) -> Self {
        let r = self.rank();
        self.transpose(r - 2, r - 1)
    }
    pub fn permute(&self, perm: &[usize]) -> Self {
        let mut inv = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        Var::from_op(self.value().permute(perm), &[self], move |g, _| vec![Some(g.permute(&inv))])
    }
    pub fn unsqueeze(&self, axis: usize) -> Self {
        Var::from_op(self.value().unsqueeze(axis), &[self], move |g, _| vec![Some(g.squeeze(axis))])
    }
    pub fn squeeze(&self, axis: usize) -> Self {
        Var::from_op(self.value().squeeze(axis), &[self], move |g, _| vec![Some(g.unsqueeze(axis))])
    }
    pub fn broadcast_to(&self, shape: &[usize]) -> Self {
        let old = self.shape().to_vec();
        Var::from_op(self.value().broadcast_to(shape), &[self], move |g, _| vec![Some(g.sum_to(&old))])
    }
    pub fn contiguous(&self) -> Self {
        Var::from_op(self.value().contiguous(), &[self], |g, _| vec![Some(g.clone())])
    }
    /// Elements `start..start+len` of `axis`; the gradient is zero-padded back.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        let value = self.value().narrow(axis, start, len); // checks the range first
        let after = self.dim(axis) - start - len;
        Var::from_op(value, &[self], move |g, _| {
            vec![Some(if start == 0 && after == 0 { g.clone() } else { g.zero_pad(axis, start, after) })]
        })
    }
    pub fn split(&self, axis: usize, sizes: &[usize]) -> Vec<Self> {
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                start += n;
                self.narrow(axis, start - n, n)
            })
            .collect()
    }
    pub fn concat(parts: &[Self], axis: usize) -> Self {
        let values: Vec<Tensor<B>> = parts.iter().map(|p| p.value().clone()).collect();
        let sizes: Vec<usize> = parts.iter().map(|p| p.dim(axis)).collect();
        let inputs: Vec<&Var<B>> = parts.iter().collect();
        Var::from_op(Tensor::concat(&values, axis), &inputs, move |g, needs| {
            let pieces = g.split(axis, &sizes);
            pieces.into_iter().zip(needs).map(|(p, &n)| n.then_some(p)).collect()
        })
    }
    pub fn stack(parts: &[Self], axis: usize) -> Self {
        let parts: Vec<Self> = parts.iter().map(|p| p.unsqueeze(axis)).collect();
        Var::concat(&parts, axis)
    }

    // ---- fused ops ------------------------------------------------------------------

    pub fn softmax(&self) -> Self {
        let y = self.value().softmax();
        let saved = y.clone();
        Var::from_op(y, &[self], move |g, _| vec![Some(saved.softmax_backward(g, false))])
    }
    pub fn log_softmax(&self) -> Self {
        let y = self.value().log_softmax();
        let saved = y.clone();
        Var::from_op(y, &[self], move |g, _| vec![Some(saved.softmax_backward(g, true))])
    }

    /// Softmax cross-entropy of `[rows, vocab]` logits against integer targets, reduced
    /// to a scalar. Rows whose target is `ignore` contribute nothing (and do not count
    /// towards the mean).
    pub fn cross_entropy(&self, targets: &[u32], ignore: Option<u32>, reduction: Reduction) -> Self {
        let logits = self.value().clone();
        let (rows, lse) = logits.cross_entropy(targets, ignore);
        let counted = targets.iter().filter(|&&t| Some(t) != ignore).count();
        let scale = match reduction {
            Reduction::Mean => 1.0 / counted.max(1) as f64,
            Reduction::Sum => 1.0,
        };
        let loss = rows.sum_all().mul_scalar(scale);
        let targets = targets.to_vec();
        Var::from_op(loss, &[self], move |g, _| {
            let dloss = g.mul_scalar(scale).broadcast_to(&[targets.len()]);
            vec![Some(logits.cross_entropy_backward(&lse, &targets, ignore, &dloss))]
        })
    }

    /// RMSNorm over the last axis with an optional gain.
    pub fn rms_norm(&self, gain: Option<&Self>, eps: f64) -> Self {
        let x = self.value().clone();
        let gv = gain.map(|g| g.value().clone());
        let (y, stats) = x.rms_norm(gv.as_ref(), eps);
        let inputs: Vec<&Var<B>> = std::iter::once(self).chain(gain).collect();
        Var::from_op(y, &inputs, move |g, _| {
            let r = x.rms_norm_backward(gv.as_ref(), &stats, g);
            let mut out = vec![Some(r.dx)];
            if gv.is_some() {
                out.push(r.dgain);
            }
            out
        })
    }

    /// GroupNorm over the last axis in `groups` contiguous groups with optional
    /// per-channel gain and bias; `groups = 1` is LayerNorm.
    pub fn group_norm(&self, groups: usize, gain: Option<&Self>, bias: Option<&Self>, eps: f64) -> Self {
        let x = self.value().clone();
        let gv = gain.map(|g| g.value().clone());
        let has_bias = bias.is_some();
        let (y, stats) = x.group_norm(groups, gv.as_ref(), bias.map(|b| b.value()), eps);
        let inputs: Vec<&Var<B>> = std::iter::once(self).chain(gain).chain(bias).collect();
        Var::from_op(y, &inputs, move |g, _| {
            let r = x.group_norm_backward(groups, gv.as_ref(), has_bias, &stats, g);
            let mut out = vec![Some(r.dx)];
            if gv.is_some() {
                out.push(r.dgain);
            }
            if has_bias {
                out.push(r.dbias);
            }
            out
        })
    }
    pub fn layer_norm(&self, gain: Option<&Self>, bias: Option<&Self>, eps: f64) -> Self {
        self.group_norm(1, gain, bias, eps)
    }

    /// Rotary embedding of `[batch, seq, heads, head_dim]`; backward applies the inverse
    /// rotation.
    pub fn rope(&self, cos: &Tensor<B>, sin: &Tensor<B>, args: RopeArgs) -> Self {
        let (c, s) = (cos.clone(), sin.clone());
        Var::from_op(self.value().rope(cos, sin, args), &[self], move |g, _| {
            vec![Some(g.rope(&c, &s, RopeArgs { inverse: !args.inverse, ..args }))]
        })
    }

    /// Fused attention on token-major `[batch, seq, heads, head_dim]` q, k, v.
    pub fn attention(q: &Self, k: &Self, v: &Self, causal: bool, scale: f64) -> Self {
        let (qv, kv, vv) = (q.value().clone(), k.value().clone(), v.value().clone());
        let (out, lse) = Tensor::attention(&qv, &kv, &vv, causal, scale);
        let saved = out.clone();
        Var::from_op(out, &[q, k, v], move |g, _| {
            let (dq, dk, dv) = Tensor::attention_backward(&qv, &kv, &vv, &saved, &lse, g, causal, scale);
            vec![Some(dq), Some(dk), Some(dv)]
        })
    }

    // ---- indexing -------------------------------------------------------------------

    pub fn index_select(&self, axis: usize, ids: &[u32]) -> Self {
        let size = self.dim(axis);
        let ids = ids.to_vec();
        Var::from_op(self.value().index_select(axis, &ids), &[self], move |g, _| {
            vec![Some(g.index_add(axis, &ids, size))]
        })
    }
    /// Rows of a `[vocab, dim]` table: `[ids.len(), dim]`.
    pub fn embedding(&self, ids: &[u32]) -> Self {
        self.index_select(0, ids)
    }
}

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl<B: Backend> Var<B> {
            $(pub fn $name(&self) -> Self { self.unary(UnaryOp::$op) })*
        }
    };
}
unary_methods!(neg => Neg, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt, recip => Recip, tanh => Tanh,
    sigmoid => Sigmoid, relu => Relu, silu => Silu, gelu => GeluTanh, square => Square, abs => Abs);

macro_rules! scalar_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl<B: Backend> Var<B> {
            $(pub fn $name(&self, s: f64) -> Self { self.unary(UnaryOp::$op(s)) })*
        }
    };
}
scalar_methods!(add_scalar => AddScalar, mul_scalar => MulScalar, pow_scalar => PowScalar, max_scalar => MaxScalar);

/// `shape` with `axes` set to 1.
fn keep_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect()
}

/// `shape` without `axes`.
fn keep_shape_dropped(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
}
