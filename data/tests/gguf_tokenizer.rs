//! Tokenizers embedded in GGUF metadata, as llama.cpp writes them.

mod common;

use common::{gguf_with_tokenizer, small_tokenizer, TRICKY};
use data::gguf::{GgufFile, GgufValue};
use data::{PreTokenizer, Tokenizer};

#[test]
fn gguf_tokenizer_matches_its_source() {
    let dir = tempfile::tempdir().unwrap();
    for (pretokenizer, pre) in [(PreTokenizer::Gpt2, "gpt2"), (PreTokenizer::Gpt2SplitDigits, "smollm")] {
        let tok = small_tokenizer(pretokenizer);
        let path = dir.path().join(format!("{pre}.gguf"));
        std::fs::write(&path, gguf_with_tokenizer(&tok, pre)).unwrap();
        let loaded = Tokenizer::load_gguf(&path).unwrap();
        assert_eq!(loaded.pretokenizer(), pretokenizer);
        assert_eq!(loaded.eos_id(), tok.eos_id());
        assert_eq!(loaded.special_tokens(), tok.special_tokens());
        assert_eq!(loaded.fingerprint(), tok.fingerprint());
        assert_eq!(loaded.encode_with_special(TRICKY), tok.encode_with_special(TRICKY));
    }
}

#[test]
fn unsupported_or_missing_tokenizers_are_refused() {
    let tok = small_tokenizer(PreTokenizer::Gpt2);
    let file = GgufFile::parse(&gguf_with_tokenizer(&tok, "gpt2")).unwrap();
    let with = |key: &str, value: Option<GgufValue>| {
        let mut f = file.clone();
        f.metadata.retain(|(k, _)| k != key);
        if let Some(v) = value {
            f.metadata.push((key.into(), v));
        }
        Tokenizer::from_gguf(&f).unwrap_err().to_string()
    };
    assert!(with("tokenizer.ggml.model", Some(GgufValue::String("llama".into()))).contains("only \"gpt2\""));
    assert!(
        with("tokenizer.ggml.pre", Some(GgufValue::String("qwen2".into()))).contains("unsupported tokenizer.ggml.pre")
    );
    assert!(with("tokenizer.ggml.merges", None).contains("tokenizer.ggml.merges is missing"));
    assert!(with("tokenizer.ggml.tokens", Some(GgufValue::Array(4, vec![GgufValue::U32(1)]))).contains("non-string"));
}
