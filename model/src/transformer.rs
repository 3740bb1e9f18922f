//! The language model: baseline GPT or Virtual Width Network, with an optional
//! next-2-token (MTP) head.
//!
//! Baseline: `h ← h + T(h)` for each sublayer on a `[batch, seq, D]` state.
//! VWN: the state is `[tokens, n, d_b]` (`D' = n·d_b`); each sublayer is wrapped in a
//! GHC module (spec §2.3), and the head is `RMSNorm(W_reduce·GroupNorm(H))` (§2.6).

use crate::config::{Arch, EmbeddingMode, ModelConfig, MtpNorm};
use crate::ghc::{Ghc, GhcSpec};
use crate::layers::{Block, Init, KvCache, Linear, RmsNorm, Rope};
use autograd::{Param, Reduction, Var};
use tensor::{Backend, Rng, Tensor};

/// One transformer layer: the backbone block and, for VWN, its two GHC modules.
pub struct Layer<B: Backend> {
    pub block: Block<B>,
    pub ghc: Option<[Ghc<B>; 2]>,
}

impl<B: Backend> Layer<B> {
    fn new(init: &mut Init<'_, B>, name: &str, cfg: &ModelConfig) -> Self {
        let ghc = (cfg.arch == Arch::Vwn).then(|| {
            let (m, n) = cfg.mn();
            let spec = GhcSpec {
                m,
                n,
                d_b: cfg.slot_dim(),
                dynamic: cfg.vwn.dynamic,
                decay_scales: cfg.vwn.decay_scales,
                eps: cfg.norm_eps,
            };
            let mk = |init: &mut Init<'_, B>, s: &str| Ghc::new(init, &format!("{name}.{s}"), &spec);
            [mk(init, "ghc_attn"), mk(init, "ghc_ffn")]
        });
        Layer { block: Block::new(init, name, cfg), ghc }
    }

    fn params(&self) -> Vec<&Param<B>> {
        let mut p = self.block.params();
        for g in self.ghc.iter().flatten() {
            p.extend(g.params());
        }
        p
    }

    /// Applies the layer to the residual state: `[batch, seq, D]` (baseline) or
    /// `[batch·seq, n, d_b]` (VWN).
    fn forward(&self, h: &Var<B>, batch: usize, seq: usize, rope: &Rope<B>, cache: Option<&mut KvCache<B>>) -> Var<B> {
        match &self.ghc {
            None => {
                let h = h.add(&self.block.attn_sublayer(h, rope, cache));
                h.add(&self.block.ffn_sublayer(&h))
            }
            Some([ga, gf]) => {
                let (tokens, m, d_b) = (h.dim(0), ga.m(), h.dim(2));
                let wide = |x: &Var<B>| x.reshape(&[batch, seq, m * d_b]);
                let slots = |y: &Var<B>| y.reshape(&[tokens, m, d_b]);
                let (x, carry, bt) = ga.width(h);
                let h = ga.depth(&slots(&self.block.attn_sublayer(&wide(&x), rope, cache)), &carry, &bt);
                let (x, carry, bt) = gf.width(&h);
                gf.depth(&slots(&self.block.ffn_sublayer(&wide(&x))), &carry, &bt)
            }
        }
    }
}

/// The next-2-token head (spec §4): fuse the final state at position i with the
/// embedding of token i+1, run one more layer, and predict token i+2.
pub struct MtpHead<B: Backend> {
    pub h_norm: RmsNorm<B>,
    pub e_norm: RmsNorm<B>,
    /// `2·d_b → d_b` shared over slots (VWN's block-level linear) or `2D → D` (baseline).
    pub proj: Linear<B>,
    pub layer: Layer<B>,
}

/// Losses of one forward pass.
pub struct LossOutput<B: Backend> {
    /// `CE(next) + λ·CE(next-2)`: what backward runs on.
    pub total: Var<B>,
    pub next_token: f64,
    pub next2_token: Option<f64>,
}

pub struct Model<B: Backend> {
    pub config: ModelConfig,
    /// `[vocab, D']` (direct) or `[vocab, D]` (factorised, baseline).
    pub embed: Param<B>,
    /// `W_expand` (`[D', D]`) of a factorised embedding.
    pub embed_expand: Option<Linear<B>>,
    pub layers: Vec<Layer<B>>,
    pub final_gn: Option<(Param<B>, Param<B>, usize)>,
    pub reduce: Option<Linear<B>>,
    pub final_norm: RmsNorm<B>,
    /// `None` when tied to the (base) embedding table.
    pub lm_head: Option<Param<B>>,
    pub mtp: Option<MtpHead<B>>,
    rope: Rope<B>,
}

/// Target id marking positions without a target (the MTP head's last position).
pub const IGNORE: u32 = u32::MAX;

impl<B: Backend> Model<B> {
    /// Builds and initialises a model; the configuration must validate.
    pub fn new(config: &ModelConfig, seed: u64, backend: &B) -> Result<Self, crate::ConfigError> {
        config.validate()?;
        let cfg = config.clone();
        let mut rng = Rng::seed(seed);
        let mut init = Init { backend, rng: &mut rng, std: cfg.init_std };
        let vwn = cfg.arch == Arch::Vwn;
        let (d, wide, d_b) = (cfg.d_model, cfg.wide_dim(), cfg.slot_dim());
        let factorized = vwn && cfg.vwn.embedding == EmbeddingMode::Factorized;
        let table_width = if vwn && !factorized { wide } else { d };
        let embed = init.weight("embed.weight", &[cfg.vocab_size, table_width]);
        let embed_expand = factorized.then(|| Linear::new(&mut init, "embed.expand", d, wide, cfg.init_std));
        let layers = (0..cfg.n_layers).map(|i| Layer::new(&mut init, &format!("blocks.{i}"), &cfg)).collect();
        let final_gn = cfg.final_groups().map(|g| {
            (
                init.constant("final.groupnorm.gain", &[wide], 1.0, false),
                init.constant("final.groupnorm.bias", &[wide], 0.0, false),
                g,
            )
        });
        let reduce = vwn.then(|| Linear::new(&mut init, "final.reduce", wide, d, cfg.init_std));
        let final_norm = RmsNorm::new(&mut init, "final.norm", d, cfg.norm_eps);
        let lm_head = (!cfg.tie_embeddings).then(|| init.weight("lm_head.weight", &[cfg.vocab_size, d]));
        let mtp = cfg.mtp.enabled.then(|| {
            let norm_dim = if cfg.mtp.norm == MtpNorm::PerSlot { d_b } else { wide };
            let (pin, pout) = if vwn { (2 * d_b, d_b) } else { (2 * d, d) };
            MtpHead {
                h_norm: RmsNorm::new(&mut init, "mtp.h_norm", norm_dim, cfg.norm_eps),
                e_norm: RmsNorm::new(&mut init, "mtp.e_norm", norm_dim, cfg.norm_eps),
                proj: Linear::new(&mut init, "mtp.proj", pin, pout, cfg.init_std),
                layer: Layer::new(&mut init, "mtp.block", &cfg),
            }
        });
        let rope = Rope::new(cfg.head_dim(), cfg.max_seq_len, cfg.rope_theta, cfg.rope_interleaved, backend);
        Ok(Model { config: cfg, embed, embed_expand, layers, final_gn, reduce, final_norm, lm_head, mtp, rope })
    }

    /// Every parameter, in a fixed order.
    pub fn params(&self) -> Vec<&Param<B>> {
        let mut p = vec![&self.embed];
        p.extend(self.embed_expand.iter().map(|l| &l.weight));
        for l in &self.layers {
            p.extend(l.params());
        }
        if let Some((g, b, _)) = &self.final_gn {
            p.extend([g, b]);
        }
        p.extend(self.reduce.iter().map(|l| &l.weight));
        p.push(&self.final_norm.gain);
        p.extend(&self.lm_head);
        if let Some(m) = &self.mtp {
            p.extend([&m.h_norm.gain, &m.e_norm.gain, &m.proj.weight]);
            p.extend(m.layer.params());
        }
        p
    }

    /// Residual-state input for token ids: `[batch, seq, D]` or `[tokens, n, d_b]`.
    fn embed_tokens(&self, ids: &[u32], batch: usize, seq: usize) -> Var<B> {
        let mut e = self.embed.var().embedding(ids);
        if let Some(x) = &self.embed_expand {
            e = x.forward(&e);
        }
        match self.config.arch {
            Arch::Baseline => e.reshape(&[batch, seq, self.config.d_model]),
            Arch::Vwn => e.reshape(&[ids.len(), self.config.mn().1, self.config.slot_dim()]),
        }
    }

    /// GroupNorm, reduce, RMSNorm and LM head: `[tokens, vocab]` logits.
    fn head(&self, h: &Var<B>) -> Var<B> {
        let tokens = h.value().numel() / self.config.wide_dim();
        let mut x = h.reshape(&[tokens, self.config.wide_dim()]);
        if let Some((g, b, groups)) = &self.final_gn {
            x = x.group_norm(*groups, Some(&g.var()), Some(&b.var()), 1e-5);
        }
        if let Some(r) = &self.reduce {
            x = r.forward(&x);
        }
        let x = self.final_norm.forward(&x);
        let table = match &self.lm_head {
            Some(w) => w.var(),
            None => self.embed.var(),
        };
        x.linear(&table, None)
    }

    /// Runs the backbone over `[batch, seq]` ids, with optional per-layer KV caches.
    fn backbone(&self, ids: &[u32], batch: usize, seq: usize, mut caches: Option<&mut [KvCache<B>]>) -> Var<B> {
        assert_eq!(ids.len(), batch * seq, "model: {} ids for batch {batch} × seq {seq}", ids.len());
        let past = caches.as_ref().map_or(0, |c| c[0].len());
        assert!(
            past + seq <= self.config.max_seq_len,
            "model: {} positions exceed max_seq_len {}",
            past + seq,
            self.config.max_seq_len
        );
        let mut h = self.embed_tokens(ids, batch, seq);
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, batch, seq, &self.rope, caches.as_deref_mut().map(|c| &mut c[i]));
        }
        h
    }

    /// Next-token logits `[batch·seq, vocab]`.
    pub fn logits(&self, ids: &[u32], batch: usize, seq: usize) -> Var<B> {
        self.head(&self.backbone(ids, batch, seq, None))
    }

    /// Logits for new positions given per-layer KV caches (for generation); the caches
    /// grow by `seq` positions.
    pub fn logits_cached(&self, ids: &[u32], batch: usize, seq: usize, caches: &mut [KvCache<B>]) -> Var<B> {
        assert_eq!(caches.len(), self.layers.len(), "one KV cache per layer");
        self.head(&self.backbone(ids, batch, seq, Some(caches)))
    }

    /// Fresh, empty KV caches for generation.
    pub fn new_caches(&self) -> Vec<KvCache<B>> {
        (0..self.layers.len()).map(|_| KvCache::default()).collect()
    }

    /// Training loss for windows `inputs`/`targets` (`[batch, seq]`, targets shifted by
    /// one). With MTP, position i also predicts token i+2 (`targets[i+1]`).
    pub fn loss(&self, inputs: &[u32], targets: &[u32], batch: usize, seq: usize) -> LossOutput<B> {
        assert_eq!(targets.len(), inputs.len(), "model: inputs and targets differ in length");
        let h = self.backbone(inputs, batch, seq, None);
        let next = self.head(&h).cross_entropy(targets, Some(IGNORE), Reduction::Mean);
        let Some(mtp) = &self.mtp else {
            let v = next.item();
            return LossOutput { total: next, next_token: v, next2_token: None };
        };
        let targets2: Vec<u32> =
            targets.chunks(seq).flat_map(|row| row[1..].iter().copied().chain(std::iter::once(IGNORE))).collect();
        let h2 = self.mtp_state(mtp, &h, targets, batch, seq);
        let next2 = self.head(&h2).cross_entropy(&targets2, Some(IGNORE), Reduction::Mean);
        let (v1, v2) = (next.item(), next2.item());
        LossOutput { total: next.add(&next2.mul_scalar(self.config.mtp.lambda)), next_token: v1, next2_token: Some(v2) }
    }

    /// The MTP layer's output state from the final state `h` and the next tokens.
    fn mtp_state(&self, mtp: &MtpHead<B>, h: &Var<B>, next_ids: &[u32], batch: usize, seq: usize) -> Var<B> {
        let e = self.embed_tokens(next_ids, batch, seq);
        let norm = |n: &RmsNorm<B>, x: &Var<B>| match self.config.mtp.norm {
            MtpNorm::PerSlot => n.forward(x),
            MtpNorm::PerVector => {
                let shape = x.shape().to_vec();
                n.forward(&x.reshape(&[batch * seq, self.config.wide_dim()])).reshape(&shape)
            }
        };
        // Per slot (VWN) or per token (baseline): [H_norm(h) ; E_norm(e)] → proj.
        let axis = h.rank() - 1;
        let fused = mtp.proj.forward(&Var::concat(&[norm(&mtp.h_norm, h), norm(&mtp.e_norm, &e)], axis));
        mtp.layer.forward(&fused, batch, seq, &self.rope, None)
    }

    /// Parameter counts by part: backbone, embedding (incl. LM head), GHC, reduce
    /// (GroupNorm + W_reduce), MTP.
    pub fn param_counts(&self) -> ParamCounts {
        let mut c = ParamCounts::default();
        for p in self.params() {
            let n = p.numel();
            let name = p.name();
            let slot = if name.starts_with("mtp.") {
                &mut c.mtp
            } else if name.contains(".ghc_") {
                &mut c.ghc
            } else if name.starts_with("embed.") || name.starts_with("lm_head") {
                &mut c.embedding
            } else if name.starts_with("final.groupnorm") || name.starts_with("final.reduce") {
                &mut c.reduce
            } else {
                &mut c.backbone
            };
            *slot += n;
        }
        c
    }

    /// Forward FLOPs per token of the matrix products (for MFU): `2 × (matmul weights)`
    /// plus attention scores and values over `seq` positions (causal: half).
    pub fn flops_per_token(&self, seq: usize) -> f64 {
        let matmul_params: usize = self
            .params()
            .iter()
            .filter(|p| p.shape().len() == 2 && !p.name().contains(".ghc_") && p.name() != "embed.weight")
            .map(|p| p.numel())
            .sum();
        let tied = if self.lm_head.is_none() { self.config.vocab_size * self.config.d_model } else { 0 };
        let layers = self.config.n_layers + usize::from(self.mtp.is_some());
        let attn = 2.0 * layers as f64 * seq as f64 * self.config.d_model as f64; // QKᵀ and PV, causal half of 2·2
        2.0 * (matmul_params + tied) as f64 + attn
    }
}

/// Parameter counts by part of the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParamCounts {
    pub backbone: usize,
    pub embedding: usize,
    pub ghc: usize,
    pub reduce: usize,
    pub mtp: usize,
}

impl ParamCounts {
    pub fn total(&self) -> usize {
        self.backbone + self.embedding + self.ghc + self.reduce + self.mtp
    }
}

impl<B: Backend> Model<B> {
    /// Per-token next-token losses (`[batch·seq]`, no graph), for evaluation dumps.
    pub fn token_losses(&self, inputs: &[u32], targets: &[u32], batch: usize, seq: usize) -> Tensor<B> {
        autograd::no_grad(|| self.logits(inputs, batch, seq).value().cross_entropy(targets, Some(IGNORE)).0)
    }
}
