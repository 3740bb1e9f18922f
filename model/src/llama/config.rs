//! Hyper-parameters of a llama-architecture GGUF file, from its `llama.*` metadata.

use std::path::Path;

use data::gguf::{GgufFile, GgufValue};

use super::error::LlamaError;

#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub n_layers: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub context_len: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
}

impl LlamaConfig {
    /// Reads and checks the hyper-parameters; `path` only names the file in errors.
    pub fn from_gguf(file: &GgufFile, path: &Path) -> Result<LlamaConfig, LlamaError> {
        let err = |m: String| LlamaError::model(path, m);
        match file.get("general.architecture").and_then(GgufValue::as_str) {
            Some("llama") => {}
            other => return Err(err(format!("general.architecture is {other:?}; only \"llama\" is supported"))),
        }
        let int = |key: &str| -> Result<Option<usize>, LlamaError> {
            let key = format!("llama.{key}");
            file.get(&key)
                .map(|v| v.as_u64().map(|x| x as usize).ok_or_else(|| err(format!("{key} is not an integer"))))
                .transpose()
        };
        let required = |key: &str| int(key)?.ok_or_else(|| err(format!("llama.{key} is missing")));
        let float = |key: &str| -> Result<Option<f32>, LlamaError> {
            let key = format!("llama.{key}");
            file.get(&key)
                .map(|v| match *v {
                    GgufValue::F32(x) => Ok(x),
                    GgufValue::F64(x) => Ok(x as f32),
                    _ => Err(err(format!("{key} is not a number"))),
                })
                .transpose()
        };
        if let Some(kind) = file.get("llama.rope.scaling.type").and_then(GgufValue::as_str) {
            if kind != "none" {
                return Err(err(format!("llama.rope.scaling.type {kind:?} is not supported")));
            }
        }
        let d_model = required("embedding_length")?;
        let n_heads = required("attention.head_count")?;
        let n_kv_heads = int("attention.head_count_kv")?.unwrap_or(n_heads);
        if n_heads == 0 || n_kv_heads == 0 || d_model % n_heads != 0 || n_heads % n_kv_heads != 0 {
            return Err(err(format!(
                "{n_heads} heads and {n_kv_heads} key/value heads do not divide embedding length {d_model}"
            )));
        }
        let head_dim = d_model / n_heads;
        if head_dim % 2 != 0 {
            return Err(err(format!("head dimension {head_dim} is odd; rotary embedding needs pairs")));
        }
        if let Some(rot) = int("rope.dimension_count")? {
            if rot != head_dim {
                return Err(err(format!("partial rotary embedding ({rot} of {head_dim} dims) is not supported")));
            }
        }
        let vocab_size = match int("vocab_size")? {
            Some(v) => v,
            None => {
                file.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array).map(<[GgufValue]>::len).ok_or_else(
                    || err("neither llama.vocab_size nor tokenizer.ggml.tokens gives the vocabulary".into()),
                )?
            }
        };
        Ok(LlamaConfig {
            n_layers: required("block_count")?,
            d_model,
            d_ff: required("feed_forward_length")?,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            context_len: required("context_length")?,
            rope_base: float("rope.freq_base")?.unwrap_or(10_000.0),
            rms_eps: float("attention.layer_norm_rms_epsilon")?
                .ok_or_else(|| err("llama.attention.layer_norm_rms_epsilon is missing".into()))?,
        })
    }

    /// Width of the key (and of the value) projection.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}
