//! `chunk`: paragraph packing to a token budget (spec §1.8 [S]).
//!
//! Paragraphs (blank-line separated) are packed greedily into chunks of at most `max_tokens`;
//! a paragraph longer than that is split on sentence ends, and a sentence longer than that
//! on words. A last chunk under `min_tokens` is merged into the one before it, so the model
//! never gets a stub to rewrite.

use crate::maga::schema::ChunkRow;

/// Chunk sizes in tokens of the tool model's tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkConfig {
    pub max_tokens: usize,
    pub min_tokens: usize,
}

impl Default for ChunkConfig {
    /// Short chunks suit a 135M tool model on a CPU (WRAP and Pieler et al. use ~300 tokens;
    /// the paper's implied budget is ~3,000 for a 4,096-token prompt).
    fn default() -> Self {
        ChunkConfig { max_tokens: 256, min_tokens: 32 }
    }
}

fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line.trim_end());
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// Splits after `.`, `!` or `?` followed by whitespace, keeping the punctuation.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_some_and(|&(_, n)| n.is_whitespace()) {
            out.push(text[start..i + c.len_utf8()].trim());
            start = i + c.len_utf8();
        }
    }
    out.push(text[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Greedily joins `pieces` with `sep` into groups whose token count stays within `max`;
/// pieces over `max` are first broken up by `split`.
fn pack(
    pieces: Vec<String>,
    sep: &str,
    max: usize,
    count: &dyn Fn(&str) -> usize,
    split: &dyn Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for piece in pieces {
        let parts = if count(&piece) > max { split(&piece) } else { vec![piece] };
        for part in parts {
            let joined = if current.is_empty() { part.clone() } else { format!("{current}{sep}{part}") };
            if current.is_empty() || count(&joined) <= max {
                current = joined;
            } else {
                out.push(std::mem::replace(&mut current, part));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Splits `text` into chunks (see the module documentation). `count` gives a text's token count.
pub fn chunk_text(text: &str, cfg: ChunkConfig, count: &dyn Fn(&str) -> usize) -> Vec<String> {
    let max = cfg.max_tokens.max(1);
    let by_words = |s: &str| -> Vec<String> {
        let words: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        pack(words, " ", max, count, &|w: &str| vec![w.to_string()])
    };
    let by_sentences = |p: &str| -> Vec<String> {
        let sents = sentences(p).into_iter().map(str::to_string).collect();
        pack(sents, " ", max, count, &by_words)
    };
    let mut chunks = pack(paragraphs(text), "\n\n", max, count, &by_sentences);
    if chunks.len() >= 2 && count(chunks.last().expect("non-empty")) < cfg.min_tokens {
        let tail = chunks.pop().expect("non-empty");
        let last = chunks.last_mut().expect("two or more");
        last.push_str("\n\n");
        last.push_str(&tail);
    }
    chunks
}

/// The chunk rows of one document.
pub fn chunk_document(
    docid: &str,
    text: &str,
    source: &str,
    meta_extra: &str,
    cfg: ChunkConfig,
    count: &dyn Fn(&str) -> usize,
) -> Vec<ChunkRow> {
    let chunks = chunk_text(text, cfg, count);
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, text)| ChunkRow {
            chunk_id: format!("{docid}:{i}"),
            docid: docid.to_string(),
            split: format!("{i}/{n}"),
            source: source.to_string(),
            meta_extra: meta_extra.to_string(),
            n_tokens: count(&text),
            text,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn packs_paragraphs_up_to_the_budget() {
        let text = "a b c\n\nd e\n\n\n  \nf g h i\n\nj";
        let cfg = ChunkConfig { max_tokens: 5, min_tokens: 1 };
        assert_eq!(chunk_text(text, cfg, &words), ["a b c\n\nd e", "f g h i\n\nj"]);
    }

    #[test]
    fn splits_long_paragraphs_on_sentences_then_words() {
        let text = "One two three. Four five six seven! Eight nine ten eleven twelve thirteen fourteen.";
        let cfg = ChunkConfig { max_tokens: 4, min_tokens: 1 };
        let chunks = chunk_text(text, cfg, &words);
        assert_eq!(
            chunks,
            ["One two three.", "Four five six seven!", "Eight nine ten eleven", "twelve thirteen fourteen."]
        );
        assert!(chunks.iter().all(|c| words(c) <= 4));
        // Nothing is lost or reordered.
        assert_eq!(
            chunks.join(" ").split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn merges_a_short_tail_into_the_previous_chunk() {
        let text = "a b c d\n\ne f g h\n\ni";
        let cfg = ChunkConfig { max_tokens: 4, min_tokens: 2 };
        assert_eq!(chunk_text(text, cfg, &words), ["a b c d", "e f g h\n\ni"]);
        let rows = chunk_document("doc", text, "wiki", "{}", cfg, &words);
        assert_eq!(rows[1].chunk_id, "doc:1");
        assert_eq!(rows[1].split, "1/2");
        assert_eq!(rows[1].n_tokens, 5);
        assert!(chunk_text(" \n\n ", cfg, &words).is_empty());
    }
}
