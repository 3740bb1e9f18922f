//! GPT-2 through our loaders and encoder against tiktoken's r50k_base.

mod common;

use common::{corpus, gpt2, TRICKY};
use data::Tokenizer;
use proptest::prelude::*;
use std::sync::OnceLock;

fn tiktoken() -> &'static tiktoken_rs::CoreBPE {
    static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::r50k_base().unwrap())
}

fn first_difference(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()))
}

fn assert_same(ours: &[u32], reference: &[u32], text: &str, what: &str) {
    if ours != reference {
        let at = first_difference(ours, reference);
        let near = |ids: &[u32]| gpt2().decode(&ids[at.saturating_sub(3)..(at + 3).min(ids.len())]).unwrap();
        panic!(
            "{what}: first difference at token {at}: ours {:?} vs tiktoken {:?} (text has {} bytes)",
            near(ours),
            near(reference),
            text.len()
        );
    }
}

#[test]
fn gpt2_matches_tiktoken_on_corpus_and_tricky_text() {
    let bpe = tiktoken();
    let ours = gpt2();
    assert_eq!(ours.vocab_size(), 50257);
    assert_eq!(ours.encode("Hello world"), vec![15496, 995]);

    let tricky = TRICKY.repeat(3);
    assert_same(&ours.encode(&tricky), &bpe.encode_ordinary(&tricky), &tricky, "tricky text");
    let with_special = format!("{TRICKY}<|endoftext|>second document<|endoftext|>");
    assert_same(
        &ours.encode_with_special(&with_special),
        &bpe.encode_with_special_tokens(&with_special),
        &with_special,
        "special tokens",
    );

    // Every document of the embedded corpus (about 10 MB), in parallel.
    let docs: Vec<&str> = corpus().iter().map(|d| d.text.as_str()).collect();
    let encoded = ours.encode_batch(&docs);
    let mut total = 0;
    for (i, (doc, ids)) in docs.iter().zip(&encoded).enumerate() {
        assert_same(ids, &bpe.encode_ordinary(doc), doc, &format!("corpus document {i} ({})", corpus()[i].id));
        total += ids.len();
    }
    assert!(total > 2_000_000, "{total} tokens");
}

#[test]
fn gpt2_survives_hf_json_round_trip() {
    let json = gpt2().to_hf_json();
    let back = Tokenizer::from_hf_json(&json).unwrap();
    assert_eq!(back.fingerprint(), gpt2().fingerprint());
    assert_eq!(back.encode(TRICKY), gpt2().encode(TRICKY));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gpt2_matches_tiktoken_on_arbitrary_text(s in "(\\PC|\\s| |'[a-z]{0,3}|[0-9]{1,4}){0,60}") {
        prop_assert_eq!(gpt2().encode(&s), tiktoken().encode_ordinary(&s));
    }
}
