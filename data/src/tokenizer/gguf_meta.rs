//! The tokenizer embedded in a GGUF file's metadata (`tokenizer.ggml.*`).
//!
//! For `tokenizer.ggml.model = "gpt2"`: `tokens` (text by id, GPT-2 byte
//! mapped), `merges` ("A B" in rank order), optional `token_type` (3 =
//! control and 4 = user-defined are special tokens, stored verbatim),
//! `bos_token_id`/`eos_token_id`, and `pre` naming llama.cpp's
//! pre-tokenizer. SmolLM2's "smollm" (like "starcoder" and "refact") splits
//! digits individually before GPT-2's pattern.

use std::path::Path;

use super::{split_merge, PreTokenizer, SpecialToken, TextVocab, Tokenizer};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, GgufValue};

const CONTROL: u64 = 3;
const USER_DEFINED: u64 = 4;

impl Tokenizer {
    /// Loads the tokenizer from a GGUF file's metadata.
    pub fn load_gguf(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        Tokenizer::from_gguf(&GgufFile::read(path)?).map_err(|e| match e {
            Error::Tokenizer(m) => Error::tokenizer(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Builds the tokenizer from parsed GGUF metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let key = |k: &str| file.get(&format!("tokenizer.ggml.{k}"));
        match key("model").and_then(GgufValue::as_str) {
            Some("gpt2") => {}
            other => {
                return Err(Error::tokenizer(format!(
                    "tokenizer.ggml.model is {other:?}, only \"gpt2\" is byte-level BPE"
                )))
            }
        }
        let pretokenizer = match key("pre").and_then(GgufValue::as_str) {
            None | Some("default" | "gpt-2" | "gpt2") => PreTokenizer::Gpt2,
            Some("smollm" | "starcoder" | "refact") => PreTokenizer::Gpt2SplitDigits,
            Some(other) => return Err(Error::tokenizer(format!("unsupported tokenizer.ggml.pre {other:?}"))),
        };
        let strings = |k: &str| -> Result<Vec<&str>> {
            let items = key(k)
                .and_then(GgufValue::as_array)
                .ok_or_else(|| Error::tokenizer(format!("tokenizer.ggml.{k} is missing or not an array")))?;
            items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| Error::tokenizer(format!("tokenizer.ggml.{k} holds a non-string"))))
                .collect()
        };
        let texts = strings("tokens")?;
        let merges = strings("merges")?.into_iter().map(split_merge).collect::<Result<Vec<_>>>()?;
        let types: Vec<u64> = match key("token_type").and_then(GgufValue::as_array) {
            Some(items) => items.iter().map(|v| v.as_u64().unwrap_or(0)).collect(),
            None => Vec::new(),
        };
        let id_of = |k: &str| -> Result<Option<u32>> {
            key(k)
                .map(|v| {
                    v.as_u64()
                        .and_then(|id| u32::try_from(id).ok())
                        .ok_or_else(|| Error::tokenizer(format!("tokenizer.ggml.{k} is not an id")))
                })
                .transpose()
        };
        let (bos, eos) = (id_of("bos_token_id")?, id_of("eos_token_id")?);
        let is_special = |id: usize| {
            matches!(types.get(id), Some(&CONTROL | &USER_DEFINED)) || [bos, eos].contains(&Some(id as u32))
        };
        let mut tokens = Vec::with_capacity(texts.len());
        let mut specials = Vec::new();
        for (id, &text) in texts.iter().enumerate() {
            if is_special(id) {
                specials.push(SpecialToken { content: text.to_string(), id: id as u32 });
            } else {
                tokens.push((text, id as u32));
            }
        }
        TextVocab { tokens, merges, specials }.build(pretokenizer, false, eos)
    }
}
