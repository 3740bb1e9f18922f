//! A blocking OpenAI-compatible client: bounded concurrency (worker threads), timeouts,
//! retries with exponential backoff and jitter for transient failures, and errors that say
//! what the server refused (4xx are not retried: they would fail the same way again).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::hash::StableHasher;
use crate::llm::{ChatRequest, ChatResponse, LlmError, TextGenerator};
use crate::openai::wire;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The server's root, e.g. `http://127.0.0.1:8080` (with or without a trailing `/v1`).
    pub base_url: String,
    /// The model to ask for; `None` takes the first one `/v1/models` lists.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer ...` when set.
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Whole-request timeout (connect, send, generate, receive).
    pub timeout: Duration,
    /// Retries after the first try, for transient failures only.
    pub retries: usize,
    /// First backoff; doubled per retry up to `max_backoff`, then scaled by a jitter in [0.5, 1.5).
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: "http://127.0.0.1:8080".into(),
            model: None,
            api_key: None,
            concurrency: 4,
            timeout: Duration::from_secs(300),
            retries: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The client; cheap to share between threads.
pub struct OpenAiClient {
    cfg: ClientConfig,
    root: String,
    model: String,
    agent: ureq::Agent,
}

/// Classifies a failed call: 408, 429 and 5xx and transport failures (refused or dropped
/// connections, timeouts) are transient; other statuses are the request's fault.
fn classify(url: &str, e: ureq::Error) -> LlmError {
    match e {
        ureq::Error::Status(code, resp) => {
            let body = resp.into_string().unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or(body);
            let message = format!("{url}: HTTP {code}: {}", detail.trim());
            if code == 408 || code == 429 || code >= 500 {
                LlmError::transient(message)
            } else {
                LlmError::fatal(message)
            }
        }
        ureq::Error::Transport(t) => LlmError::transient(format!("{url}: {t}")),
    }
}

impl OpenAiClient {
    /// Connects to the server; asks `/v1/models` for the model when none is configured.
    pub fn connect(cfg: ClientConfig) -> Result<OpenAiClient, LlmError> {
        let root = cfg.base_url.trim_end_matches('/').trim_end_matches("/v1").to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout(cfg.timeout)
            .max_idle_connections_per_host(cfg.concurrency.max(1))
            .build();
        let mut client = OpenAiClient { cfg, root, model: String::new(), agent };
        client.model = match client.cfg.model.clone() {
            Some(m) => m,
            None => client.first_model()?,
        };
        Ok(client)
    }

    fn with_auth(&self, req: ureq::Request) -> ureq::Request {
        match &self.cfg.api_key {
            Some(key) => req.set("Authorization", &format!("Bearer {key}")),
            None => req,
        }
    }

    fn first_model(&self) -> Result<String, LlmError> {
        let url = format!("{}/v1/models", self.root);
        let resp = self.with_retries(0, || {
            let resp = self.with_auth(self.agent.get(&url)).call().map_err(|e| classify(&url, e))?;
            resp.into_string().map_err(|e| LlmError::transient(format!("{url}: {e}")))
        })?;
        let v: Value = serde_json::from_str(&resp).map_err(|e| LlmError::fatal(format!("{url}: not JSON: {e}")))?;
        v.pointer("/data/0/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| LlmError::fatal(format!("{url}: no model listed (data[0].id)")))
    }

    fn complete_once(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let url = format!("{}/v1/chat/completions", self.root);
        let body = wire::request_body(&self.model, req).to_string();
        let resp = self
            .with_auth(self.agent.post(&url))
            .set("Content-Type", "application/json")
            .send_string(&body)
            .map_err(|e| classify(&url, e))?;
        let text = resp.into_string().map_err(|e| LlmError::transient(format!("{url}: {e}")))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| LlmError::transient(format!("{url}: response is not JSON: {e}")))?;
        wire::parse_response(&v).map_err(|m| LlmError::fatal(format!("{url}: {m}")))
    }

    /// The pause before retry `attempt` (0-based) of request `salt`.
    fn backoff(&self, attempt: usize, salt: usize) -> Duration {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let h = StableHasher::new().u64(nanos as u64).u64(salt as u64).u64(attempt as u64).finish();
        let jitter = 0.5 + (h >> 11) as f64 / (1u64 << 53) as f64;
        let base = self.cfg.backoff.saturating_mul(1u32 << attempt.min(20)).min(self.cfg.max_backoff);
        base.mul_f64(jitter)
    }

    fn with_retries<T>(&self, salt: usize, call: impl Fn() -> Result<T, LlmError>) -> Result<T, LlmError> {
        let mut attempt = 0;
        loop {
            match call() {
                Err(e) if e.retryable && attempt < self.cfg.retries => {
                    std::thread::sleep(self.backoff(attempt, salt));
                    attempt += 1;
                }
                Err(e) if attempt > 0 => {
                    return Err(LlmError { message: format!("{} (after {} tries)", e.message, attempt + 1), ..e })
                }
                other => return other,
            }
        }
    }
}

impl TextGenerator for OpenAiClient {
    fn model_id(&self) -> String {
        self.model.clone()
    }

    fn generate(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, LlmError>> {
        let results: Mutex<Vec<Option<Result<ChatResponse, LlmError>>>> = Mutex::new(vec![None; requests.len()]);
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..self.cfg.concurrency.max(1).min(requests.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(req) = requests.get(i) else { break };
                    let r = self.with_retries(i, || self.complete_once(req));
                    results.lock().expect("no panics while holding the lock")[i] = Some(r);
                });
            }
        });
        results.into_inner().expect("threads joined").into_iter().map(|r| r.expect("every request answered")).collect()
    }
}
