//! Model configuration: every architectural choice, validated with clear errors.
//!
//! Where the VWN paper leaves a choice open (spec §9), the best reading is the default
//! and the alternative is a switch here.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// A standard pre-norm GPT.
    Baseline,
    /// Virtual Width Network: over-width state connected by GHC modules.
    Vwn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FfnKind {
    SwiGlu,
    Gelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingMode {
    /// A `vocab × D'` table (spec §2.1, natural for small r).
    Direct,
    /// A `vocab × D` table expanded by a learned `D' × D` map (spec Eq. 3, for large r).
    Factorized,
}

/// What the final GroupNorm does when `D'` is not a multiple of `D` (e.g. r = 1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupNormFallback {
    /// Omit it, as the paper does at 1.5× (spec §2.6).
    Skip,
    /// Normalise each `d_b` slot as its own group.
    PerSlot,
}

/// Normalisation of the MTP head's inputs (spec §4: unstated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MtpNorm {
    /// RMSNorm over the whole (over-width) vector.
    PerVector,
    /// RMSNorm over each `d_b` slot with a shared gain.
    PerSlot,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VwnConfig {
    /// Fraction rate: backbone width D splits into `m` segments.
    pub m: usize,
    /// Expanded width: the state holds `n ≥ m` slots of `D/m`.
    pub n: usize,
    pub embedding: EmbeddingMode,
    /// Dynamic (input-dependent) GHC coefficients on top of the static ones.
    pub dynamic: bool,
    pub groupnorm_fallback: GroupNormFallback,
    /// Weight decay on the GHC scales `S_α`, `S_β` (spec §9.5: unstated; default off).
    pub decay_scales: bool,
}

impl Default for VwnConfig {
    fn default() -> Self {
        VwnConfig {
            m: 2,
            n: 8,
            embedding: EmbeddingMode::Direct,
            dynamic: true,
            groupnorm_fallback: GroupNormFallback::Skip,
            decay_scales: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtpConfig {
    /// Add the next-2-token head (one extra layer, DeepSeek-V3 style).
    pub enabled: bool,
    /// Loss weight λ: loss = CE(next) + λ·CE(next-2).
    pub lambda: f64,
    pub norm: MtpNorm,
}

impl Default for MtpConfig {
    fn default() -> Self {
        MtpConfig { enabled: false, lambda: 0.3, norm: MtpNorm::PerVector }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    /// Backbone width D (attention and FFN run at this width).
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    pub ffn: FfnKind,
    pub ffn_hidden: usize,
    pub max_seq_len: usize,
    pub rope_theta: f64,
    /// Rotate pairs `(x[2i], x[2i+1])` instead of halves.
    pub rope_interleaved: bool,
    pub norm_eps: f64,
    /// Share the token table with the LM head (baseline, or VWN with a factorised embedding).
    pub tie_embeddings: bool,
    /// Standard deviation of the normal initialisation of weights.
    pub init_std: f64,
    pub vwn: VwnConfig,
    pub mtp: MtpConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Vwn,
            vocab_size: 8192,
            d_model: 256,
            n_layers: 4,
            n_heads: 4,
            n_kv_heads: 4,
            ffn: FfnKind::SwiGlu,
            ffn_hidden: 688,
            max_seq_len: 256,
            rope_theta: 10_000.0,
            rope_interleaved: false,
            norm_eps: 1e-6,
            tie_embeddings: false,
            init_std: 0.02,
            vwn: VwnConfig::default(),
            mtp: MtpConfig { enabled: true, ..MtpConfig::default() },
        }
    }
}

/// A configuration value that cannot work, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid model config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ModelConfig {
    /// The (m, n) in effect: (1, 1) for the baseline.
    pub fn mn(&self) -> (usize, usize) {
        match self.arch {
            Arch::Baseline => (1, 1),
            Arch::Vwn => (self.vwn.m, self.vwn.n),
        }
    }
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }
    /// Per-slot width `d_b = D/m`.
    pub fn slot_dim(&self) -> usize {
        self.d_model / self.mn().0
    }
    /// Over-width state width `D' = n·D/m`.
    pub fn wide_dim(&self) -> usize {
        let (m, n) = self.mn();
        n * self.d_model / m
    }
    /// Groups of the final GroupNorm over `D'`, or `None` when it is omitted.
    pub fn final_groups(&self) -> Option<usize> {
        let (m, n) = self.mn();
        if self.arch == Arch::Baseline || n == m {
            return None;
        }
        if self.wide_dim().is_multiple_of(self.d_model) {
            Some(self.wide_dim() / self.d_model)
        } else {
            match self.vwn.groupnorm_fallback {
                GroupNormFallback::Skip => None,
                GroupNormFallback::PerSlot => Some(n),
            }
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        let positive = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("ffn_hidden", self.ffn_hidden),
            ("max_seq_len", self.max_seq_len),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return err(format!("{name} must be positive"));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return err(format!("d_model {} is not divisible by n_heads {}", self.d_model, self.n_heads));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return err(format!("n_heads {} is not a multiple of n_kv_heads {}", self.n_heads, self.n_kv_heads));
        }
        if !self.head_dim().is_multiple_of(2) {
            return err(format!("head_dim {} must be even for rotary embeddings", self.head_dim()));
        }
        if !(self.norm_eps > 0.0 && self.init_std > 0.0 && self.rope_theta > 0.0) {
            return err("norm_eps, init_std and rope_theta must be positive".into());
        }
        if self.mtp.enabled && !(self.mtp.lambda >= 0.0 && self.mtp.lambda.is_finite()) {
            return err(format!("mtp.lambda must be a non-negative number, got {}", self.mtp.lambda));
        }
        if self.arch == Arch::Vwn {
            let (m, n) = (self.vwn.m, self.vwn.n);
            if m == 0 {
                return err("vwn.m must be positive".into());
            }
            if n < m {
                return err(format!("vwn.n ({n}) must be at least vwn.m ({m})"));
            }
            if !self.d_model.is_multiple_of(m) {
                return err(format!("d_model {} is not divisible by vwn.m {m}", self.d_model));
            }
            if self.tie_embeddings && self.vwn.embedding == EmbeddingMode::Direct && n != m {
                return err(
                    "tie_embeddings needs vwn.embedding = \"factorized\": a direct table is D' wide, the LM head D"
                        .into(),
                );
            }
        }
        Ok(())
    }
}
