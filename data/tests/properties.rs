//! Property tests: round trips for arbitrary text, and readers that must
//! not panic on arbitrary or damaged bytes.

mod common;

use std::sync::OnceLock;

use common::{gguf_with_tokenizer, gpt2, small_tokenizer};
use data::gguf::GgufFile;
use data::shard::{Shard, ShardWriter};
use data::{PreTokenizer, Tokenizer};
use proptest::prelude::*;

fn small(p: PreTokenizer) -> &'static Tokenizer {
    static GPT2: OnceLock<Tokenizer> = OnceLock::new();
    static DIGITS: OnceLock<Tokenizer> = OnceLock::new();
    let cell = if p == PreTokenizer::Gpt2 { &GPT2 } else { &DIGITS };
    cell.get_or_init(|| small_tokenizer(p))
}

/// Text mixing arbitrary characters with the pieces that matter to BPE.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "([a-zA-Z]{1,8}|[0-9]{1,5}|'(s|ll|re)|\\s{1,4}|[.,;!?(){}]|\\PC){0,50}",]
}

/// A byte string and a list of (position, byte) overwrites and a cut.
fn damage(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (proptest::collection::vec((0..len, any::<u8>()), 0..4), 0..=len).prop_map(move |(edits, cut)| {
        let mut bytes = valid.clone();
        for (at, b) in edits {
            bytes[at] = b;
        }
        bytes.truncate(cut.max(len / 2));
        bytes
    })
}

fn valid_shard_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    let tok = small(PreTokenizer::Gpt2);
    let mut w = ShardWriter::create(&path, tok).unwrap();
    w.push_document(&tok.encode("a small document")).unwrap();
    w.finish().unwrap();
    std::fs::read(path).unwrap()
}

fn open_shard_bytes(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    std::fs::write(&path, bytes).unwrap();
    if let Ok(shard) = Shard::open(&path) {
        let mut out = Vec::new();
        shard.read_into(0, shard.len(), &mut out);
        assert_eq!(out.len(), shard.len());
        let _ = shard.verify_ids();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_inverts_encode(s in texty()) {
        for tok in [small(PreTokenizer::Gpt2), small(PreTokenizer::Gpt2SplitDigits), gpt2()] {
            prop_assert_eq!(&tok.decode(&tok.encode(&s)).unwrap(), &s);
            prop_assert_eq!(&tok.decode(&tok.encode_with_special(&s)).unwrap(), &s);
        }
    }

    #[test]
    fn pre_tokens_concatenate_to_the_text(s in texty()) {
        for p in [PreTokenizer::Gpt2, PreTokenizer::Gpt2SplitDigits] {
            let pieces: Vec<&str> = p.split(&s).collect();
            prop_assert!(pieces.iter().all(|x| !x.is_empty()));
            prop_assert_eq!(pieces.concat(), s.clone());
        }
    }

    #[test]
    fn shard_reader_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        open_shard_bytes(&bytes);
    }

    #[test]
    fn shard_reader_survives_damaged_shards(bytes in damage(valid_shard_bytes())) {
        open_shard_bytes(&bytes);
    }

    #[test]
    fn tokenizer_json_reader_survives_arbitrary_text(s in any::<String>()) {
        let _ = Tokenizer::from_hf_json(&s);
    }

    #[test]
    fn tokenizer_json_reader_survives_damaged_files(bytes in damage(small(PreTokenizer::Gpt2).to_hf_json().into_bytes())) {
        let _ = Tokenizer::from_hf_json(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn gguf_reader_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = GgufFile::parse(&bytes);
        let mut with_magic = b"GGUF\x03\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        if let Ok(file) = GgufFile::parse(&with_magic) {
            let _ = Tokenizer::from_gguf(&file);
        }
    }

    #[test]
    fn gguf_reader_survives_damaged_files(bytes in damage(gguf_with_tokenizer(small(PreTokenizer::Gpt2), "gpt2"))) {
        if let Ok(file) = GgufFile::parse(&bytes) {
            let _ = Tokenizer::from_gguf(&file);
        }
    }
}
