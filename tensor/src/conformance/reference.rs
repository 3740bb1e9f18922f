//! Naive f64 reference implementations: row-major host arrays and the obvious loops.
//!
//! Nothing here shares code with a backend: broadcasting, views, reductions, matmul and
//! the fused ops are written out index by index, and the backward passes of the fused ops
//! go through explicit Jacobians rather than the kernels' closed forms.

// Index loops are the point of a naive reference.
#![allow(clippy::needless_range_loop)]

use crate::ops::UnaryOp;

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Calls `f` on every multi-index of `shape` in row-major order (once for rank 0, never
/// for an empty shape).
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0; shape.len()];
    loop {
        f(&idx);
        let mut ax = shape.len();
        loop {
            if ax == 0 {
                return;
            }
            ax -= 1;
            idx[ax] += 1;
            if idx[ax] < shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
}

/// The NumPy broadcast of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, n - s.len()).chain(s.iter().copied()).collect() };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// A row-major f64 array: the reference value of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Arr {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Arr {
    pub fn new(shape: &[usize], data: Vec<f64>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "Arr::new: {shape:?} with {} values", data.len());
        Arr { shape: shape.to_vec(), data }
    }
    pub fn from_fn(shape: &[usize], mut f: impl FnMut(&[usize]) -> f64) -> Self {
        let mut data = Vec::with_capacity(shape.iter().product());
        for_each_index(shape, |i| data.push(f(i)));
        Arr::new(shape, data)
    }
    pub fn zeros(shape: &[usize]) -> Self {
        Arr::new(shape, vec![0.0; shape.iter().product()])
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn index(&self, idx: &[usize]) -> usize {
        assert_eq!(idx.len(), self.rank(), "index {idx:?} into {:?}", self.shape);
        let (mut off, mut stride) = (0, 1);
        for ax in (0..idx.len()).rev() {
            assert!(idx[ax] < self.shape[ax], "index {idx:?} out of {:?}", self.shape);
            off += idx[ax] * stride;
            stride *= self.shape[ax];
        }
        off
    }
    pub fn at(&self, idx: &[usize]) -> f64 {
        self.data[self.index(idx)]
    }
    pub fn at_mut(&mut self, idx: &[usize]) -> &mut f64 {
        let i = self.index(idx);
        &mut self.data[i]
    }
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Arr {
        Arr::new(&self.shape, self.data.iter().map(|&x| f(x)).collect())
    }
    /// Output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Arr {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut src = vec![0; self.rank()];
        Arr::from_fn(&shape, |idx| {
            for (i, &p) in perm.iter().enumerate() {
                src[p] = idx[i];
            }
            self.at(&src)
        })
    }
    pub fn transpose(&self, a: usize, b: usize) -> Arr {
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Arr {
        let mut shape = self.shape.clone();
        shape[axis] = len;
        Arr::from_fn(&shape, |idx| {
            let mut src = idx.to_vec();
            src[axis] += start;
            self.at(&src)
        })
    }
    pub fn broadcast_to(&self, shape: &[usize]) -> Arr {
        let extra = shape.len() - self.rank();
        for (i, &d) in self.shape.iter().enumerate() {
            assert!(d == 1 || d == shape[i + extra], "Arr::broadcast_to {:?} to {shape:?}", self.shape);
        }
        Arr::from_fn(shape, |idx| {
            let src: Vec<usize> =
                self.shape.iter().enumerate().map(|(i, &d)| if d == 1 { 0 } else { idx[i + extra] }).collect();
            self.at(&src)
        })
    }
    pub fn reshape(&self, shape: &[usize]) -> Arr {
        Arr::new(shape, self.data.clone())
    }
    pub fn unsqueeze(&self, axis: usize) -> Arr {
        let mut s = self.shape.clone();
        s.insert(axis, 1);
        self.reshape(&s)
    }
    pub fn squeeze(&self, axis: usize) -> Arr {
        let mut s = self.shape.clone();
        assert_eq!(s.remove(axis), 1);
        self.reshape(&s)
    }
    /// Elementwise `f(a, b)` with NumPy broadcasting.
    pub fn zip(&self, other: &Arr, f: impl Fn(f64, f64) -> f64) -> Arr {
        let shape = broadcast_shape(&self.shape, &other.shape).expect("Arr::zip: shapes do not broadcast");
        let (a, b) = (self.broadcast_to(&shape), other.broadcast_to(&shape));
        Arr::new(&shape, a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect())
    }
    /// Folds `axes` with `f` from `init`, keeping them as size-1 axes.
    pub fn reduce(&self, axes: &[usize], init: f64, f: impl Fn(f64, f64) -> f64) -> Arr {
        let shape: Vec<usize> =
            self.shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
        let mut out = Arr::new(&shape, vec![init; shape.iter().product()]);
        for_each_index(&self.shape, |idx| {
            let o: Vec<usize> = idx.iter().enumerate().map(|(i, &x)| if axes.contains(&i) { 0 } else { x }).collect();
            let v = self.at(idx);
            let slot = out.at_mut(&o);
            *slot = f(*slot, v);
        });
        out
    }
    /// `Σ x·y` over all elements.
    pub fn dot(&self, other: &Arr) -> f64 {
        assert_eq!(self.shape, other.shape);
        self.data.iter().zip(&other.data).map(|(a, b)| a * b).sum()
    }
    /// The largest finite magnitude.
    pub fn max_abs(&self) -> f64 {
        self.data.iter().filter(|x| x.is_finite()).fold(0.0, |m, x| m.max(x.abs()))
    }
}

/// The unary functions, written independently of [`UnaryOp::eval`].
pub fn unary(op: UnaryOp, x: f64) -> f64 {
    use UnaryOp::*;
    let sigmoid = |x: f64| 0.5 * (1.0 + (0.5 * x).tanh());
    match op {
        Neg => -x,
        Exp => x.exp(),
        Log => x.ln(),
        Sqrt => x.sqrt(),
        Rsqrt => x.powf(-0.5),
        Recip => x.powi(-1),
        Tanh => (x.exp() - (-x).exp()) / (x.exp() + (-x).exp()),
        Sigmoid => sigmoid(x),
        Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Silu => x * sigmoid(x),
        GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh())
        }
        Square => x.powi(2),
        Abs => {
            if x < 0.0 {
                -x
            } else {
                x
            }
        }
        AddScalar(s) => x + s,
        MulScalar(s) => x * s,
        PowScalar(e) => (e * x.ln()).exp(),
        MaxScalar(s) => {
            if x > s {
                x
            } else {
                s
            }
        }
    }
}

/// Batched matmul with broadcast batch axes. Returns the product and, per output element,
/// `Σ |a·b|` (the scale of its rounding error).
pub fn matmul(a: &Arr, b: &Arr) -> (Arr, Arr) {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k, n) = (a.shape[ra - 2], a.shape[ra - 1], b.shape[rb - 1]);
    assert_eq!(k, b.shape[rb - 2]);
    let batch = broadcast_shape(&a.shape[..ra - 2], &b.shape[..rb - 2]).expect("matmul batch axes");
    let ab = a.broadcast_to(&[batch.as_slice(), &[m, k]].concat());
    let bb = b.broadcast_to(&[batch.as_slice(), &[k, n]].concat());
    let shape = [batch.as_slice(), &[m, n]].concat();
    let mut out = Arr::zeros(&shape);
    let mut scale = Arr::zeros(&shape);
    for_each_index(&shape, |idx| {
        let r = idx.len();
        let (i, j) = (idx[r - 2], idx[r - 1]);
        let (mut s, mut sa) = (0.0, 0.0);
        let mut ia = idx.to_vec();
        let mut ib = idx.to_vec();
        for p in 0..k {
            ia[r - 2] = i;
            ia[r - 1] = p;
            ib[r - 2] = p;
            ib[r - 1] = j;
            let t = ab.at(&ia) * bb.at(&ib);
            s += t;
            sa += t.abs();
        }
        *out.at_mut(idx) = s;
        *scale.at_mut(idx) = sa;
    });
    (out, scale)
}

/// Rows of the last axis, as owned vectors.
pub fn rows(x: &Arr) -> Vec<Vec<f64>> {
    let d = *x.shape.last().unwrap_or(&1);
    if d == 0 {
        return vec![];
    }
    x.data.chunks(d).map(<[f64]>::to_vec).collect()
}

pub fn from_rows(shape: &[usize], rows: Vec<Vec<f64>>) -> Arr {
    Arr::new(shape, rows.concat())
}

/// `log Σ exp(x)`, computed stably.
pub fn logsumexp(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + x.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}

pub fn softmax_row(x: &[f64]) -> Vec<f64> {
    let l = logsumexp(x);
    x.iter().map(|&v| (v - l).exp()).collect()
}

/// Backward of softmax (or log-softmax) over one row through the explicit Jacobian
/// `∂p_j/∂x_c = p_j(δ_jc − p_c)` (log: `δ_jc − p_c`), given the input row.
pub fn softmax_backward_row(x: &[f64], dy: &[f64], log: bool) -> Vec<f64> {
    let p = softmax_row(x);
    let n = x.len();
    (0..n)
        .map(|c| {
            (0..n)
                .map(|j| {
                    let delta = f64::from(j == c);
                    let jac = if log { delta - p[c] } else { p[j] * (delta - p[c]) };
                    dy[j] * jac
                })
                .sum()
        })
        .collect()
}

/// Normalisation of one group through `x̂ = (x − μ)·r` (`μ = 0` for RMSNorm) and its
/// explicit Jacobian. Returns `(x̂, r, mean, dx)` for upstream `dx̂`.
pub fn norm_group(x: &[f64], dxhat: &[f64], eps: f64, rms: bool) -> (Vec<f64>, f64, f64, Vec<f64>) {
    let n = x.len() as f64;
    let mu = if rms { 0.0 } else { x.iter().sum::<f64>() / n };
    let var = x.iter().map(|&v| (v - mu) * (v - mu)).sum::<f64>() / n;
    let r = 1.0 / (var + eps).sqrt();
    let xhat: Vec<f64> = x.iter().map(|&v| (v - mu) * r).collect();
    // ∂x̂_j/∂x_c = r(δ_jc − [!rms]/n) − (x_j − μ)(x_c − μ)·r³/n
    let dx = (0..x.len())
        .map(|c| {
            (0..x.len())
                .map(|j| {
                    let delta = f64::from(j == c);
                    let centre = if rms { 0.0 } else { 1.0 / n };
                    let jac = r * (delta - centre) - (x[j] - mu) * (x[c] - mu) * r * r * r / n;
                    dxhat[j] * jac
                })
                .sum()
        })
        .collect();
    (xhat, r, mu, dx)
}

/// Reference attention results with, per element, the size of the terms summed into it
/// (the scale of its rounding error: the sums cancel when, e.g., values repeat).
pub struct Attention {
    pub out: Arr,
    pub out_mag: Arr,
    /// `[batch, q_heads, seq_q]`.
    pub lse: Arr,
    pub lse_mag: Arr,
    pub dq: Arr,
    pub dq_mag: Arr,
    pub dk: Arr,
    pub dk_mag: Arr,
    pub dv: Arr,
    pub dv_mag: Arr,
}

/// Naive attention on `[batch, seq, heads, head_dim]` arrays and its gradients for the
/// upstream `dout`, by the chain rule through each row's explicit softmax Jacobian. Query
/// row `i` sees keys `j ≤ i + seq_kv − seq_q` when causal.
pub fn attention(q: &Arr, k: &Arr, v: &Arr, dout: &Arr, causal: bool, scale: f64) -> Attention {
    let [b, tq, hq, d] = q.shape[..] else { panic!("rank") };
    let [_, tk, hk, _] = k.shape[..] else { panic!("rank") };
    let group = hq / hk;
    let z = |s: &[usize]| Arr::zeros(s);
    let mut a = Attention {
        out: z(&q.shape),
        out_mag: z(&q.shape),
        lse: z(&[b, hq, tq]),
        lse_mag: z(&[b, hq, tq]),
        dq: z(&q.shape),
        dq_mag: z(&q.shape),
        dk: z(&k.shape),
        dk_mag: z(&k.shape),
        dv: z(&v.shape),
        dv_mag: z(&v.shape),
    };
    for bi in 0..b {
        for h in 0..hq {
            let g = h / group;
            for i in 0..tq {
                let vis = if causal { i + (tk - tq) + 1 } else { tk };
                let dotk = |j: usize, f: &dyn Fn(f64) -> f64| -> f64 {
                    (0..d).map(|c| f(q.at(&[bi, i, h, c]) * k.at(&[bi, j, g, c]))).sum()
                };
                let s: Vec<f64> = (0..vis).map(|j| scale * dotk(j, &|x| x)).collect();
                // Rounding of a score is relative to Σ|q·k|, and moves p by p·that.
                let s_mag = (0..vis).map(|j| scale * dotk(j, &f64::abs)).fold(0.0, f64::max);
                let p = softmax_row(&s);
                *a.lse.at_mut(&[bi, h, i]) = logsumexp(&s);
                *a.lse_mag.at_mut(&[bi, h, i]) = 1.0 + s_mag;
                for c in 0..d {
                    *a.out.at_mut(&[bi, i, h, c]) = (0..vis).map(|j| p[j] * v.at(&[bi, j, g, c])).sum();
                    *a.out_mag.at_mut(&[bi, i, h, c]) =
                        (1.0 + s_mag) * (0..vis).map(|j| p[j] * v.at(&[bi, j, g, c]).abs()).sum::<f64>();
                }
                // out_c = Σ_j p_j v_jc  ⇒  dp_j = Σ_c dout_c v_jc, dv_jc += p_j dout_c.
                let dp: Vec<f64> =
                    (0..vis).map(|j| (0..d).map(|c| dout.at(&[bi, i, h, c]) * v.at(&[bi, j, g, c])).sum()).collect();
                let dp_mag: Vec<f64> = (0..vis)
                    .map(|j| (0..d).map(|c| (dout.at(&[bi, i, h, c]) * v.at(&[bi, j, g, c])).abs()).sum())
                    .collect();
                for j in 0..vis {
                    for c in 0..d {
                        *a.dv.at_mut(&[bi, j, g, c]) += p[j] * dout.at(&[bi, i, h, c]);
                        *a.dv_mag.at_mut(&[bi, j, g, c]) += (1.0 + s_mag) * p[j] * dout.at(&[bi, i, h, c]).abs();
                    }
                }
                let ds = softmax_backward_row(&s, &dp, false);
                let mean_mag: f64 = (0..vis).map(|j| p[j] * dp_mag[j]).sum();
                for j in 0..vis {
                    let ds_mag = (1.0 + s_mag) * p[j] * (dp_mag[j] + mean_mag);
                    for c in 0..d {
                        *a.dq.at_mut(&[bi, i, h, c]) += scale * ds[j] * k.at(&[bi, j, g, c]);
                        *a.dq_mag.at_mut(&[bi, i, h, c]) += scale * ds_mag * k.at(&[bi, j, g, c]).abs();
                        *a.dk.at_mut(&[bi, j, g, c]) += scale * ds[j] * q.at(&[bi, i, h, c]);
                        *a.dk_mag.at_mut(&[bi, j, g, c]) += scale * ds_mag * q.at(&[bi, i, h, c]).abs();
                    }
                }
            }
        }
    }
    a
}

/// Rotary embedding of a `[batch, seq, heads, head_dim]` array with angle tables.
pub fn rope(x: &Arr, cos: &Arr, sin: &Arr, pos_offset: usize, interleaved: bool, inverse: bool) -> Arr {
    let [b, t, h, d] = x.shape[..] else { panic!("rank") };
    let half = d / 2;
    let mut out = Arr::zeros(&x.shape);
    for bi in 0..b {
        for ti in 0..t {
            for hi in 0..h {
                for i in 0..half {
                    let (c, s) = (cos.at(&[ti + pos_offset, i]), sin.at(&[ti + pos_offset, i]));
                    let s = if inverse { -s } else { s };
                    let (ia, ib) = if interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                    let (xa, xb) = (x.at(&[bi, ti, hi, ia]), x.at(&[bi, ti, hi, ib]));
                    // A rotation by the angle θ with cos θ = c, sin θ = s.
                    *out.at_mut(&[bi, ti, hi, ia]) = c * xa - s * xb;
                    *out.at_mut(&[bi, ti, hi, ib]) = s * xa + c * xb;
                }
            }
        }
    }
    out
}
