//! The rows the stages exchange, and the MAGACorpus output schema.
//!
//! [`MgaRow`] serialises to exactly the released schema (`meta{chunk_id, docid, meta_extra,
//! source, split, genre, audience, raw_text}`, `content_split`) plus one extra top-level field,
//! `vwn`, holding everything our pipeline records; readers of MAGACorpus ignore it.

use serde::{Deserialize, Serialize};

use crate::llm::{ChatResponse, Sampling};

/// A source chunk (output of `chunk`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRow {
    /// `"{docid}:{chunk_index}"`.
    pub chunk_id: String,
    pub docid: String,
    /// `"{chunk_index}/{n_chunks}"`.
    pub split: String,
    pub source: String,
    /// The source document's other fields, as a JSON string (MAGACorpus keeps it as a string).
    pub meta_extra: String,
    pub text: String,
    pub n_tokens: usize,
}

/// Decoding settings as recorded in output rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingRecord {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub max_tokens: usize,
    pub seed: u64,
}

impl From<&Sampling> for SamplingRecord {
    fn from(s: &Sampling) -> Self {
        SamplingRecord {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            max_tokens: s.max_tokens,
            seed: s.seed,
        }
    }
}

/// How one generation was made: enough to reproduce it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub prompt_version: String,
    pub model_id: String,
    pub sampling: SamplingRecord,
    pub finish_reason: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// 1 for a first-try success; more when earlier tries were rejected.
    pub attempts: usize,
}

impl Provenance {
    pub fn new(prompt_version: &str, model_id: &str, sampling: &Sampling, r: &ChatResponse, attempts: usize) -> Self {
        Provenance {
            prompt_version: prompt_version.to_string(),
            model_id: model_id.to_string(),
            sampling: sampling.into(),
            finish_reason: r.finish.as_str().to_string(),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            attempts,
        }
    }
}

/// One genre–audience pair: free-text descriptions, as the paper's GA prompt asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaPair {
    pub genre: String,
    pub audience: String,
}

/// A chunk with its pairs (output of `ga`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaRow {
    pub chunk: ChunkRow,
    pub pairs: Vec<GaPair>,
    pub ga: Provenance,
}

/// The released MAGACorpus `meta` struct, field for field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MgaMeta {
    pub chunk_id: String,
    pub docid: String,
    pub meta_extra: String,
    pub source: String,
    pub split: String,
    pub genre: String,
    pub audience: String,
    pub raw_text: String,
}

/// Our fields, kept apart from the released schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MgaExtra {
    /// Which of the chunk's pairs this row rewrites (0-based).
    pub pair_index: usize,
    pub ga: Provenance,
    pub reformulation: Provenance,
    pub n_tokens_in: usize,
    pub n_tokens_out: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean: Option<CleanRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeRecord>,
}

/// What `clean` measured and changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CleanRecord {
    pub keyword_coverage: f64,
    /// Fraction of characters stripped as boilerplate.
    pub strip_ratio: f64,
}

/// The Limited Consistency judge's verdict on a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeRecord {
    /// 1–5, or `None` when the judge's answer had no readable score.
    pub score: Option<u8>,
    pub provenance: Provenance,
}

/// A MAGACorpus row with our extras (output of `reformulate`, `clean`, `dedup`, `judge`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MgaRow {
    pub meta: MgaMeta,
    pub content_split: String,
    pub vwn: MgaExtra,
}

impl MgaRow {
    /// Unique per (chunk, pair): the key for sharding, resuming and deduplication.
    pub fn row_id(&self) -> String {
        format!("{}#{}", self.meta.chunk_id, self.vwn.pair_index)
    }
}

/// Something a stage could not turn into output, and why. Every input ends up either in the
/// output or here, so rejection rates can be reported and nothing vanishes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    pub stage: String,
    /// A stable, machine-readable reason code (`malformed_input`, `ga_invalid_json`, `truncated`, ...).
    pub reason: String,
    /// The input's key (chunk id, row id, or `file:line` for unreadable lines).
    pub id: String,
    /// Human-readable detail: the parse error, the LLM's message, the measured value.
    pub detail: String,
    /// The rejected record itself (the input line, or the model's raw answer), so it can be inspected.
    pub record: String,
}
