//! Generation with validation and retries, shared by the LLM stages.
//!
//! Each job is sent with a seed derived from its key and attempt number; a response the
//! stage's check refuses (unparseable pairs, a truncated rewrite) or a transient LLM error is
//! retried with a new seed, up to `retries` times, all pending jobs of an attempt in one
//! `generate` call so a local engine decodes them as one batch.

use crate::hash::StableHasher;
use crate::llm::{ChatMessage, ChatRequest, ChatResponse, Sampling, TextGenerator};
use crate::maga::schema::Provenance;

/// One generation to make.
pub struct Job {
    /// Identifies the job for seeding (e.g. `"ga:doc:0"`), so a rerun makes the same requests.
    pub key: String,
    pub messages: Vec<ChatMessage>,
}

/// Why a job produced nothing usable: a reason code, a detail and the model's raw answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub detail: String,
    pub raw: String,
}

impl Failure {
    pub fn new(reason: &str, detail: impl Into<String>, raw: impl Into<String>) -> Self {
        Failure { reason: reason.to_string(), detail: detail.into(), raw: raw.into() }
    }
}

/// The seed of a job's attempt: stable across runs and machines.
pub fn seed_for(base: u64, key: &str, attempt: usize) -> u64 {
    StableHasher::new().u64(base).field(key.as_bytes()).u64(attempt as u64).finish()
}

/// A successful job: the checked value, the response and how it was made.
pub struct Generated<T> {
    pub value: T,
    pub response: ChatResponse,
    pub provenance: Provenance,
}

/// Runs `jobs` with up to `1 + retries` attempts each; `check` turns a response into a value
/// or a failure. Results are in job order. Tokens generated over all attempts are added to `tokens`.
pub fn generate_checked<T>(
    generator: &dyn TextGenerator,
    prompt_version: &str,
    sampling: &Sampling,
    retries: usize,
    jobs: &[Job],
    check: impl Fn(usize, &ChatResponse) -> Result<T, Failure>,
    tokens: &mut u64,
) -> Vec<Result<Generated<T>, Failure>> {
    let model_id = generator.model_id();
    let mut results: Vec<Option<Result<Generated<T>, Failure>>> = jobs.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..jobs.len()).collect();
    for attempt in 0..=retries {
        if pending.is_empty() {
            break;
        }
        let samplings: Vec<Sampling> = pending
            .iter()
            .map(|&j| Sampling { seed: seed_for(sampling.seed, &jobs[j].key, attempt), ..sampling.clone() })
            .collect();
        let requests: Vec<ChatRequest> = pending
            .iter()
            .zip(&samplings)
            .map(|(&j, s)| ChatRequest { messages: jobs[j].messages.clone(), sampling: s.clone() })
            .collect();
        let responses = generator.generate(&requests);
        let mut still = Vec::new();
        for ((&j, s), response) in pending.iter().zip(&samplings).zip(responses) {
            let (outcome, retry) = match response {
                Ok(r) => {
                    *tokens += r.completion_tokens as u64;
                    match check(j, &r) {
                        Ok(value) => {
                            let provenance = Provenance::new(prompt_version, &model_id, s, &r, attempt + 1);
                            (Ok(Generated { value, response: r, provenance }), false)
                        }
                        Err(f) => (Err(f), true),
                    }
                }
                Err(e) => (Err(Failure::new("llm_error", e.message.clone(), "")), e.retryable),
            };
            if retry && attempt < retries {
                still.push(j);
            } else {
                results[j] = Some(outcome);
            }
        }
        pending = still;
    }
    results.into_iter().map(|r| r.expect("every job ends in a result")).collect()
}
