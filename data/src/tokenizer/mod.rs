//! Byte-level BPE tokenizer (GPT-2 family).
//!
//! Tokens are byte strings. Encoding pre-tokenizes the text
//! ([`PreTokenizer`]), starts each piece as one symbol per byte and applies
//! merges lowest rank first. Files store tokens through GPT-2's
//! byte-to-unicode mapping ([`byte_map`]); that mapping never appears in
//! the hot path.

pub mod bpe;
pub mod byte_map;
pub mod gguf_meta;
pub mod gpt2_files;
pub mod hf_json;
pub mod pretokenize;
pub mod train;

use std::sync::Mutex;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::hash::StableHasher;
use bpe::{merge_symbols, Merge, MergeMap, Scratch, NONE};
pub use pretokenize::PreTokenizer;
pub use train::{train, TrainConfig};

/// GPT-2's end-of-text token, our document separator.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// A token matched literally in text (when asked to) and never merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialToken {
    pub content: String,
    pub id: u32,
}

/// A byte-level BPE tokenizer.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    vocab: Vec<Vec<u8>>,
    token_ids: FxHashMap<Vec<u8>, u32>,
    byte_ids: [u32; 256],
    merges: MergeMap,
    /// Merged pairs in rank order, as files list them.
    merge_list: Vec<(u32, u32)>,
    specials: Vec<SpecialToken>,
    pretokenizer: PreTokenizer,
    /// Llama-3 style: a piece that is already a token is not merged.
    ignore_merges: bool,
    eos: Option<u32>,
    fingerprint: u64,
}

/// Caches at most this many distinct pre-tokens per encoder; past it the
/// cache is cleared, which bounds memory on unbounded input.
const CACHE_LIMIT: usize = 1 << 20;

impl Tokenizer {
    /// Builds a tokenizer from token bytes by id, merges (as id pairs, in
    /// rank order) and special tokens. Checks that every byte has a token,
    /// that every merge is of existing tokens into an existing token, and
    /// that special ids are in range.
    pub fn from_parts(
        vocab: Vec<Vec<u8>>,
        merge_list: Vec<(u32, u32)>,
        specials: Vec<SpecialToken>,
        pretokenizer: PreTokenizer,
        ignore_merges: bool,
        eos: Option<u32>,
    ) -> Result<Self> {
        let n = vocab.len() as u32;
        for s in &specials {
            if s.id >= n {
                return Err(Error::tokenizer(format!(
                    "special token {:?} has id {} >= vocab size {n}",
                    s.content, s.id
                )));
            }
        }
        if let Some(id) = eos.filter(|&id| id >= n) {
            return Err(Error::tokenizer(format!("end-of-text id {id} >= vocab size {n}")));
        }
        let is_special = |id: u32| specials.iter().any(|s| s.id == id);
        let mut token_ids = FxHashMap::default();
        for (id, bytes) in vocab.iter().enumerate() {
            // Specials may spell an ordinary token; the ordinary one wins.
            if !is_special(id as u32) || !token_ids.contains_key(bytes) {
                token_ids.insert(bytes.clone(), id as u32);
            }
        }
        // Real vocabularies may lack some bytes (SmolLM2's has no token for 21 of them,
        // control characters and bytes UTF-8 never uses); llama.cpp and Hugging Face
        // drop such bytes. Here they become `NONE` symbols, which no merge joins and
        // which `merge_symbols` removes with the merged-away ones.
        let byte_ids: [u32; 256] = std::array::from_fn(|b| token_ids.get(&[b as u8][..]).copied().unwrap_or(NONE));
        let mut merges = MergeMap::default();
        for (rank, &(a, b)) in merge_list.iter().enumerate() {
            let (Some(left), Some(right)) = (vocab.get(a as usize), vocab.get(b as usize)) else {
                return Err(Error::tokenizer(format!("merge {rank} refers to an id outside the vocabulary")));
            };
            let joined = [left.as_slice(), right.as_slice()].concat();
            let id = *token_ids.get(&joined).ok_or_else(|| {
                Error::tokenizer(format!("merge {rank} ({a}, {b}) makes {joined:?}, which is not in the vocabulary"))
            })?;
            // A pair listed twice keeps its first (highest-priority) rank.
            merges.entry((a, b)).or_insert(Merge { rank: rank as u32, id });
        }
        let fingerprint = fingerprint(&vocab, &merge_list, &specials, pretokenizer, ignore_merges, eos);
        Ok(Tokenizer {
            vocab,
            token_ids,
            byte_ids,
            merges,
            merge_list,
            specials,
            pretokenizer,
            ignore_merges,
            eos,
            fingerprint,
        })
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The bytes of token `id`.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.vocab.get(id as usize).map(Vec::as_slice)
    }

    /// The id of the token spelled by `bytes`, if any.
    pub fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        self.token_ids.get(bytes).copied()
    }

    /// Merges as id pairs in rank order.
    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merge_list
    }

    pub fn special_tokens(&self) -> &[SpecialToken] {
        &self.specials
    }

    /// The id of the special token `content`.
    pub fn special_id(&self, content: &str) -> Option<u32> {
        self.specials.iter().find(|s| s.content == content).map(|s| s.id)
    }

    /// The end-of-text (document separator) id.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    pub fn pretokenizer(&self) -> PreTokenizer {
        self.pretokenizer
    }

    pub fn ignore_merges(&self) -> bool {
        self.ignore_merges
    }

    /// A stable hash of everything that determines the ids this tokenizer
    /// produces; shards record it so a mismatch is caught.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// An encoder with its own pre-token cache, for many calls on one thread.
    pub fn encoder(&self) -> Encoder<'_> {
        Encoder { tokenizer: self, cache: FxHashMap::default(), symbols: Vec::new(), scratch: Scratch::default() }
    }

    /// Encodes text as ordinary text: special-token spellings in it are
    /// tokenized like any other characters (safe for untrusted corpora).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encoder().encode_into(text, &mut out);
        out
    }

    /// Encodes text, turning special-token spellings into their ids.
    pub fn encode_with_special(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encoder().encode_with_special_into(text, &mut out);
        out
    }

    /// Encodes many texts in parallel on the current rayon pool. Each
    /// worker thread keeps one encoder (and so one warm cache) for the whole
    /// batch, however rayon splits the work.
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        let encoders: Vec<Mutex<Encoder>> =
            (0..rayon::current_num_threads()).map(|_| Mutex::new(self.encoder())).collect();
        texts
            .par_iter()
            .map(|text| {
                let worker = rayon::current_thread_index().unwrap_or(0) % encoders.len();
                // Only this worker ever takes this lock, so it never waits.
                let mut enc = encoders[worker].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut out = Vec::with_capacity(text.as_ref().len() / 3);
                enc.encode_into(text.as_ref(), &mut out);
                out
            })
            .collect()
    }

    /// The bytes that `ids` stand for.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let bytes = self.token_bytes(id).ok_or_else(|| {
                Error::tokenizer(format!("id {id} is outside the vocabulary of {}", self.vocab.len()))
            })?;
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Decodes `ids` to text. Ids from [`encode`](Self::encode) always give
    /// valid UTF-8; a sequence that cuts a character (as sampling can) gets
    /// U+FFFD in its place.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let bytes = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

/// A vocabulary as files store it: ordinary tokens as text through GPT-2's
/// byte map, special tokens verbatim, merges as pairs of token texts.
/// Shared by the `tokenizer.json`, GPT-2 and GGUF loaders.
pub(crate) struct TextVocab<'a> {
    pub tokens: Vec<(&'a str, u32)>,
    pub merges: Vec<(&'a str, &'a str)>,
    pub specials: Vec<SpecialToken>,
}

impl TextVocab<'_> {
    pub fn build(self, pretokenizer: PreTokenizer, ignore_merges: bool, eos: Option<u32>) -> Result<Tokenizer> {
        let size = self
            .tokens
            .iter()
            .map(|&(_, id)| id)
            .chain(self.specials.iter().map(|s| s.id))
            .max()
            .map_or(0, |m| m as usize + 1);
        // Ids must be dense; checking before allocating also keeps a hostile
        // file from asking for billions of slots.
        if size > self.tokens.len() + self.specials.len() {
            return Err(Error::tokenizer(format!(
                "ids go up to {} but only {} tokens are defined",
                size - 1,
                self.tokens.len() + self.specials.len()
            )));
        }
        let mut vocab: Vec<Option<Vec<u8>>> = vec![None; size];
        for s in &self.specials {
            vocab[s.id as usize] = Some(s.content.as_bytes().to_vec());
        }
        let mut text_ids: FxHashMap<&str, u32> = FxHashMap::default();
        for &(text, id) in &self.tokens {
            text_ids.insert(text, id);
            let slot = &mut vocab[id as usize];
            if slot.is_none() {
                *slot = Some(byte_map::text_to_bytes(text).ok_or_else(|| {
                    Error::tokenizer(format!("token {text:?} (id {id}) is not in GPT-2's byte alphabet"))
                })?);
            }
        }
        let vocab = vocab
            .into_iter()
            .enumerate()
            .map(|(id, t)| t.ok_or_else(|| Error::tokenizer(format!("no token has id {id}"))))
            .collect::<Result<Vec<_>>>()?;
        let merges = self
            .merges
            .iter()
            .enumerate()
            .map(|(rank, &(a, b))| match (text_ids.get(a), text_ids.get(b)) {
                (Some(&a), Some(&b)) => Ok((a, b)),
                _ => Err(Error::tokenizer(format!("merge {rank} ({a:?} {b:?}) names a token not in the vocabulary"))),
            })
            .collect::<Result<Vec<_>>>()?;
        Tokenizer::from_parts(vocab, merges, self.specials, pretokenizer, ignore_merges, eos)
    }
}

/// Splits a merge line "A B" (byte-level tokens never contain a space).
pub(crate) fn split_merge(line: &str) -> Result<(&str, &str)> {
    line.split_once(' ')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains(' '))
        .ok_or_else(|| Error::tokenizer(format!("merge {line:?} is not two tokens separated by one space")))
}

impl Tokenizer {
    /// Token `id` as files store it (special tokens verbatim).
    pub(crate) fn token_text(&self, id: u32) -> String {
        match self.specials.iter().find(|s| s.id == id) {
            Some(s) => s.content.clone(),
            None => byte_map::bytes_to_text(&self.vocab[id as usize]),
        }
    }

    /// Merges as "A B" lines in rank order.
    pub(crate) fn merge_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.merge_list.iter().map(|&(a, b)| format!("{} {}", self.token_text(a), self.token_text(b)))
    }
}

fn fingerprint(
    vocab: &[Vec<u8>],
    merges: &[(u32, u32)],
    specials: &[SpecialToken],
    pretokenizer: PreTokenizer,
    ignore_merges: bool,
    eos: Option<u32>,
) -> u64 {
    let mut h = StableHasher::new();
    h.field(b"byte-level-bpe-v1").field(pretokenizer.name().as_bytes());
    h.u64(u64::from(ignore_merges)).u64(eos.map_or(u64::MAX, u64::from));
    h.u64(vocab.len() as u64);
    for token in vocab {
        h.field(token);
    }
    h.u64(merges.len() as u64);
    for &(a, b) in merges {
        h.u64(u64::from(a) << 32 | u64::from(b));
    }
    for s in specials {
        h.field(s.content.as_bytes()).u64(u64::from(s.id));
    }
    h.finish()
}

/// Encoding state for one thread: a cache from pre-token to ids and
/// reusable buffers.
pub struct Encoder<'t> {
    tokenizer: &'t Tokenizer,
    cache: FxHashMap<Box<[u8]>, Box<[u32]>>,
    symbols: Vec<u32>,
    scratch: Scratch,
}

impl Encoder<'_> {
    /// Appends the ids of `text` (as ordinary text) to `out`.
    pub fn encode_into(&mut self, text: &str, out: &mut Vec<u32>) {
        for piece in self.tokenizer.pretokenizer.split(text) {
            self.encode_piece(piece.as_bytes(), out);
        }
    }

    /// Appends the ids of `text` to `out`, matching special tokens first.
    pub fn encode_with_special_into(&mut self, mut text: &str, out: &mut Vec<u32>) {
        let specials = &self.tokenizer.specials;
        loop {
            // The earliest special occurrence; the longest at equal starts.
            let found = specials
                .iter()
                .filter_map(|s| text.find(s.content.as_str()).map(|at| (at, std::cmp::Reverse(s.content.len()), s)))
                .min_by_key(|&(at, len, _)| (at, len));
            let Some((at, _, special)) = found else {
                self.encode_into(text, out);
                return;
            };
            self.encode_into(&text[..at], out);
            out.push(special.id);
            text = &text[at + special.content.len()..];
        }
    }

    fn encode_piece(&mut self, piece: &[u8], out: &mut Vec<u32>) {
        let tok = self.tokenizer;
        if let [b] = piece {
            out.extend(Some(tok.byte_ids[*b as usize]).filter(|&id| id != NONE));
            return;
        }
        if let Some(ids) = self.cache.get(piece) {
            out.extend_from_slice(ids);
            return;
        }
        self.symbols.clear();
        match tok.ignore_merges.then(|| tok.token_id(piece)).flatten() {
            Some(id) => self.symbols.push(id),
            None => {
                self.symbols.extend(piece.iter().map(|&b| tok.byte_ids[b as usize]));
                merge_symbols(&mut self.symbols, &tok.merges, &mut self.scratch);
            }
        }
        out.extend_from_slice(&self.symbols);
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(piece.into(), self.symbols.as_slice().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes in natural order, merges "ab" and "abc", and an end-of-text.
    fn tiny() -> Tokenizer {
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        vocab.push(b"ab".to_vec());
        vocab.push(b"abc".to_vec());
        vocab.push(ENDOFTEXT.as_bytes().to_vec());
        let specials = vec![SpecialToken { content: ENDOFTEXT.into(), id: 258 }];
        Tokenizer::from_parts(vocab, vec![(97, 98), (256, 99)], specials, PreTokenizer::Gpt2, false, Some(258)).unwrap()
    }

    #[test]
    fn encode_decode_and_specials() {
        let t = tiny();
        assert_eq!(t.encode("abc ab"), vec![257, 32, 256]);
        assert_eq!(t.encode_with_special("ab<|endoftext|>c"), vec![256, 258, 99]);
        // As ordinary text the special spelling is plain bytes.
        assert_eq!(t.encode("<|endoftext|>").len(), ENDOFTEXT.len());
        assert_eq!(t.decode(&t.encode("abc ab")).unwrap(), "abc ab");
        assert!(t.decode(&[9999]).is_err());
        assert_eq!(t.encode_batch(&["ab", "abc"]), vec![vec![256], vec![257]]);
    }

    #[test]
    fn bytes_missing_from_the_vocabulary_are_dropped_and_block_merges() {
        // Bytes 0x00..=0x7f except 0x04, then "ab" (merge of 'a' and 'b').
        let mut vocab: Vec<Vec<u8>> = (0..=127u8).filter(|&b| b != 4).map(|b| vec![b]).collect();
        vocab.push(b"ab".to_vec());
        let (a, b, ab) = (96, 97, 127);
        let t = Tokenizer::from_parts(vocab, vec![(a, b)], vec![], PreTokenizer::Gpt2, false, None).unwrap();
        assert_eq!(t.encode("ab"), vec![ab]);
        assert_eq!(t.encode("a\u{4}b"), vec![a, b]);
        assert_eq!(t.encode("\u{4}"), Vec::<u32>::new());
        assert_eq!(t.encode("x\u{4}\u{4}ab\u{4}"), vec![t.token_id(b"x").unwrap(), ab]);
    }

    #[test]
    fn inconsistent_parts_are_rejected() {
        let vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let err = Tokenizer::from_parts(vocab, vec![(97, 98)], vec![], PreTokenizer::Gpt2, false, None).unwrap_err();
        assert!(err.to_string().contains("not in the vocabulary"), "{err}");
    }
}
