//! OpenAI's original GPT-2 files: `encoder.json` (token text → id) and
//! `vocab.bpe` (a `#version` line, then one merge "A B" per line, in rank
//! order).

use std::collections::BTreeMap;
use std::path::Path;

use super::{split_merge, PreTokenizer, SpecialToken, TextVocab, Tokenizer, ENDOFTEXT};
use crate::error::{Error, Result};

impl Tokenizer {
    /// Loads GPT-2's `encoder.json` and `vocab.bpe`.
    pub fn load_gpt2(encoder_json: impl AsRef<Path>, vocab_bpe: impl AsRef<Path>) -> Result<Tokenizer> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
        let (ej, vb) = (encoder_json.as_ref(), vocab_bpe.as_ref());
        let encoder: BTreeMap<String, u32> = serde_json::from_str(&read(ej)?).map_err(|e| Error::json(ej, e))?;
        let merges_text = read(vb)?;
        Tokenizer::from_gpt2_parts(&encoder, &merges_text).map_err(|e| match e {
            Error::Tokenizer(m) => Error::tokenizer(format!("{} + {}: {m}", ej.display(), vb.display())),
            other => other,
        })
    }

    /// Builds the tokenizer from the parsed encoder and the merges text.
    pub fn from_gpt2_parts(encoder: &BTreeMap<String, u32>, vocab_bpe: &str) -> Result<Tokenizer> {
        let merges = vocab_bpe
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .map(split_merge)
            .collect::<Result<Vec<_>>>()?;
        let specials: Vec<SpecialToken> =
            encoder.get(ENDOFTEXT).map(|&id| SpecialToken { content: ENDOFTEXT.into(), id }).into_iter().collect();
        let eos = specials.first().map(|s| s.id);
        let tokens = encoder.iter().map(|(t, &id)| (t.as_str(), id)).collect();
        TextVocab { tokens, merges, specials }.build(PreTokenizer::Gpt2, false, eos)
    }
}
