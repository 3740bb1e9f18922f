//! The VWN language model: baseline GPT and Virtual Width Networks (over-width embedding,
//! Generalized Hyper-Connections, GroupNorm + reduce head) with an optional next-2-token
//! head. Generic over the tensor backend. Spec: `shared/spec/vwn.md`.

pub mod config;
pub mod ghc;
pub mod layers;
pub mod transformer;

pub use config::{
    Arch, ConfigError, EmbeddingMode, FfnKind, GroupNormFallback, ModelConfig, MtpConfig, MtpNorm, VwnConfig,
};
pub use transformer::{LossOutput, Model, ParamCounts, IGNORE};
pub mod checkpoint;
pub mod eval;
pub mod generate;
pub mod llama;
pub mod plot;
pub mod safetensors;
pub mod train_config;
pub mod trainer;
