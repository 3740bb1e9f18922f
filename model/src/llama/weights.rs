//! Loading a llama-architecture GGUF file: the tensors by their llama.cpp names,
//! checked for shape, type and extent, out of a memory map of the file.

use std::path::Path;

use data::gguf::GgufFile;

use super::config::LlamaConfig;
use super::error::LlamaError;
use super::matrix::Matrix;
use super::quant::{dequantize, type_name, GgmlType};

/// One transformer block.
pub struct Block {
    pub attn_norm: Vec<f32>,
    /// q, k and v projections stacked: `[(n_heads + 2·n_kv_heads)·head_dim, d_model]`.
    pub qkv: Matrix,
    pub attn_out: Matrix,
    pub ffn_norm: Vec<f32>,
    /// Gate and up projections stacked: `[2·d_ff, d_model]`.
    pub gate_up: Matrix,
    pub down: Matrix,
}

/// A llama model's weights and hyper-parameters.
pub struct Llama {
    pub config: LlamaConfig,
    pub embed: Matrix,
    pub blocks: Vec<Block>,
    pub out_norm: Vec<f32>,
    /// `None`: tied to the embedding.
    pub output: Option<Matrix>,
}

impl Llama {
    /// Loads the model in the GGUF file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Llama, LlamaError> {
        let path = path.as_ref();
        let file = GgufFile::read(path)?;
        let handle = std::fs::File::open(path).map_err(|e| data::Error::io(path, e))?;
        // SAFETY: read-only map, dropped before returning; tensors are copied out of it.
        let map = unsafe { memmap2::Mmap::map(&handle) }.map_err(|e| data::Error::io(path, e))?;
        Self::from_parts(&file, &map, path)
    }

    /// Builds the model from a parsed header and the whole file's bytes.
    pub fn from_parts(file: &GgufFile, bytes: &[u8], path: &Path) -> Result<Llama, LlamaError> {
        let config = LlamaConfig::from_gguf(file, path)?;
        let t = Tensors { file, bytes, path };
        let c = &config;
        let (d, kv) = (c.d_model, c.kv_dim());
        let blocks = (0..c.n_layers)
            .map(|i| {
                let name = |s: &str| format!("blk.{i}.{s}.weight");
                Ok(Block {
                    attn_norm: t.vector(&name("attn_norm"), d)?,
                    qkv: Matrix::stack(vec![
                        t.matrix(&name("attn_q"), d, d)?,
                        t.matrix(&name("attn_k"), kv, d)?,
                        t.matrix(&name("attn_v"), kv, d)?,
                    ]),
                    attn_out: t.matrix(&name("attn_output"), d, d)?,
                    ffn_norm: t.vector(&name("ffn_norm"), d)?,
                    gate_up: Matrix::stack(vec![
                        t.matrix(&name("ffn_gate"), c.d_ff, d)?,
                        t.matrix(&name("ffn_up"), c.d_ff, d)?,
                    ]),
                    down: t.matrix(&name("ffn_down"), d, c.d_ff)?,
                })
            })
            .collect::<Result<Vec<_>, LlamaError>>()?;
        let output = match file.tensors.iter().any(|ti| ti.name == "output.weight") {
            true => Some(t.matrix("output.weight", c.vocab_size, d)?),
            false => None,
        };
        Ok(Llama {
            embed: t.matrix("token_embd.weight", c.vocab_size, d)?,
            out_norm: t.vector("output_norm.weight", d)?,
            blocks,
            output,
            config,
        })
    }

    /// The matrix producing logits (the embedding when tied).
    pub fn output(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.embed)
    }
}

/// Tensor lookup with every check a damaged or foreign file needs.
struct Tensors<'a> {
    file: &'a GgufFile,
    bytes: &'a [u8],
    path: &'a Path,
}

impl Tensors<'_> {
    /// The type and bytes of tensor `name`, which must have ggml dims `dims`.
    fn raw(&self, name: &str, dims: &[usize]) -> Result<(GgmlType, &[u8]), LlamaError> {
        let err = |m: String| LlamaError::model(self.path, format!("tensor {name}: {m}"));
        let info = self.file.tensors.iter().find(|t| t.name == name).ok_or_else(|| err("missing".into()))?;
        if info.dims.iter().map(|&x| x as usize).ne(dims.iter().copied()) {
            return Err(err(format!("dims {:?}, expected {dims:?}", info.dims)));
        }
        let ty = GgmlType::from_id(info.ggml_type).ok_or_else(|| {
            err(format!("type {} is not supported (F32, F16, Q8_0, Q4_1 are)", type_name(info.ggml_type)))
        })?;
        if !dims[0].is_multiple_of(ty.block_len()) {
            return Err(err(format!("row length {} is not a multiple of the {:?} block", dims[0], ty)));
        }
        let len = ty.bytes_for(dims.iter().product());
        let start = self.file.data_offset.saturating_add(info.offset);
        let end = start.saturating_add(len as u64);
        if end > self.bytes.len() as u64 {
            return Err(err(format!(
                "data at bytes {start}..{end} runs past the end of the {}-byte file (truncated file?)",
                self.bytes.len()
            )));
        }
        Ok((ty, &self.bytes[start as usize..end as usize]))
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix, LlamaError> {
        let (ty, bytes) = self.raw(name, &[cols, rows])?;
        Ok(Matrix::from_bytes(ty, rows, cols, bytes))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, LlamaError> {
        let (ty, bytes) = self.raw(name, &[len])?;
        let mut v = vec![0.0; len];
        dequantize(ty, bytes, &mut v);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_model::{tiny_llama, tiny_llama_with};
    use super::*;

    fn load(bytes: &[u8]) -> Result<Llama, LlamaError> {
        let file = GgufFile::parse(bytes)?;
        Llama::from_parts(&file, bytes, Path::new("tiny.gguf"))
    }

    #[test]
    fn loads_every_supported_type_with_tied_output() {
        let model = load(&tiny_llama()).unwrap();
        assert_eq!(model.config.n_layers, 2);
        assert_eq!((model.config.head_dim, model.config.kv_dim()), (16, 32));
        assert_eq!(model.blocks[0].qkv.rows(), 64 + 2 * 32);
        assert!(model.output.is_none());
        assert_eq!(model.output().rows(), 64);
    }

    #[test]
    fn damage_and_unsupported_content_are_named() {
        let err = |bytes: &[u8]| load(bytes).err().expect("load must fail").to_string();
        let bytes = tiny_llama();
        let cut = err(&bytes[..bytes.len() - 100]);
        assert!(cut.contains("output_norm.weight") && cut.contains("truncated"), "{cut}");
        let q4_0 = err(&tiny_llama_with(|t| t[1].ggml_type = 2));
        assert!(q4_0.contains("blk.0.attn_norm.weight") && q4_0.contains("Q4_0 is not supported"), "{q4_0}");
        let missing = err(&tiny_llama_with(|t| t.retain(|t| t.name != "blk.1.ffn_up.weight")));
        assert!(missing.contains("tensor blk.1.ffn_up.weight: missing"), "{missing}");
        let shape = err(&tiny_llama_with(|t| t[2].dims = vec![64, 32]));
        assert!(shape.contains("blk.0.attn_q.weight: dims [64, 32], expected [64, 64]"), "{shape}");
        let mut foreign = tiny_llama();
        let at = foreign.windows(5).position(|w| w == b"llama").unwrap();
        foreign[at..at + 5].copy_from_slice(b"gemma");
        assert!(err(&foreign).contains("only \"llama\""));
    }
}
