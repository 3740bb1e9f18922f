//! Training a byte-level BPE vocabulary.
//!
//! The standard efficient trainer: pre-tokenize and count distinct words in
//! parallel, count adjacent pairs once, then repeatedly take the most
//! frequent pair from a max-heap and rewrite only the words that contain
//! it, updating pair counts incrementally. Heap entries are validated
//! lazily: an entry whose count has since dropped is pushed back with the
//! current count. Ties go to the smallest pair of ids, so the result does
//! not depend on thread count or hash order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::byte_map::byte_order;
use super::{PreTokenizer, SpecialToken, Tokenizer, ENDOFTEXT};
use crate::error::{Error, Result};

/// How to train.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainConfig {
    /// Final vocabulary size: 256 bytes + merges + special tokens.
    pub vocab_size: usize,
    pub pretokenizer: PreTokenizer,
    /// Appended after the merged tokens; the first is the end-of-text.
    pub special_tokens: Vec<String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { vocab_size: 8192, pretokenizer: PreTokenizer::Gpt2, special_tokens: vec![ENDOFTEXT.to_string()] }
    }
}

type Pair = (u32, u32);

/// Trains a tokenizer on `docs` using the current rayon pool.
///
/// Byte tokens take ids 0..256 in GPT-2's order, merged tokens follow in
/// merge order, special tokens come last. Stops early (with a smaller
/// vocabulary) if the corpus runs out of pairs.
pub fn train<S: AsRef<str> + Sync>(docs: &[S], cfg: &TrainConfig) -> Result<Tokenizer> {
    let base = 256 + cfg.special_tokens.len();
    if cfg.vocab_size < base {
        return Err(Error::tokenizer(format!(
            "vocabulary size {} is below the {base} byte and special tokens",
            cfg.vocab_size
        )));
    }
    let word_counts = count_words(docs, cfg.pretokenizer);

    let mut vocab: Vec<Vec<u8>> = byte_order().iter().map(|&b| vec![b]).collect();
    let mut byte_id = [0u32; 256];
    for (id, &b) in byte_order().iter().enumerate() {
        byte_id[b as usize] = id as u32;
    }
    let mut token_ids: FxHashMap<Vec<u8>, u32> = vocab.iter().cloned().zip(0..).collect();
    let (mut words, freqs): (Vec<Vec<u32>>, Vec<i64>) =
        word_counts.into_iter().map(|(w, c)| (w.bytes().map(|b| byte_id[b as usize]).collect(), c as i64)).unzip();

    let mut pair_counts: FxHashMap<Pair, i64> = FxHashMap::default();
    // Words that contained a pair at some point; may hold stale entries,
    // which a merge then finds nothing to do in.
    let mut where_seen: FxHashMap<Pair, Vec<u32>> = FxHashMap::default();
    for (i, w) in words.iter().enumerate() {
        for p in w.windows(2) {
            let pair = (p[0], p[1]);
            *pair_counts.entry(pair).or_insert(0) += freqs[i];
            where_seen.entry(pair).or_default().push(i as u32);
        }
    }
    let mut heap: BinaryHeap<(i64, Reverse<Pair>)> = pair_counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

    let mut merges = Vec::new();
    let mut changes = Vec::new();
    let target = cfg.vocab_size - cfg.special_tokens.len();
    while vocab.len() < target {
        let Some((count, Reverse(pair))) = heap.pop() else {
            break;
        };
        let current = pair_counts.get(&pair).copied().unwrap_or(0);
        if current != count {
            if current > 0 {
                heap.push((current, Reverse(pair)));
            }
            continue;
        }
        let joined = [vocab[pair.0 as usize].as_slice(), vocab[pair.1 as usize].as_slice()].concat();
        // Two different pairs can spell the same bytes; they share one id.
        let new_id = *token_ids.entry(joined.clone()).or_insert_with(|| {
            vocab.push(joined);
            vocab.len() as u32 - 1
        });
        merges.push(pair);

        let mut idx = where_seen.remove(&pair).unwrap_or_default();
        idx.sort_unstable();
        idx.dedup();
        changes.clear();
        for &i in &idx {
            merge_word(&mut words[i as usize], pair, new_id, freqs[i as usize], i, &mut changes);
        }
        pair_counts.remove(&pair);
        let mut grown = Vec::new();
        for &(p, delta, word) in &changes {
            *pair_counts.entry(p).or_insert(0) += delta;
            if delta > 0 {
                where_seen.entry(p).or_default().push(word);
                grown.push(p);
            }
        }
        grown.sort_unstable();
        grown.dedup();
        for p in grown {
            heap.push((pair_counts[&p], Reverse(p)));
        }
    }

    let specials: Vec<SpecialToken> = cfg
        .special_tokens
        .iter()
        .map(|s| {
            vocab.push(s.as_bytes().to_vec());
            SpecialToken { content: s.clone(), id: vocab.len() as u32 - 1 }
        })
        .collect();
    let eos = specials.first().map(|s| s.id);
    Tokenizer::from_parts(vocab, merges, specials, cfg.pretokenizer, false, eos)
}

/// Distinct pre-tokens and their counts, counted in parallel per document.
fn count_words<S: AsRef<str> + Sync>(docs: &[S], pretokenizer: PreTokenizer) -> FxHashMap<&str, u64> {
    docs.par_iter()
        .fold(FxHashMap::default, |mut counts, doc| {
            for piece in pretokenizer.split(doc.as_ref()) {
                *counts.entry(piece).or_insert(0) += 1;
            }
            counts
        })
        .reduce(FxHashMap::default, |a, b| {
            let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
            for (w, c) in small {
                *big.entry(w).or_insert(0) += c;
            }
            big
        })
}

/// Replaces every non-overlapping occurrence of `pair` in `word`, left to
/// right, recording how the neighbouring pair counts change.
fn merge_word(
    word: &mut Vec<u32>,
    pair: Pair,
    new_id: u32,
    freq: i64,
    index: u32,
    changes: &mut Vec<(Pair, i64, u32)>,
) {
    let (a, b) = pair;
    let mut change = |p: Pair, delta: i64| {
        // The merged pair's own count is dropped wholesale afterwards.
        if p != pair {
            changes.push((p, delta, index));
        }
    };
    let mut i = 0;
    while i + 1 < word.len() {
        if word[i] == a && word[i + 1] == b {
            if i > 0 {
                change((word[i - 1], a), -freq);
                change((word[i - 1], new_id), freq);
            }
            if i + 2 < word.len() {
                change((b, word[i + 2]), -freq);
                change((new_id, word[i + 2]), freq);
            }
            word[i] = new_id;
            word.remove(i + 1);
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_most_frequent_pairs_first() {
        let docs = ["aaa aaa aaa abab", "aaa"];
        let cfg = TrainConfig { vocab_size: 256 + 3, ..TrainConfig::default() };
        let tok = train(&docs, &cfg).unwrap();
        assert_eq!(tok.vocab_size(), 259);
        // "aa" (count 8 over "aaa" words) is learned first, then "aaa".
        let first = tok.merges()[0];
        assert_eq!(tok.token_bytes(first.0).unwrap(), b"a");
        assert_eq!(tok.token_bytes(tok.token_id(b"aa").unwrap()), Some(&b"aa"[..]));
        assert!(tok.token_id(b"aaa").is_some());
        assert_eq!(tok.eos_id(), Some(258));
        assert_eq!(tok.decode(&tok.encode("aaa abab")).unwrap(), "aaa abab");
    }

    #[test]
    fn merge_word_accounts_neighbours() {
        let mut changes = Vec::new();
        let mut w = vec![1, 1, 1, 1];
        merge_word(&mut w, (1, 1), 9, 2, 0, &mut changes);
        assert_eq!(w, vec![9, 9]);
        let mut net: FxHashMap<Pair, i64> = FxHashMap::default();
        for (p, d, _) in changes {
            *net.entry(p).or_insert(0) += d;
        }
        net.retain(|_, d| *d != 0);
        assert_eq!(net, [((9, 9), 2)].into_iter().collect());
    }

    #[test]
    fn result_is_independent_of_thread_count() {
        let docs: Vec<String> = (0..200).map(|i| format!("doc {i} the quick brown fox {} jumps", i * 7)).collect();
        let cfg = TrainConfig { vocab_size: 300, ..TrainConfig::default() };
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| train(&docs, &cfg));
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| train(&docs, &cfg));
        assert_eq!(one.unwrap().fingerprint(), two.unwrap().fingerprint());
    }
}
