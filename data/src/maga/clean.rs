//! `clean`: heuristic cleaning of rewrites (spec §1.7 [S]).
//!
//! 1. Strip meta-commentary at the start and end ("Sure! Here is the rewritten text:",
//!    "Note: ...", "I hope this helps") and fences wrapping the whole answer; drop the row if
//!    more than `max_strip` of it was such boilerplate.
//! 2. Keyword coverage: the share of the source's top-k TF-IDF content words that the rewrite
//!    uses; low coverage signals topic drift (not incompleteness, which MAGA allows).
//! 3. Length limits in tokens.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::maga::schema::{CleanRecord, MgaRow, Reject};
use crate::maga::text::{content_stems, words};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CleanConfig {
    pub min_tokens: usize,
    pub max_tokens: usize,
    pub min_coverage: f64,
    pub keywords: usize,
    pub max_strip: f64,
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig { min_tokens: 50, max_tokens: 4096, min_coverage: 0.15, keywords: 20, max_strip: 0.2 }
    }
}

const ACKNOWLEDGEMENTS: &[&str] = &["sure", "certainly", "of course", "absolutely", "okay", "ok", "great"];
const LEAD_INS: &[&str] = &["here is", "here's", "below is", "the following is", "the following are", "the above is"];
const LEAD_IN_OBJECTS: &[&str] = &["rewrite", "rewritten", "reformulated", "revised", "version", "text", "adaptation"];
const ECHO_FIELDS: &[&str] = &["genre:", "audience:", "rewritten text:", "rewrite:"];
const CLOSERS: &[&str] = &[
    "note:",
    "notes:",
    "please note",
    "i hope this",
    "hope this helps",
    "let me know",
    "feel free",
    "the above is",
    "this rewrite",
    "this rewritten",
    "in this rewrite",
];

fn is_lead_in(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    if ECHO_FIELDS.iter().any(|p| l.starts_with(p)) {
        return true;
    }
    let Some(p) = LEAD_INS.iter().find(|p| l.starts_with(*p)) else { return false };
    let head: Vec<String> = words(&l[p.len()..]).into_iter().take(5).collect();
    l.ends_with(':') || head.iter().any(|w| LEAD_IN_OBJECTS.contains(&w.as_str()))
}

fn is_closer(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    CLOSERS.iter().any(|p| l.starts_with(p)) || l.contains("as requested") || l.contains("as required")
}

/// Removes a leading acknowledgement sentence ("Sure!", "Certainly, ...!") from `line`.
fn drop_acknowledgement(line: &str) -> &str {
    let l = line.trim_start();
    let lower = l.to_lowercase();
    for a in ACKNOWLEDGEMENTS {
        if lower.starts_with(a) && lower[a.len()..].starts_with([',', '!', '.']) {
            let end = l.find(['!', '.', '\n']).map_or(l.len(), |i| i + 1);
            return l[end..].trim_start();
        }
    }
    l
}

/// The text without start/end meta-commentary, and the fraction of characters removed.
pub fn strip_boilerplate(text: &str) -> (String, f64) {
    let original = text.trim();
    let mut body = original;
    if let Some(inner) = body.strip_prefix("```").and_then(|b| b.strip_suffix("```")) {
        body = inner.split_once('\n').map_or("", |(_, rest)| rest);
    }
    let mut lines: Vec<&str> = body.lines().collect();
    loop {
        let before = lines.len();
        while lines.first().is_some_and(|l| l.trim().is_empty()) {
            lines.remove(0);
        }
        if let Some(first) = lines.first_mut() {
            *first = drop_acknowledgement(first);
            if first.trim().is_empty() || is_lead_in(first) {
                lines.remove(0);
            }
        }
        while lines.last().is_some_and(|l| l.trim().is_empty() || is_closer(l)) {
            lines.pop();
        }
        if lines.len() == before {
            break;
        }
    }
    let cleaned = lines.join("\n").trim().to_string();
    let total = original.chars().count().max(1);
    let ratio = 1.0 - cleaned.chars().count() as f64 / total as f64;
    (cleaned, ratio.max(0.0))
}

/// Document frequencies of content stems over the source texts.
#[derive(Clone, Debug, Default)]
pub struct Idf {
    docs: usize,
    df: HashMap<String, usize>,
}

impl Idf {
    pub fn from_sources<'a>(sources: impl IntoIterator<Item = &'a str>) -> Idf {
        let mut idf = Idf::default();
        for s in sources {
            idf.docs += 1;
            for stem in content_stems(s).into_iter().collect::<HashSet<_>>() {
                *idf.df.entry(stem).or_insert(0) += 1;
            }
        }
        idf
    }

    fn weight(&self, stem: &str) -> f64 {
        let df = self.df.get(stem).copied().unwrap_or(0);
        ((self.docs as f64 + 1.0) / (df as f64 + 1.0)).ln() + 1.0
    }

    /// The `k` content stems of `source` with the highest TF-IDF (ties alphabetical).
    pub fn keywords(&self, source: &str, k: usize) -> Vec<String> {
        let mut tf: HashMap<String, usize> = HashMap::new();
        for stem in content_stems(source) {
            *tf.entry(stem).or_insert(0) += 1;
        }
        let mut scored: Vec<(f64, String)> = tf.into_iter().map(|(s, n)| (n as f64 * self.weight(&s), s)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored.into_iter().take(k).map(|(_, s)| s).collect()
    }
}

/// The share of `keywords` that occur (as stems) in `text`; 1 when there are none.
pub fn keyword_coverage(keywords: &[String], text: &str) -> f64 {
    if keywords.is_empty() {
        return 1.0;
    }
    let present: HashSet<String> = content_stems(text).into_iter().collect();
    keywords.iter().filter(|k| present.contains(*k)).count() as f64 / keywords.len() as f64
}

/// Cleans one row, or rejects it with a reason code.
pub fn clean_row(
    mut row: MgaRow,
    cfg: &CleanConfig,
    idf: &Idf,
    count: &dyn Fn(&str) -> usize,
) -> Result<MgaRow, Reject> {
    let reject = |row: &MgaRow, reason: &str, detail: String| Reject {
        stage: "clean".into(),
        reason: reason.into(),
        id: row.row_id(),
        detail,
        record: row.content_split.clone(),
    };
    let (text, strip_ratio) = strip_boilerplate(&row.content_split);
    if strip_ratio > cfg.max_strip {
        return Err(reject(&row, "boilerplate", format!("{:.0}% of the text is meta-commentary", 100.0 * strip_ratio)));
    }
    let tokens = count(&text);
    if tokens < cfg.min_tokens {
        return Err(reject(&row, "too_short", format!("{tokens} tokens < {}", cfg.min_tokens)));
    }
    if tokens > cfg.max_tokens {
        return Err(reject(&row, "too_long", format!("{tokens} tokens > {}", cfg.max_tokens)));
    }
    let coverage = keyword_coverage(&idf.keywords(&row.meta.raw_text, cfg.keywords), &text);
    if coverage < cfg.min_coverage {
        return Err(reject(&row, "low_keyword_coverage", format!("coverage {coverage:.3} < {}", cfg.min_coverage)));
    }
    row.content_split = text;
    row.vwn.n_tokens_out = tokens;
    row.vwn.clean = Some(CleanRecord { keyword_coverage: coverage, strip_ratio });
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_meta_commentary_at_both_ends() {
        let text = "Sure! Here is the rewritten text for young readers:\n\nPlants eat light.\nThey grow.\n\nNote: I simplified the terms.\nI hope this helps!";
        let (clean, ratio) = strip_boilerplate(text);
        assert_eq!(clean, "Plants eat light.\nThey grow.");
        assert!(ratio > 0.5);
        assert_eq!(strip_boilerplate("```markdown\nBody text.\n```").0, "Body text.");
        assert_eq!(strip_boilerplate("Genre: story\nAudience: kids\nOnce upon a time.").0, "Once upon a time.");
        // Content that merely starts like a lead-in stays.
        let keep = "Here is how plants grow: they use light.";
        assert_eq!(strip_boilerplate(keep), (keep.to_string(), 0.0));
        assert_eq!(strip_boilerplate("Surely plants grow.").0, "Surely plants grow.");
    }

    #[test]
    fn keyword_coverage_follows_the_rarest_source_words() {
        let sources = ["photosynthesis turns light into sugar in plants", "plants need water", "plants grow in soil"];
        let idf = Idf::from_sources(sources);
        let k = idf.keywords(sources[0], 3);
        // "plant" occurs in every source, so it ranks below the rarer stems.
        assert!(!k.contains(&"plant".to_string()), "{k:?}");
        assert_eq!(keyword_coverage(&k, "Light becomes sugar."), 2.0 / 3.0);
        assert_eq!(keyword_coverage(&k, "Nothing related."), 0.0);
        assert_eq!(keyword_coverage(&[], "x"), 1.0);
    }
}
