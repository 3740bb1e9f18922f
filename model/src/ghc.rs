//! Dynamic Generalized Hyper-Connections (spec §2.2–§2.4, §2.10).
//!
//! The residual state is `[tokens, n, d_b]`: `n` slots of width `d_b = D/m`. Per token,
//! one GHC module computes routing coefficients `C = tanh(RMSNorm(H)·Wc/√d_b) ∘ Sc + Cst`
//! (`n × (2m+n)`; columns `[α | βᵀ]`), reads the backbone input `x = α[:, :m]ᵀ·H`,
//! carries `α[:, m:]ᵀ·H`, and after the sublayer writes `H' = βᵀ·Y + carry`.
//!
//! The coefficient computation (norm, projection, tanh, scale, static offset) is one
//! fused op with the hand-written backward of spec §2.10; the two per-token mixing
//! products are batched matmuls, whose backward is the rest of §2.10.

use crate::layers::Init;
use autograd::{Param, Var};
use tensor::Backend;

/// Shape and options of one GHC module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GhcSpec {
    pub m: usize,
    pub n: usize,
    /// Slot width `D/m`.
    pub d_b: usize,
    /// Add the input-dependent part of the coefficients.
    pub dynamic: bool,
    /// Put the scales `S_α`, `S_β` under weight decay (spec §9.5; default off).
    pub decay_scales: bool,
    /// Epsilon of the per-slot RMSNorm.
    pub eps: f64,
}

pub struct Ghc<B: Backend> {
    m: usize,
    n: usize,
    dynamic: bool,
    eps: f64,
    /// `A = [Å | Â]`, `n × (m+n)`: read and carry.
    pub static_alpha: Param<B>,
    /// `Bᵀ`, `n × m`: write.
    pub static_beta_t: Param<B>,
    /// `W_α`, `d_b × (m+n)`.
    pub w_alpha: Param<B>,
    /// `W_β`, `d_b × m`.
    pub w_beta: Param<B>,
    /// `S_α`, `n × (m+n)`.
    pub s_alpha: Param<B>,
    /// `S_βᵀ`, `n × m`.
    pub s_beta_t: Param<B>,
    /// Gain of the per-slot RMSNorm (shared across slots).
    pub norm_gain: Param<B>,
}

/// The read/carry matrix at initialisation: `Å = [I_m; 0]`, `Â = I_n` (spec §3.1).
pub fn init_static_alpha(m: usize, n: usize) -> Vec<f64> {
    let mut a = vec![0.0; n * (m + n)];
    for i in 0..n {
        if i < m {
            a[i * (m + n) + i] = 1.0;
        }
        a[i * (m + n) + m + i] = 1.0;
    }
    a
}

/// `Bᵀ` at initialisation: the cyclic `B[k, j] = 1 iff j mod m = k`, stored `n × m`.
pub fn init_static_beta_t(m: usize, n: usize) -> Vec<f64> {
    (0..n).flat_map(|j| (0..m).map(move |k| f64::from(j % m == k))).collect()
}

impl<B: Backend> Ghc<B> {
    pub fn new(init: &mut Init<'_, B>, name: &str, spec: &GhcSpec) -> Self {
        let GhcSpec { m, n, d_b, dynamic, decay_scales, eps } = *spec;
        let p = |s: &str| format!("{name}.{s}");
        Ghc {
            m,
            n,
            dynamic,
            eps,
            static_alpha: init.from_f64(&p("static_alpha"), &[n, m + n], &init_static_alpha(m, n), false),
            static_beta_t: init.from_f64(&p("static_beta_t"), &[n, m], &init_static_beta_t(m, n), false),
            w_alpha: init.constant(&p("w_alpha"), &[d_b, m + n], 0.0, true),
            w_beta: init.constant(&p("w_beta"), &[d_b, m], 0.0, true),
            s_alpha: init.constant(&p("s_alpha"), &[n, m + n], 1.0, decay_scales),
            s_beta_t: init.constant(&p("s_beta_t"), &[n, m], 1.0, decay_scales),
            norm_gain: init.constant(&p("norm_gain"), &[d_b], 1.0, false),
        }
    }

    /// The fraction rate `m`.
    pub fn m(&self) -> usize {
        self.m
    }

    pub fn params(&self) -> Vec<&Param<B>> {
        let mut p = vec![&self.static_alpha, &self.static_beta_t];
        if self.dynamic {
            p.extend([&self.w_alpha, &self.w_beta, &self.s_alpha, &self.s_beta_t, &self.norm_gain]);
        }
        p
    }

    /// Routing coefficients `C` (`[tokens, n, 2m+n]`, or `[n, 2m+n]` when static).
    fn coefficients(&self, h: &Var<B>) -> Var<B> {
        let cst = Var::concat(&[self.static_alpha.var(), self.static_beta_t.var()], 1);
        if !self.dynamic {
            return cst;
        }
        let wc = Var::concat(&[self.w_alpha.var(), self.w_beta.var()], 1);
        let sc = Var::concat(&[self.s_alpha.var(), self.s_beta_t.var()], 1);
        dynamic_coefficients(h, &self.norm_gain.var(), &wc, &sc, &cst, self.eps)
    }

    /// The width connection: from the state `h` (`[tokens, n, d_b]`) returns the backbone
    /// input (`[tokens, m, d_b]`), the carried state (`[tokens, n, d_b]`), and `βᵀ`.
    pub fn width(&self, h: &Var<B>) -> (Var<B>, Var<B>, Var<B>) {
        let (m, n) = (self.m, self.n);
        let c = self.coefficients(h);
        let axis = c.rank() - 1;
        // mix[t] = α[t]ᵀ·H[t]: row i of the result gathers every slot with weights α[:, i].
        // The read (Å) and carry (Â) columns are two products rather than one product
        // narrowed in two: their gradients then add into dH directly, where narrowing the
        // wide product would pad each part's gradient with zeros back to full width.
        let mix = |start: usize, len: usize| c.narrow(axis, start, len).transpose(axis - 1, axis).matmul(h);
        (mix(0, m), mix(m, n), c.narrow(axis, m + n, m))
    }

    /// The depth connection: `H' = βᵀ·Y + carry` with the sublayer output `y`
    /// (`[tokens, m, d_b]`).
    pub fn depth(&self, y: &Var<B>, carry: &Var<B>, beta_t: &Var<B>) -> Var<B> {
        beta_t.matmul(y).add(carry)
    }
}

/// `C = tanh(RMSNorm(H)·Wc / √d_b) ∘ Sc + Cst` as one op with the backward of spec §2.10.
///
/// Shapes: `h` `[tokens, n, d_b]`, `gain` `[d_b]`, `wc` `[d_b, k]`, `sc` and `cst`
/// `[n, k]` with `k = 2m+n`; returns `[tokens, n, k]`.
pub fn dynamic_coefficients<B: Backend>(
    h: &Var<B>,
    gain: &Var<B>,
    wc: &Var<B>,
    sc: &Var<B>,
    cst: &Var<B>,
    eps: f64,
) -> Var<B> {
    let (tokens, n, d_b) = (h.dim(0), h.dim(1), h.dim(2));
    let k = wc.dim(1);
    let inv_tau = 1.0 / (d_b as f64).sqrt();
    let (hv, gv, wv, sv) =
        (h.value().reshape(&[tokens * n, d_b]), gain.value().clone(), wc.value().clone(), sc.value().clone());
    let (hn, stats) = hv.rms_norm(Some(&gv), eps);
    let t = hn.matmul(&wv).mul_scalar(inv_tau).tanh().reshape(&[tokens, n, k]);
    let c = t.mul(&sv).add(cst.value());
    Var::from_op(c, &[h, gain, wc, sc, cst], move |g, needs| {
        let d_cst = needs[4].then(|| g.sum(&[0], false));
        let d_sc = needs[3].then(|| g.mul(&t).sum(&[0], false));
        // ∂P = ∂C ∘ Sc ∘ (1 − tanh²P), then through the 1/τ scaling.
        let dp = g.mul(&sv).mul(&t.square().neg().add_scalar(1.0)).reshape(&[tokens * n, k]).mul_scalar(inv_tau);
        let d_wc = needs[2].then(|| hn.t().matmul(&dp));
        let dhn = dp.matmul(&wv.t());
        let norm = hv.rms_norm_backward(Some(&gv), &stats, &dhn);
        vec![Some(norm.dx.reshape(&[tokens, n, d_b])), norm.dgain, d_wc, d_sc, d_cst]
    })
}
