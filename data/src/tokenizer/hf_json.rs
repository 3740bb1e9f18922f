//! Hugging Face `tokenizer.json`, for byte-level BPE models.
//!
//! Reads the pieces that determine ids: `model` (BPE vocab and merges, in
//! either the "A B" or the ["A", "B"] merge format), `added_tokens` and the
//! pre-tokenizer (`ByteLevel` with its regex, optionally preceded by
//! `Digits(individual_digits)`). Anything that would change ids and that we
//! do not implement (a normalizer, byte fallback, subword prefixes, another
//! regex) is refused with a message rather than silently ignored.
//! Post-processors and decoders do not change `encode` ids and are not read.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{split_merge, PreTokenizer, SpecialToken, TextVocab, Tokenizer, ENDOFTEXT};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

impl Tokenizer {
    /// Loads a `tokenizer.json` file.
    pub fn load_hf(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Tokenizer::from_hf_json(&text).map_err(|e| match e {
            Error::Tokenizer(m) => Error::json(path, m),
            other => other,
        })
    }

    /// Parses the text of a `tokenizer.json`.
    pub fn from_hf_json(text: &str) -> Result<Tokenizer> {
        let root: Value = serde_json::from_str(text).map_err(|e| Error::tokenizer(format!("not JSON: {e}")))?;
        if !matches!(root.get("normalizer"), None | Some(Value::Null)) {
            return Err(Error::tokenizer("normalizers are not supported"));
        }
        let pretokenizer = parse_pretokenizer(root.get("pre_tokenizer").unwrap_or(&Value::Null))?;
        let model =
            root.get("model").and_then(Value::as_object).ok_or_else(|| Error::tokenizer("no \"model\" object"))?;
        if let Some(kind) = model.get("type").and_then(Value::as_str).filter(|&t| t != "BPE") {
            return Err(Error::tokenizer(format!("model type {kind:?} is not BPE")));
        }
        if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
            return Err(Error::tokenizer("byte_fallback BPE is not byte-level BPE"));
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if model.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
                return Err(Error::tokenizer(format!("{key} is not supported")));
            }
        }
        let ignore_merges = model.get("ignore_merges").and_then(Value::as_bool).unwrap_or(false);
        let vocab = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::tokenizer("model has no vocab object"))?;
        let tokens =
            vocab.iter().map(|(text, id)| Ok((text.as_str(), as_id(id, "vocab")?))).collect::<Result<Vec<_>>>()?;
        let merges = match model.get("merges") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(parse_merge).collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(Error::tokenizer("merges is not an array")),
        };
        let specials = match root.get("added_tokens") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(parse_added).collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(Error::tokenizer("added_tokens is not an array")),
        };
        let eos = specials.iter().find(|s| s.content == ENDOFTEXT).map(|s| s.id);
        TextVocab { tokens, merges, specials }.build(pretokenizer, ignore_merges, eos)
    }

    /// This tokenizer as `tokenizer.json` text.
    pub fn to_hf_json(&self) -> String {
        let specials = self.special_tokens();
        let vocab: Map<String, Value> =
            (0..self.vocab_size() as u32).map(|id| (self.token_text(id), json!(id))).collect();
        let added: Vec<Value> = specials
            .iter()
            .map(|s| {
                json!({"id": s.id, "content": s.content, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let byte_level =
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let pre_tokenizer = match self.pretokenizer() {
            PreTokenizer::Gpt2 => byte_level.clone(),
            PreTokenizer::Gpt2SplitDigits => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level.clone()]}),
        };
        let root = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": self.ignore_merges(),
                "vocab": vocab,
                "merges": self.merge_lines().collect::<Vec<_>>(),
            }
        });
        serde_json::to_string_pretty(&root).expect("JSON values always serialise")
    }

    /// Writes `tokenizer.json` atomically.
    pub fn save_hf(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), self.to_hf_json().as_bytes())
    }
}

fn as_id(v: &Value, what: &str) -> Result<u32> {
    v.as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| Error::tokenizer(format!("{what}: {v} is not a token id")))
}

fn parse_merge(v: &Value) -> Result<(&str, &str)> {
    match v {
        Value::String(line) => split_merge(line),
        Value::Array(pair) => match pair.as_slice() {
            [Value::String(a), Value::String(b)] => Ok((a.as_str(), b.as_str())),
            _ => Err(Error::tokenizer(format!("merge {v} is not a pair of strings"))),
        },
        _ => Err(Error::tokenizer(format!("merge {v} is neither \"A B\" nor [\"A\", \"B\"]"))),
    }
}

fn parse_added(v: &Value) -> Result<SpecialToken> {
    let content = v
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::tokenizer(format!("added token {v} has no content")))?;
    Ok(SpecialToken { content: content.to_string(), id: as_id(v.get("id").unwrap_or(&Value::Null), "added token id")? })
}

fn parse_pretokenizer(v: &Value) -> Result<PreTokenizer> {
    let kind = v.get("type").and_then(Value::as_str);
    let unsupported = || Error::tokenizer(format!("unsupported pre_tokenizer {v}"));
    match kind {
        Some("ByteLevel") => check_byte_level(v).map(|()| PreTokenizer::Gpt2),
        Some("Sequence") => match v.get("pretokenizers").and_then(Value::as_array).map(Vec::as_slice) {
            Some([digits, byte_level])
                if digits.get("type").and_then(Value::as_str) == Some("Digits")
                    && digits.get("individual_digits").and_then(Value::as_bool) == Some(true) =>
            {
                check_byte_level(byte_level).map(|()| PreTokenizer::Gpt2SplitDigits)
            }
            Some([byte_level]) => check_byte_level(byte_level).map(|()| PreTokenizer::Gpt2),
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}

/// Accepts `ByteLevel` with GPT-2's regex and no added prefix space.
fn check_byte_level(v: &Value) -> Result<()> {
    let flag = |key: &str, default: bool| v.get(key).and_then(Value::as_bool).unwrap_or(default);
    if v.get("type").and_then(Value::as_str) != Some("ByteLevel")
        || !flag("use_regex", true)
        || flag("add_prefix_space", false)
    {
        return Err(Error::tokenizer(format!(
            "unsupported pre_tokenizer {v} (need ByteLevel, use_regex, no prefix space)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::train::{train, TrainConfig};

    fn trained(pretokenizer: PreTokenizer) -> Tokenizer {
        let docs = ["Hello world, hello 2024 worlds!\n\n  It's  code: x = 42", "naïve café 北京 🙂 they'll"];
        train(&docs, &TrainConfig { vocab_size: 300, pretokenizer, ..TrainConfig::default() }).unwrap()
    }

    #[test]
    fn save_and_load_round_trip() {
        for p in [PreTokenizer::Gpt2, PreTokenizer::Gpt2SplitDigits] {
            let tok = trained(p);
            let back = Tokenizer::from_hf_json(&tok.to_hf_json()).unwrap();
            assert_eq!(back.fingerprint(), tok.fingerprint());
            assert_eq!(back.eos_id(), tok.eos_id());
        }
    }

    #[test]
    fn reads_pair_merges_and_refuses_unsupported_options() {
        let tok = trained(PreTokenizer::Gpt2);
        let mut root: Value = serde_json::from_str(&tok.to_hf_json()).unwrap();
        let merges: Vec<Value> = tok
            .merge_lines()
            .map(|l| {
                let (a, b) = l.split_once(' ').unwrap();
                json!([a, b])
            })
            .collect();
        root["model"]["merges"] = json!(merges);
        let back = Tokenizer::from_hf_json(&root.to_string()).unwrap();
        assert_eq!(back.fingerprint(), tok.fingerprint());

        root["normalizer"] = json!({"type": "NFC"});
        assert!(Tokenizer::from_hf_json(&root.to_string()).unwrap_err().to_string().contains("normalizer"));
        root["normalizer"] = Value::Null;
        root["pre_tokenizer"]["add_prefix_space"] = json!(true);
        assert!(Tokenizer::from_hf_json(&root.to_string()).unwrap_err().to_string().contains("pre_tokenizer"));
        assert!(Tokenizer::from_hf_json("{").is_err());

        root["pre_tokenizer"]["add_prefix_space"] = json!(false);
        root["model"]["vocab"]["far"] = json!(4_000_000_000u32);
        let err = Tokenizer::from_hf_json(&root.to_string()).unwrap_err().to_string();
        assert!(err.contains("ids go up to 4000000000"), "{err}");
    }
}
