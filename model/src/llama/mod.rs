//! A local inference engine for llama-architecture GGUF models (the MAGA tool model,
//! SmolLM2-135M-Instruct): quantised weights, batched decoding with a KV cache, ChatML
//! prompts, and [`data::llm::TextGenerator`]. Plain f32 slices, no autograd: design and
//! figures in `docs/llama-engine.md`.

pub mod attention;
pub mod chat;
pub mod config;
pub mod engine;
pub mod error;
pub mod forward;
pub mod generate;
pub mod kernels;
pub mod location;
pub mod matrix;
pub mod quant;
pub mod weights;

pub use config::LlamaConfig;
pub use engine::LlamaEngine;
pub use error::LlamaError;
pub use forward::Segment;
pub use generate::Generation;
pub use location::{smollm2_path, FETCH_COMMAND, SMOLLM2_FILE};
pub use weights::Llama;
#[cfg(test)]
pub(crate) mod test_model;
