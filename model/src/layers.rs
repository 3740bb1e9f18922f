//! Backbone layers: linear, RMSNorm, rotary tables, causal attention, SwiGLU/GELU FFN.
//! Weights use PyTorch's `[out, in]` layout so checkpoints read naturally elsewhere.

use crate::config::{FfnKind, ModelConfig};
use autograd::{Param, Var};
use tensor::{Backend, Rng, RopeArgs, Tensor};

/// Builds named parameters with the model's initialisation.
pub struct Init<'a, B: Backend> {
    pub backend: &'a B,
    pub rng: &'a mut Rng,
    pub std: f64,
}

impl<B: Backend> Init<'_, B> {
    pub fn normal(&mut self, name: &str, shape: &[usize], std: f64) -> Param<B> {
        Param::new(name, Tensor::randn(shape, 0.0, std, self.rng, self.backend), true)
    }
    pub fn weight(&mut self, name: &str, shape: &[usize]) -> Param<B> {
        let std = self.std;
        self.normal(name, shape, std)
    }
    /// A constant-initialised parameter (gains, biases, routing matrices).
    pub fn constant(&mut self, name: &str, shape: &[usize], value: f64, decay: bool) -> Param<B> {
        Param::new(name, Tensor::full(shape, value, self.backend), decay)
    }
    pub fn from_f64(&mut self, name: &str, shape: &[usize], values: &[f64], decay: bool) -> Param<B> {
        Param::new(name, Tensor::from_f64(values, shape, self.backend), decay)
    }
}

pub struct Linear<B: Backend> {
    pub weight: Param<B>,
}

impl<B: Backend> Linear<B> {
    pub fn new(init: &mut Init<'_, B>, name: &str, d_in: usize, d_out: usize, std: f64) -> Self {
        Linear { weight: init.normal(&format!("{name}.weight"), &[d_out, d_in], std) }
    }
    pub fn forward(&self, x: &Var<B>) -> Var<B> {
        x.linear(&self.weight.var(), None)
    }
}

pub struct RmsNorm<B: Backend> {
    pub gain: Param<B>,
    eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn new(init: &mut Init<'_, B>, name: &str, dim: usize, eps: f64) -> Self {
        RmsNorm { gain: init.constant(&format!("{name}.gain"), &[dim], 1.0, false), eps }
    }
    pub fn forward(&self, x: &Var<B>) -> Var<B> {
        x.rms_norm(Some(&self.gain.var()), self.eps)
    }
}

/// Precomputed rotary tables `[max_pos, head_dim/2]`.
pub struct Rope<B: Backend> {
    pub cos: Tensor<B>,
    pub sin: Tensor<B>,
    pub interleaved: bool,
}

impl<B: Backend> Rope<B> {
    pub fn new(head_dim: usize, max_pos: usize, theta: f64, interleaved: bool, backend: &B) -> Self {
        let half = head_dim / 2;
        let angle = |p: usize, i: usize| p as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64);
        let table = |f: fn(f64) -> f64| -> Vec<f64> {
            (0..max_pos).flat_map(|p| (0..half).map(move |i| f(angle(p, i)))).collect()
        };
        Rope {
            cos: Tensor::from_f64(&table(f64::cos), &[max_pos, half], backend),
            sin: Tensor::from_f64(&table(f64::sin), &[max_pos, half], backend),
            interleaved,
        }
    }
    /// Rotates `[batch, seq, heads, head_dim]` for positions starting at `pos_offset`.
    pub fn apply(&self, x: &Var<B>, pos_offset: usize) -> Var<B> {
        x.rope(&self.cos, &self.sin, RopeArgs { pos_offset, interleaved: self.interleaved, inverse: false })
    }
}

/// Keys and values of one attention layer for the positions seen so far.
pub struct KvCache<B: Backend> {
    pub k: Option<Tensor<B>>,
    pub v: Option<Tensor<B>>,
}

impl<B: Backend> KvCache<B> {
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dim(1))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<B: Backend> Default for KvCache<B> {
    fn default() -> Self {
        KvCache { k: None, v: None }
    }
}

pub struct Attention<B: Backend> {
    pub wqkv: Linear<B>,
    pub wo: Linear<B>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    pub fn new(init: &mut Init<'_, B>, name: &str, cfg: &ModelConfig) -> Self {
        let (d, hd) = (cfg.d_model, cfg.head_dim());
        let out_std = cfg.init_std / (2.0 * cfg.n_layers as f64).sqrt();
        Attention {
            wqkv: Linear::new(init, &format!("{name}.wqkv"), d, (cfg.n_heads + 2 * cfg.n_kv_heads) * hd, cfg.init_std),
            wo: Linear::new(init, &format!("{name}.wo"), d, d, out_std),
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
        }
    }

    /// Causal self-attention on `[batch, seq, D]`. With a cache, the new positions attend
    /// to everything cached before them, and their keys and values are appended.
    pub fn forward(&self, x: &Var<B>, rope: &Rope<B>, cache: Option<&mut KvCache<B>>) -> Var<B> {
        let (b, t, hd) = (x.dim(0), x.dim(1), self.head_dim);
        let qkv = self.wqkv.forward(x);
        let parts = qkv.split(2, &[self.n_heads * hd, self.n_kv_heads * hd, self.n_kv_heads * hd]);
        let past = cache.as_ref().map_or(0, |c| c.len());
        let q = rope.apply(&parts[0].reshape(&[b, t, self.n_heads, hd]), past);
        let mut k = rope.apply(&parts[1].reshape(&[b, t, self.n_kv_heads, hd]), past);
        let mut v = parts[2].reshape(&[b, t, self.n_kv_heads, hd]);
        if let Some(c) = cache {
            let join = |old: &Option<Tensor<B>>, new: &Var<B>| match old {
                Some(o) => Tensor::concat(&[o.clone(), new.value().clone()], 1),
                None => new.value().contiguous(),
            };
            let (kc, vc) = (join(&c.k, &k), join(&c.v, &v));
            (k, v) = (Var::constant(kc.clone()), Var::constant(vc.clone()));
            (c.k, c.v) = (Some(kc), Some(vc));
        }
        let o = Var::attention(&q, &k, &v, true, 1.0 / (hd as f64).sqrt());
        self.wo.forward(&o.reshape(&[b, t, self.n_heads * hd]))
    }
}

pub struct Ffn<B: Backend> {
    kind: FfnKind,
    /// SwiGLU: gate and up projections stacked (`[2H, D]`); GELU: the up projection.
    pub w_in: Linear<B>,
    pub w_out: Linear<B>,
    hidden: usize,
}

impl<B: Backend> Ffn<B> {
    pub fn new(init: &mut Init<'_, B>, name: &str, cfg: &ModelConfig) -> Self {
        let (d, h) = (cfg.d_model, cfg.ffn_hidden);
        let fan = if cfg.ffn == FfnKind::SwiGlu { 2 * h } else { h };
        let out_std = cfg.init_std / (2.0 * cfg.n_layers as f64).sqrt();
        Ffn {
            kind: cfg.ffn,
            w_in: Linear::new(init, &format!("{name}.w_in"), d, fan, cfg.init_std),
            w_out: Linear::new(init, &format!("{name}.w_out"), h, d, out_std),
            hidden: h,
        }
    }
    pub fn forward(&self, x: &Var<B>) -> Var<B> {
        let h = self.w_in.forward(x);
        let act = match self.kind {
            FfnKind::SwiGlu => {
                let gu = h.split(h.rank() - 1, &[self.hidden, self.hidden]);
                gu[0].silu().mul(&gu[1])
            }
            FfnKind::Gelu => h.gelu(),
        };
        self.w_out.forward(&act)
    }
}

/// The backbone of one transformer layer: two pre-norm sublayers at width D. How their
/// outputs join the residual state (plain addition or GHC) is the caller's business.
pub struct Block<B: Backend> {
    pub attn_norm: RmsNorm<B>,
    pub attn: Attention<B>,
    pub ffn_norm: RmsNorm<B>,
    pub ffn: Ffn<B>,
}

impl<B: Backend> Block<B> {
    pub fn new(init: &mut Init<'_, B>, name: &str, cfg: &ModelConfig) -> Self {
        Block {
            attn_norm: RmsNorm::new(init, &format!("{name}.attn_norm"), cfg.d_model, cfg.norm_eps),
            attn: Attention::new(init, &format!("{name}.attn"), cfg),
            ffn_norm: RmsNorm::new(init, &format!("{name}.ffn_norm"), cfg.d_model, cfg.norm_eps),
            ffn: Ffn::new(init, &format!("{name}.ffn"), cfg),
        }
    }
    /// `T_attn(x) = Attention(RMSNorm(x))` on `[batch, seq, D]`.
    pub fn attn_sublayer(&self, x: &Var<B>, rope: &Rope<B>, cache: Option<&mut KvCache<B>>) -> Var<B> {
        self.attn.forward(&self.attn_norm.forward(x), rope, cache)
    }
    /// `T_ffn(x) = FFN(RMSNorm(x))`.
    pub fn ffn_sublayer(&self, x: &Var<B>) -> Var<B> {
        self.ffn.forward(&self.ffn_norm.forward(x))
    }
    pub fn params(&self) -> Vec<&Param<B>> {
        vec![
            &self.attn_norm.gain,
            &self.attn.wqkv.weight,
            &self.attn.wo.weight,
            &self.ffn_norm.gain,
            &self.ffn.w_in.weight,
            &self.ffn.w_out.weight,
        ]
    }
}
