//! Word-level text measures shared by cleaning, dedup and stats: words, 5-gram shingles,
//! Jaccard similarity, content words with light stemming.

use std::collections::HashSet;

use crate::hash::StableHasher;

/// Lower-cased alphanumeric words (apostrophes inside a word kept).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Hashes of the word `n`-grams of `text` (one shingle for texts shorter than `n` words,
/// none for texts without words), so short texts still compare.
pub fn shingles(text: &str, n: usize) -> HashSet<u64> {
    let w = words(text);
    let hash = |gram: &[String]| {
        let mut h = StableHasher::new();
        gram.iter().for_each(|g| {
            h.field(g.as_bytes());
        });
        h.finish()
    };
    if w.is_empty() {
        return HashSet::new();
    }
    if w.len() < n {
        return HashSet::from([hash(&w)]);
    }
    w.windows(n).map(hash).collect()
}

/// |a ∩ b| / |a ∪ b|; 1 for two empty sets.
pub fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let union = a.len() + b.len() - a.intersection(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing",
    "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here",
    "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most",
    "my", "no", "nor", "not", "now", "of", "off", "on", "once", "one", "only", "or", "other", "our", "out", "over",
    "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "use", "used", "very", "was",
    "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
    "your",
];

/// A crude suffix-stripping stem, enough to match "reformulated" with "reformulation" loosely
/// and plurals exactly; keyword coverage needs recall, not linguistics.
pub fn stem(word: &str) -> &str {
    for suffix in ["ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "ly", "s"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            if stem.chars().count() >= 3 {
                return stem;
            }
        }
    }
    word
}

/// Stems of the words of `text` that carry content: no stopwords, no numbers, at least 3 letters.
pub fn content_stems(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_numeric()) && !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(&w).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_shingles_counts_shared_ngrams() {
        let a = shingles("the cat sat on the mat today", 5);
        let b = shingles("The cat sat on the mat yesterday", 5);
        assert_eq!(a.len(), 3);
        // 2 shared 5-grams of 4 distinct.
        assert!((jaccard(&a, &b) - 0.5).abs() < 1e-12);
        assert_eq!(shingles("two words", 5).len(), 1);
        assert!(shingles(" ,. ", 5).is_empty());
        assert_eq!(jaccard(&HashSet::new(), &HashSet::new()), 1.0);
    }

    #[test]
    fn content_stems_drop_stopwords_and_merge_plurals() {
        assert_eq!(content_stems("The plants and a plant: 1998 photosynthesis!"), ["plant", "plant", "photosynthesi"]);
        assert_eq!(stem("reformulation"), "reformul");
        assert_eq!(stem("is"), "is");
    }
}
