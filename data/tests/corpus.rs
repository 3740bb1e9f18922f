//! The embedded default corpus, its split, and the cached preparation that
//! `pretrain` calls.

mod common;

use std::collections::HashSet;

use data::corpus::{self, DEFAULT_VAL_FRACTION};
use data::default_corpus::{prepare_with, PrepareConfig};
use data::loader::{Loader, LoaderConfig, Order, SourceSpec, Weight};
use data::shard::Shard;

#[test]
fn embedded_corpus_is_complete_and_attributed() {
    let (docs, report) = corpus::documents().unwrap();
    // 1,103 of the 2,099 Wikipedia lines are redirect stubs with empty
    // text: they are counted as skipped, the rest all arrive.
    assert_eq!(docs.len(), 2099 + 407 - 1103);
    assert_eq!(report.skipped.iter().map(|(k, n)| (*k, *n)).collect::<Vec<_>>(), [("empty text", 1103)], "{report}");
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    assert!((10_000_000..11_000_000).contains(&bytes), "{bytes} bytes");
    let ids: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), docs.len(), "ids are unique");
    for line in ["CC BY-SA", "Wikipedia contributors", "PSF Documentation License"] {
        assert!(corpus::ATTRIBUTION.contains(line), "{line}");
    }
}

#[test]
fn split_is_deterministic_and_disjoint() {
    let docs = common::corpus().to_vec();
    let split = corpus::split(docs.clone(), DEFAULT_VAL_FRACTION);
    assert_eq!(split.train.len() + split.val.len(), docs.len());
    let fraction = split.val.len() as f64 / docs.len() as f64;
    assert!((0.01..0.03).contains(&fraction), "{fraction}");
    let val: HashSet<&str> = split.val.iter().map(|d| d.id.as_str()).collect();
    assert!(split.train.iter().all(|d| !val.contains(d.id.as_str())));
    // Pinned, so that a change to the hash or the rule cannot go unnoticed.
    let first: Vec<&str> = split.val.iter().take(3).map(|d| d.id.as_str()).collect();
    let again = corpus::split(docs.into_iter().rev().collect(), DEFAULT_VAL_FRACTION);
    assert_eq!(split.val.len(), again.val.len());
    assert_eq!(first, PINNED_FIRST_VAL_IDS, "validation ids changed");
}

const PINNED_FIRST_VAL_IDS: [&str; 3] = ["wiki-8721706", "wiki-8722696", "wiki-8723369"];

#[test]
fn prepare_builds_once_then_reuses_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = PrepareConfig { vocab_size: 1024, ..PrepareConfig::default() };
    let first = prepare_with(cache.path(), &cfg).unwrap();
    assert!(!first.reused);
    assert_eq!(first.tokenizer.vocab_size(), 1024);
    assert_eq!(first.read_report.as_ref().unwrap().documents, 1403);
    let train_tokens: usize = first.train_shards.iter().map(|p| Shard::open(p).unwrap().len()).sum();
    let val_tokens: usize = first.val_shards.iter().map(|p| Shard::open(p).unwrap().len()).sum();
    assert!(train_tokens > 2_000_000 && val_tokens > 20_000, "{train_tokens} / {val_tokens}");

    let second = prepare_with(cache.path(), &cfg).unwrap();
    assert!(second.reused && second.rebuilt_because.is_none());
    assert_eq!(second.tokenizer.fingerprint(), first.tokenizer.fingerprint());
    assert_eq!(second.train_shards, first.train_shards);

    // The shards feed the loader directly.
    let spec = SourceSpec { name: "val".into(), shards: second.val_shards.clone(), weight: Weight::Epochs(1.0) };
    let config = LoaderConfig {
        seq_len: 128,
        batch_size: 8,
        seed: 0,
        order: Order::Sequential,
        budget_windows: None,
        tokenizer_hash: Some(second.tokenizer.fingerprint()),
    };
    let batch = Loader::new(&[spec], config).unwrap().next_batch().unwrap();
    assert_eq!(batch.tokens.len(), 8 * 129);

    // A damaged cache entry is noticed, reported and rebuilt.
    let shard = &first.train_shards[0];
    let len = std::fs::metadata(shard).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(shard).unwrap().set_len(len - 2).unwrap();
    let third = prepare_with(cache.path(), &cfg).unwrap();
    assert!(!third.reused);
    assert!(third.rebuilt_because.unwrap().contains("truncated"));
    assert_eq!(third.tokenizer.fingerprint(), first.tokenizer.fingerprint(), "training is deterministic");
}
