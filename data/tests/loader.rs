//! The batch loader: window contents, epochs, mixing, exact resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use data::loader::{Batch, Loader, LoaderConfig, LoaderState, Order, SourceSpec, Weight};
use data::shard::ShardWriter;
use data::tokenizer::{PreTokenizer, SpecialToken};
use data::Tokenizer;

const VOCAB: usize = 5000;

fn tokenizer() -> Tokenizer {
    let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    vocab.extend((256..VOCAB - 1).map(|i| format!("<t{i}>").into_bytes()));
    vocab.push(b"<|endoftext|>".to_vec());
    let eos = (VOCAB - 1) as u32;
    Tokenizer::from_parts(
        vocab,
        vec![],
        vec![SpecialToken { content: "<|endoftext|>".into(), id: eos }],
        PreTokenizer::Gpt2,
        false,
        Some(eos),
    )
    .unwrap()
}

/// A shard holding one document of consecutive ids from `first` (so every
/// window is recognisable), `len` tokens including the end-of-text.
fn shard(dir: &Path, name: &str, first: u32, len: usize) -> PathBuf {
    let path = dir.join(name);
    let mut w = ShardWriter::create(&path, &tokenizer()).unwrap();
    w.push_document(&(first..first + len as u32 - 1).collect::<Vec<_>>()).unwrap();
    w.finish().unwrap();
    path
}

fn cfg(seq_len: usize, batch_size: usize, order: Order) -> LoaderConfig {
    LoaderConfig {
        seq_len,
        batch_size,
        seed: 1234,
        order,
        budget_windows: None,
        tokenizer_hash: Some(tokenizer().fingerprint()),
    }
}

fn drain(loader: &mut Loader) -> Vec<Batch> {
    std::iter::from_fn(|| loader.next_batch()).collect()
}

#[test]
fn windows_overlap_by_one_and_cover_each_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    // 101 tokens, seq_len 10: windows start at 0, 10, ..., 90 (10 windows).
    let a = shard(dir.path(), "a.bin", 0, 101);
    let b = shard(dir.path(), "b.bin", 1000, 35); // 3 windows, 4 tokens unused
    let spec = SourceSpec { name: "ab".into(), shards: vec![a, b], weight: Weight::Epochs(2.0) };
    let mut loader = Loader::new(std::slice::from_ref(&spec), cfg(10, 4, Order::Shuffled)).unwrap();
    assert_eq!(loader.total_windows(), Some(26));
    let batches = drain(&mut loader);
    assert_eq!(batches.iter().map(|b| b.rows).collect::<Vec<_>>(), vec![4, 4, 4, 4, 4, 4, 2]);
    let mut starts: Vec<u32> = Vec::new();
    for b in &batches {
        for r in 0..b.rows {
            let row = b.row(r);
            assert_eq!(row.len(), 11);
            assert!(row.windows(2).all(|p| p[1] == p[0] + 1 || p[1] as usize == VOCAB - 1), "{row:?}");
            assert_eq!(b.inputs(r)[1..], b.targets(r)[..9]);
            starts.push(row[0]);
        }
    }
    let (first, second) = starts.split_at(13);
    assert_ne!(first, second, "each epoch has its own permutation");
    let mut expected: Vec<u32> = (0..10).map(|k| k * 10).chain((0..3).map(|k| 1000 + k * 10)).collect();
    expected.sort();
    for epoch in [first, second] {
        let mut e = epoch.to_vec();
        e.sort();
        assert_eq!(e, expected);
    }
    let stats = &loader.stats()[0];
    assert_eq!((stats.windows_per_epoch, stats.windows_drawn, stats.epochs, stats.unused_tokens), (13, 26, 2.0, 4));
}

#[test]
fn sequential_order_is_front_to_back() {
    let dir = tempfile::tempdir().unwrap();
    let a = shard(dir.path(), "a.bin", 0, 41);
    let spec = SourceSpec { name: "val".into(), shards: vec![a], weight: Weight::Epochs(1.0) };
    let mut loader = Loader::new(&[spec], cfg(8, 3, Order::Sequential)).unwrap();
    let starts: Vec<u32> = drain(&mut loader).iter().flat_map(|b| (0..b.rows).map(move |r| b.row(r)[0])).collect();
    assert_eq!(starts, vec![0, 8, 16, 24, 32]);
}

#[test]
fn resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        SourceSpec {
            name: "src".into(),
            shards: vec![shard(dir.path(), "s.bin", 0, 500)],
            weight: Weight::Proportion(3.0),
        },
        SourceSpec {
            name: "ref".into(),
            shards: vec![shard(dir.path(), "r.bin", 2000, 300), shard(dir.path(), "r2.bin", 3000, 77)],
            weight: Weight::Proportion(1.0),
        },
    ];
    let config = LoaderConfig { budget_windows: Some(300), ..cfg(16, 5, Order::Shuffled) };
    let mut uninterrupted = Loader::new(&specs, config.clone()).unwrap();
    let all = drain(&mut uninterrupted);
    assert_eq!(all.iter().map(|b| b.rows).sum::<usize>(), 300);

    for stop in [0, 1, 7, 33, 59] {
        let mut first = Loader::new(&specs, config.clone()).unwrap();
        for _ in 0..stop {
            first.next_batch().unwrap();
        }
        let saved = serde_json::to_string(&first.state()).unwrap();
        let state: LoaderState = serde_json::from_str(&saved).unwrap();
        let mut resumed = Loader::new(&specs, config.clone()).unwrap();
        resumed.restore(&state).unwrap();
        assert_eq!(drain(&mut resumed), all[stop..], "resume after {stop} batches");
    }

    // A state from another configuration is refused.
    let other = Loader::new(&specs, LoaderConfig { seed: 1, ..config.clone() }).unwrap().state();
    assert!(uninterrupted.restore(&other).unwrap_err().to_string().contains("resume state"));
}

fn source_counts(batches: &[Batch], names: &[&str]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for b in batches {
        for &s in &b.sources {
            *counts.entry(names[s].to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn maga_style_budgets_match_and_mix_evenly() {
    let dir = tempfile::tempdir().unwrap();
    let src = shard(dir.path(), "src.bin", 0, 401); // 50 windows of 8
    let refs = shard(dir.path(), "ref.bin", 1000, 801); // 100 windows
    let c = cfg(8, 7, Order::Shuffled);

    // "source × 10 epochs" against "source × 2 + reformulations × ..." at an equal budget.
    let repeat = [SourceSpec { name: "src".into(), shards: vec![src.clone()], weight: Weight::Epochs(10.0) }];
    let mut a = Loader::new(&repeat, c.clone()).unwrap();
    assert_eq!(a.total_windows(), Some(500));
    drain(&mut a);
    assert_eq!(a.stats()[0].epochs, 10.0);

    let mixed = [
        SourceSpec { name: "src".into(), shards: vec![src], weight: Weight::Epochs(2.0) },
        SourceSpec { name: "ref".into(), shards: vec![refs], weight: Weight::Proportion(1.0) },
    ];
    let mut b = Loader::new(&mixed, LoaderConfig { budget_windows: Some(500), ..c.clone() }).unwrap();
    let batches = drain(&mut b);
    let stats = b.stats();
    assert_eq!((stats[0].windows_drawn, stats[0].epochs), (100, 2.0));
    assert_eq!((stats[1].windows_drawn, stats[1].epochs), (400, 4.0));
    // Interleaved, not one after the other: every batch-sized prefix holds
    // the 1:4 proportion to within one window.
    let rows: Vec<usize> = batches.iter().flat_map(|b| b.sources.clone()).collect();
    for n in (5..=500).step_by(5) {
        let src_rows = rows[..n].iter().filter(|&&s| s == 0).count() as f64;
        assert!((src_rows - n as f64 / 5.0).abs() <= 1.0, "prefix {n}: {src_rows}");
    }
    assert_eq!(source_counts(&batches, &["src", "ref"])["ref"], 400);

    // Inconsistent budgets are refused.
    assert!(Loader::new(&mixed, c.clone()).unwrap_err().to_string().contains("budget_windows"));
    assert!(Loader::new(&repeat, LoaderConfig { budget_windows: Some(10), ..c }).is_err());
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = shard(dir.path(), "tiny.bin", 0, 5);
    let spec = SourceSpec { name: "tiny".into(), shards: vec![tiny.clone()], weight: Weight::Proportion(1.0) };
    let err = Loader::new(std::slice::from_ref(&spec), cfg(8, 2, Order::Shuffled)).unwrap_err().to_string();
    assert!(err.contains("no window of 9 tokens"), "{err}");
    let wrong = LoaderConfig { tokenizer_hash: Some(1), ..cfg(2, 2, Order::Shuffled) };
    assert!(matches!(Loader::new(std::slice::from_ref(&spec), wrong), Err(data::Error::TokenizerMismatch { .. })));
    let negative = SourceSpec { weight: Weight::Proportion(-1.0), ..spec };
    assert!(Loader::new(&[negative], cfg(2, 2, Order::Shuffled)).is_err());
}
