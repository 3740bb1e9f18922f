//! `stats`: what a run produced (spec §4.3 item 9, Experiment B): expansion ratio, rejects by
//! reason, sibling diversity, source↔output similarity and novelty, distinct genres/audiences.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::maga::schema::{MgaRow, Reject};
use crate::maga::text::{jaccard, shingles};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Source chunks that went into the pipeline, and their tokens.
    pub source_chunks: usize,
    pub source_tokens: u64,
    /// Chunks with at least one surviving row, and their tokens.
    pub productive_chunks: usize,
    pub productive_source_tokens: u64,
    pub rows: usize,
    pub output_tokens: u64,
    /// `(stage, reason)` → count.
    pub rejects: BTreeMap<(String, String), u64>,
    /// Mean pairwise 5-gram Jaccard among the rows of one chunk (lower = more diverse).
    pub sibling_jaccard: Option<f64>,
    /// Mean source↔output 5-gram Jaccard.
    pub source_jaccard: f64,
    /// Mean share of an output's 5-grams that are not in its source.
    pub novel_5gram_rate: f64,
    pub distinct_genres: usize,
    pub distinct_audiences: usize,
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Computes the statistics. `source_chunks` are `(chunk_id, tokens)` of every chunk the run
/// started from; `count` gives a text's token count.
pub fn compute(
    source_chunks: &[(String, usize)],
    rows: &[MgaRow],
    rejects: &[Reject],
    count: &dyn Fn(&str) -> usize,
) -> Stats {
    let mut s = Stats {
        source_chunks: source_chunks.len(),
        source_tokens: source_chunks.iter().map(|(_, n)| *n as u64).sum(),
        rows: rows.len(),
        ..Stats::default()
    };
    let chunk_tokens: HashMap<&str, usize> = source_chunks.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    let mut by_chunk: BTreeMap<&str, Vec<&MgaRow>> = BTreeMap::new();
    for r in rows {
        by_chunk.entry(&r.meta.chunk_id).or_default().push(r);
    }
    s.productive_chunks = by_chunk.len();
    s.productive_source_tokens = by_chunk.keys().map(|c| chunk_tokens.get(c).copied().unwrap_or(0) as u64).sum();
    let (mut sibling, mut source_sim, mut novel) = (Vec::new(), Vec::new(), Vec::new());
    for siblings in by_chunk.values() {
        let source = shingles(&siblings[0].meta.raw_text, 5);
        let outs: Vec<HashSet<u64>> = siblings.iter().map(|r| shingles(&r.content_split, 5)).collect();
        for (i, o) in outs.iter().enumerate() {
            source_sim.push(jaccard(&source, o));
            novel.push(o.difference(&source).count() as f64 / o.len().max(1) as f64);
            sibling.extend(outs[i + 1..].iter().map(|p| jaccard(o, p)));
        }
    }
    s.output_tokens = rows.iter().map(|r| count(&r.content_split) as u64).sum();
    for r in rejects {
        *s.rejects.entry((r.stage.clone(), r.reason.clone())).or_insert(0) += 1;
    }
    s.sibling_jaccard = mean(&sibling);
    s.source_jaccard = mean(&source_sim).unwrap_or(0.0);
    s.novel_5gram_rate = mean(&novel).unwrap_or(0.0);
    let norm = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    s.distinct_genres = rows.iter().map(|r| norm(&r.meta.genre)).collect::<HashSet<_>>().len();
    s.distinct_audiences = rows.iter().map(|r| norm(&r.meta.audience)).collect::<HashSet<_>>().len();
    s
}

impl Stats {
    /// Output tokens over the tokens of every source chunk.
    pub fn expansion(&self) -> f64 {
        self.output_tokens as f64 / self.source_tokens.max(1) as f64
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| measure | value |")?;
        writeln!(f, "|---|---|")?;
        writeln!(f, "| source chunks (tokens) | {} ({}) |", self.source_chunks, self.source_tokens)?;
        writeln!(
            f,
            "| chunks with output (tokens) | {} ({}) |",
            self.productive_chunks, self.productive_source_tokens
        )?;
        writeln!(f, "| output rows (tokens) | {} ({}) |", self.rows, self.output_tokens)?;
        writeln!(f, "| expansion (output / source tokens) | {:.2}× |", self.expansion())?;
        writeln!(
            f,
            "| expansion over chunks with output | {:.2}× |",
            self.output_tokens as f64 / self.productive_source_tokens.max(1) as f64
        )?;
        let sib = self.sibling_jaccard.map_or("n/a".to_string(), |j| format!("{j:.3}"));
        writeln!(f, "| sibling diversity (mean pairwise 5-gram Jaccard) | {sib} |")?;
        writeln!(f, "| source↔output 5-gram Jaccard | {:.3} |", self.source_jaccard)?;
        writeln!(f, "| novel 5-gram rate | {:.3} |", self.novel_5gram_rate)?;
        writeln!(f, "| distinct genres / audiences | {} / {} |", self.distinct_genres, self.distinct_audiences)?;
        writeln!(f)?;
        writeln!(f, "| stage | reject reason | count |")?;
        writeln!(f, "|---|---|---|")?;
        for ((stage, reason), n) in &self.rejects {
            writeln!(f, "| {stage} | {reason} | {n} |")?;
        }
        if self.rejects.is_empty() {
            writeln!(f, "| – | none | 0 |")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maga::schema::{MgaExtra, MgaMeta, Provenance, SamplingRecord};

    fn row(chunk: &str, pair: usize, genre: &str, raw: &str, out: &str) -> MgaRow {
        let p = Provenance {
            prompt_version: "v".into(),
            model_id: "m".into(),
            sampling: SamplingRecord { temperature: 0.0, top_k: 0, top_p: 1.0, max_tokens: 1, seed: 0 },
            finish_reason: "stop".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            attempts: 1,
        };
        MgaRow {
            meta: MgaMeta {
                chunk_id: chunk.into(),
                docid: "d".into(),
                meta_extra: "{}".into(),
                source: "s".into(),
                split: "0/1".into(),
                genre: genre.into(),
                audience: "kids".into(),
                raw_text: raw.into(),
            },
            content_split: out.into(),
            vwn: MgaExtra {
                pair_index: pair,
                ga: p.clone(),
                reformulation: p,
                n_tokens_in: 0,
                n_tokens_out: 0,
                clean: None,
                judge: None,
            },
        }
    }

    #[test]
    fn measures_expansion_diversity_and_novelty() {
        let raw = "a b c d e f";
        let rows = [row("c0", 0, "Story", raw, "a b c d e f"), row("c0", 1, "story ", raw, "u v w x y z")];
        let rejects = [Reject {
            stage: "ga".into(),
            reason: "ga_no_json".into(),
            id: "c1".into(),
            detail: String::new(),
            record: String::new(),
        }];
        let words = |t: &str| t.split_whitespace().count();
        let s = compute(&[("c0".into(), 6), ("c1".into(), 6)], &rows, &rejects, &words);
        assert_eq!((s.source_tokens, s.productive_source_tokens, s.output_tokens), (12, 6, 12));
        assert_eq!(s.expansion(), 1.0);
        // Siblings share no 5-gram; the first copies the source, the second shares nothing.
        assert_eq!(s.sibling_jaccard, Some(0.0));
        assert_eq!((s.source_jaccard, s.novel_5gram_rate), (0.5, 0.5));
        assert_eq!((s.distinct_genres, s.distinct_audiences), (1, 1));
        assert!(s.to_string().contains("| ga | ga_no_json | 1 |"));
    }
}
