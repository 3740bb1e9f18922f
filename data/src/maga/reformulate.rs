//! `reformulate`: one rewrite per (chunk, pair), one generation each (spec §1.4).
//!
//! A rewrite cut off at `max_tokens` is rejected (`truncated`), as is an empty one; both are
//! retried with a new seed first. A failed rewrite is never replaced by the source text,
//! which would silently add repetition.

use crate::llm::{FinishReason, Sampling, TextGenerator};
use crate::maga::generation::{generate_checked, Failure, Job};
use crate::maga::prompts::REFORMULATE;
use crate::maga::schema::{GaRow, MgaExtra, MgaMeta, MgaRow, Reject};
use crate::maga::stage::Outcome;

#[derive(Clone, Debug, PartialEq)]
pub struct ReformulateConfig {
    pub sampling: Sampling,
    pub retries: usize,
}

impl Default for ReformulateConfig {
    fn default() -> Self {
        ReformulateConfig {
            sampling: Sampling { temperature: 0.7, top_k: 0, top_p: 0.9, max_tokens: 512, seed: 0 },
            retries: 1,
        }
    }
}

fn check(r: &crate::llm::ChatResponse) -> Result<String, Failure> {
    let text = r.text.trim();
    if r.finish == FinishReason::Length {
        return Err(Failure::new(
            "truncated",
            format!("stopped at max_tokens after {} tokens", r.completion_tokens),
            text,
        ));
    }
    if text.is_empty() {
        return Err(Failure::new("empty_output", "the model answered nothing", ""));
    }
    Ok(text.to_string())
}

/// Rewrites every pair of a batch of GA rows.
pub fn run_batch(
    generator: &dyn TextGenerator,
    cfg: &ReformulateConfig,
    rows: Vec<(String, GaRow)>,
) -> Outcome<MgaRow> {
    let targets: Vec<(&GaRow, usize)> =
        rows.iter().flat_map(|(_, row)| (0..row.pairs.len()).map(move |i| (row, i))).collect();
    let jobs: Vec<Job> = targets
        .iter()
        .map(|&(row, i)| {
            let p = &row.pairs[i];
            let values = [("raw_text", row.chunk.text.as_str()), ("genre", &p.genre), ("audience", &p.audience)];
            Job { key: format!("reformulate:{}#{i}", row.chunk.chunk_id), messages: REFORMULATE.render(&values) }
        })
        .collect();
    let mut out = Outcome::default();
    let results = generate_checked(
        generator,
        REFORMULATE.version,
        &cfg.sampling,
        cfg.retries,
        &jobs,
        |_, r| check(r),
        &mut out.tokens,
    );
    for (&(row, i), result) in targets.iter().zip(results) {
        let id = format!("{}#{i}", row.chunk.chunk_id);
        match result {
            Ok(g) => {
                let c = &row.chunk;
                out.outputs.push(MgaRow {
                    meta: MgaMeta {
                        chunk_id: c.chunk_id.clone(),
                        docid: c.docid.clone(),
                        meta_extra: c.meta_extra.clone(),
                        source: c.source.clone(),
                        split: c.split.clone(),
                        genre: row.pairs[i].genre.clone(),
                        audience: row.pairs[i].audience.clone(),
                        raw_text: c.text.clone(),
                    },
                    content_split: g.value,
                    vwn: MgaExtra {
                        pair_index: i,
                        ga: row.ga.clone(),
                        reformulation: g.provenance,
                        n_tokens_in: c.n_tokens,
                        n_tokens_out: g.response.completion_tokens,
                        clean: None,
                        judge: None,
                    },
                });
            }
            Err(f) => out.rejects.push(Reject {
                stage: "reformulate".into(),
                reason: f.reason,
                id,
                detail: f.detail,
                record: f.raw,
            }),
        }
    }
    out
}
