//! Shared fixtures for the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use data::gguf::{write_metadata_only, GgufValue};
use data::readers::Document;
use data::tokenizer::byte_map::bytes_to_text;
use data::tokenizer::{train, PreTokenizer, Tokenizer, TrainConfig};

/// Text that exercises every pre-tokenizer branch: scripts, emoji, combining
/// marks, unusual spaces, runs of whitespace, numbers, contractions, code.
pub const TRICKY: &str = "Hello world! I'm sure they'll say we've seen it, she'd agree; DON'T, O'Neil's 'quoted' ''.\n\
  Numbers: 0 7 42 3.14159 1,000,000 2024-06-01 ٣٤٥ Ⅻ ½ ²³ 10km 1e-9 0x1F.\n\
Émigré naïve café — Ünïcödé; e\u{301}\u{301} a\u{308}; 北京欢迎你。日本語のテキスト、한국어 텍스트.\n\
Emoji: 😀🙂👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✈︎ 🧑🏿‍💻!!\n\
Arabic: مرحبا بالعالم. Hindi: नमस्ते दुनिया। Greek: Καλημέρα κόσμε. Russian: Привет, мир!\n\
Spaces:   three,\t\ttabs,\u{a0}nbsp,\u{3000}ideographic,\u{2003}em\u{2028}line sep\r\nwindows\r\n\n\n\nblank lines    \n   \n\
def f(x):\n    return x**2 + 1  # comment\n\nfor i in range(10):\n\tprint(f\"{i:>3}\", end='')\n\
if (a && b || !c) { x += y[i] >> 2; } // C-like\n<html><body class=\"x\">&amp;</body></html>\n\
URL: https://example.com/path?q=1&r=two#frag   email@example.org\n\
trailing spaces   ";

/// The embedded corpus, read once per test binary.
pub fn corpus() -> &'static [Document] {
    static DOCS: OnceLock<Vec<Document>> = OnceLock::new();
    DOCS.get_or_init(|| data::corpus::documents().expect("embedded corpus").0)
}

/// Every `step`-th corpus document's text.
pub fn corpus_sample(step: usize) -> Vec<&'static str> {
    corpus().iter().step_by(step).map(|d| d.text.as_str()).collect()
}

/// A small tokenizer trained on part of the corpus.
pub fn small_tokenizer(pretokenizer: PreTokenizer) -> Tokenizer {
    let mut docs = corpus_sample(40);
    docs.push(TRICKY);
    train(&docs, &TrainConfig { vocab_size: 600, pretokenizer, ..TrainConfig::default() }).unwrap()
}

/// GPT-2's token bytes by id, as tiktoken-rs embeds them (r50k_base).
pub fn gpt2_token_bytes() -> Vec<Vec<u8>> {
    let bpe = tiktoken_rs::r50k_base().unwrap();
    (0..50257u32).map(|id| bpe.decode_bytes(&[id]).unwrap()).collect()
}

/// Writes GPT-2's `encoder.json` and `vocab.bpe` into `dir`, derived from
/// tiktoken's rank table: a token's merge is the split that rank-ordered
/// BPE, restricted to lower ranks, leaves of its bytes.
pub fn write_gpt2_files(dir: &Path) {
    let tokens = gpt2_token_bytes();
    let ranks: HashMap<&[u8], usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_slice(), i)).collect();
    let mut merges = String::from("#version: 0.2\n");
    for (rank, token) in tokens.iter().enumerate().take(50256).skip(256) {
        let mut parts: Vec<&[u8]> = token.chunks(1).collect();
        loop {
            let best = (0..parts.len() - 1)
                .filter_map(|i| {
                    let joined = &token[offset(&parts, i)..offset(&parts, i + 2)];
                    ranks.get(joined).filter(|&&r| r < rank).map(|&r| (r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let joined = &token[offset(&parts, i)..offset(&parts, i + 2)];
            parts.splice(i..i + 2, [joined]);
        }
        assert_eq!(parts.len(), 2, "token {rank} does not reduce to a pair");
        merges.push_str(&format!("{} {}\n", bytes_to_text(parts[0]), bytes_to_text(parts[1])));
    }
    let encoder: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (bytes_to_text(t), i.into())).collect();
    let mut encoder = encoder;
    encoder.insert("<|endoftext|>".into(), 50256.into());
    std::fs::write(dir.join("encoder.json"), serde_json::to_string(&encoder).unwrap()).unwrap();
    std::fs::write(dir.join("vocab.bpe"), merges).unwrap();
}

fn offset(parts: &[&[u8]], i: usize) -> usize {
    parts[..i].iter().map(|p| p.len()).sum()
}

/// GPT-2 loaded through our `encoder.json` + `vocab.bpe` loader, once.
pub fn gpt2() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write_gpt2_files(dir.path());
        Tokenizer::load_gpt2(dir.path().join("encoder.json"), dir.path().join("vocab.bpe")).unwrap()
    })
}

/// A GGUF v3 file whose metadata holds `tok` the way llama.cpp stores it.
pub fn gguf_with_tokenizer(tok: &Tokenizer, pre: &str) -> Vec<u8> {
    let special = |id: u32| tok.special_tokens().iter().find(|s| s.id == id);
    let texts = (0..tok.vocab_size() as u32)
        .map(|id| match special(id) {
            Some(s) => GgufValue::String(s.content.clone()),
            None => GgufValue::String(bytes_to_text(tok.token_bytes(id).unwrap())),
        })
        .collect();
    let types =
        (0..tok.vocab_size() as u32).map(|id| GgufValue::I32(if special(id).is_some() { 3 } else { 1 })).collect();
    let merges = tok
        .merges()
        .iter()
        .map(|&(a, b)| {
            let t = |id| bytes_to_text(tok.token_bytes(id).unwrap());
            GgufValue::String(format!("{} {}", t(a), t(b)))
        })
        .collect();
    let eos = tok.eos_id().unwrap();
    write_metadata_only(&[
        ("general.architecture".into(), GgufValue::String("llama".into())),
        ("tokenizer.ggml.model".into(), GgufValue::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), GgufValue::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), GgufValue::Array(8, texts)),
        ("tokenizer.ggml.token_type".into(), GgufValue::Array(5, types)),
        ("tokenizer.ggml.merges".into(), GgufValue::Array(8, merges)),
        ("tokenizer.ggml.bos_token_id".into(), GgufValue::U32(eos)),
        ("tokenizer.ggml.eos_token_id".into(), GgufValue::U32(eos)),
    ])
}
