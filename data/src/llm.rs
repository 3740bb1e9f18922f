//! The text-generation interface the MAGA pipeline talks to.
//!
//! Two kinds of backend implement [`TextGenerator`]: the local GGUF llama
//! engine (in `model`, which depends on this crate) and the OpenAI-compatible
//! HTTP client (here). The pipeline sees only this trait, so a stage runs the
//! same against our own engine, `maga serve`, vLLM, SGLang or llama.cpp.

use std::fmt;

/// One chat turn: `role` is "system", "user" or "assistant".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into() }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
}

/// Decoding settings of one request. `temperature == 0` means greedy;
/// `top_k == 0` and `top_p >= 1` switch those filters off. The seed makes a
/// sampled generation reproducible on the local engine (remote servers may
/// honour it or not).
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub max_tokens: usize,
    pub seed: u64,
}

impl Sampling {
    /// Greedy decoding up to `max_tokens` new tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, max_tokens, seed: 0 }
    }
}

/// A chat completion request.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub sampling: Sampling,
}

/// Why generation ended: an end-of-turn token, or the `max_tokens` budget
/// (the output is then truncated and the pipeline rejects it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    /// The OpenAI API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// A completed generation.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// A failed generation. `retryable` separates transient failures (timeouts,
/// 5xx, 429, dropped connections) from ones that repeat (4xx, a prompt longer
/// than the context window), so callers retry only the former.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmError {
    pub message: String,
    pub retryable: bool,
}

impl LlmError {
    pub fn fatal(message: impl Into<String>) -> Self {
        LlmError { message: message.into(), retryable: false }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        LlmError { message: message.into(), retryable: true }
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LlmError {}

/// Anything that turns chat requests into completions.
///
/// `generate` takes a batch so a local engine can decode many sequences at
/// once and an HTTP client can keep several requests in flight; the result
/// has one entry per request, in order, and one request's failure does not
/// fail the others.
pub trait TextGenerator: Send + Sync {
    /// The model's name as recorded in output rows and served at `/v1/models`.
    fn model_id(&self) -> String;

    fn generate(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, LlmError>>;
}
