//! Token shards: round trips in both widths, and every kind of bad file.

mod common;

use std::path::{Path, PathBuf};

use data::readers::Document;
use data::shard::{Shard, ShardSetWriter, ShardWriter, HEADER_LEN};
use data::tokenizer::{PreTokenizer, SpecialToken};
use data::{Error, Tokenizer};

/// A tokenizer with `n` ids (bytes, filler tokens, end-of-text last).
fn tokenizer_of_size(n: usize) -> Tokenizer {
    let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    vocab.extend((256..n - 1).map(|i| format!("<filler {i}>").into_bytes()));
    vocab.push(b"<|endoftext|>".to_vec());
    let eos = (n - 1) as u32;
    let specials = vec![SpecialToken { content: "<|endoftext|>".into(), id: eos }];
    Tokenizer::from_parts(vocab, vec![], specials, PreTokenizer::Gpt2, false, Some(eos)).unwrap()
}

fn write(path: &Path, tok: &Tokenizer, docs: &[Vec<u32>]) {
    let mut w = ShardWriter::create(path, tok).unwrap();
    for d in docs {
        w.push_document(d).unwrap();
    }
    let header = w.finish().unwrap();
    assert_eq!(header.documents, docs.len() as u64);
}

fn read_all(shard: &Shard) -> Vec<u32> {
    let mut out = Vec::new();
    shard.read_into(0, shard.len(), &mut out);
    out
}

#[test]
fn round_trip_in_u16_and_u32() {
    let dir = tempfile::tempdir().unwrap();
    for (n, width) in [(300, 2), (65_536, 2), (70_000, 4)] {
        let tok = tokenizer_of_size(n);
        let eos = tok.eos_id().unwrap();
        let docs = vec![vec![1, 2, (n - 2) as u32], vec![], vec![255]];
        let path = dir.path().join(format!("{n}.bin"));
        write(&path, &tok, &docs);
        let shard = Shard::open_for(&path, &tok).unwrap();
        assert_eq!(shard.header().width, width);
        assert_eq!(read_all(&shard), vec![1, 2, (n - 2) as u32, eos, eos, 255, eos]);
        shard.verify_ids().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, HEADER_LEN as u64 + 7 * width as u64);
    }
}

fn shard_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.bin");
    std::fs::write(&path, bytes).unwrap();
    let err = Shard::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bad.bin"), "error names the file: {text}");
    text
}

#[test]
fn bad_shards_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer_of_size(300);
    let path = dir.path().join("good.bin");
    write(&path, &tok, &[vec![1, 2, 3]]);
    let good = std::fs::read(&path).unwrap();

    assert!(shard_error(&good[..10]).contains("shorter than the 64-byte header"));
    assert!(shard_error(&good[..good.len() - 1]).contains("truncated or corrupt"));
    assert!(shard_error(&[good.as_slice(), &[0, 0]].concat()).contains("truncated or corrupt"));
    assert!(shard_error(&[b"GGUF\x03\0\0\0".as_slice(), &good[8..]].concat()).contains("bad magic"));
    let mut version = good.clone();
    version[8] = 9;
    assert!(shard_error(&version).contains("version 9"));
    let mut dtype = good.clone();
    dtype[12] = 4;
    assert!(shard_error(&dtype).contains("token width 4"));
    let mut count = good.clone();
    count[24] = 200;
    assert!(shard_error(&count).contains("header says 200 tokens"));
    assert!(shard_error(b"").contains("0 bytes"));
}

#[test]
fn tokenizer_mismatch_and_out_of_range_ids_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    write(&path, &tokenizer_of_size(300), &[vec![7]]);
    let other = tokenizer_of_size(301);
    assert!(matches!(Shard::open_for(&path, &other), Err(Error::TokenizerMismatch { .. })));

    // Lower the recorded vocabulary so that id 299 (the end-of-text) is out of range.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16..20].copy_from_slice(&200u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let err = Shard::open(&path).unwrap().verify_ids().unwrap_err().to_string();
    assert!(err.contains("token 299 at position 1"), "{err}");
}

#[test]
fn shard_sets_split_between_documents_and_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let tok = common::small_tokenizer(PreTokenizer::Gpt2);
    let docs: Vec<Document> =
        (0..50).map(|i| Document { id: i.to_string(), text: format!("document number {i} has some words") }).collect();
    let mut w = ShardSetWriter::new(&tok, dir.path(), "train", 40);
    for d in &docs {
        w.push(d.clone()).unwrap();
    }
    let paths: Vec<PathBuf> = w.finish().unwrap();
    assert!(paths.len() > 3, "{} shards", paths.len());
    let mut all = Vec::new();
    for p in &paths {
        let shard = Shard::open_for(p, &tok).unwrap();
        let ids = read_all(&shard);
        assert_eq!(ids.last(), tok.eos_id().as_ref(), "a shard ends at a document boundary");
        all.extend(ids);
    }
    let expected: Vec<u32> = docs.iter().flat_map(|d| tok.encode(&d.text).into_iter().chain(tok.eos_id())).collect();
    assert_eq!(all, expected);
}
