//! An OpenAI-compatible server over any [`TextGenerator`]: `POST /v1/chat/completions`,
//! `GET /v1/models`.
//!
//! HTTP worker threads parse requests and queue them; one batcher thread takes whatever is
//! queued (up to `max_batch`, waiting `gather` for more after the first) and makes a single
//! `generate` call, so concurrent clients share one batched decode on a local engine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::llm::{ChatRequest, ChatResponse, LlmError, TextGenerator};
use crate::openai::wire;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free one (see [`RunningServer::addr`]).
    pub addr: String,
    /// HTTP threads: the most requests that can wait for a batch at once.
    pub workers: usize,
    pub max_batch: usize,
    /// How long the batcher waits for more requests after the first of a batch.
    pub gather: Duration,
    /// `max_tokens` for requests that do not say.
    pub default_max_tokens: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:8080".into(),
            workers: 16,
            max_batch: 8,
            gather: Duration::from_millis(20),
            default_max_tokens: 512,
        }
    }
}

type Job = (ChatRequest, Sender<Result<ChatResponse, LlmError>>);

/// A server running on background threads; [`stop`](RunningServer::stop) ends it.
pub struct RunningServer {
    pub addr: SocketAddr,
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Blocks for as long as the server runs.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops accepting requests and joins the threads.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts serving `generator` as configured.
pub fn serve(generator: Arc<dyn TextGenerator>, cfg: ServerConfig) -> Result<RunningServer, String> {
    let server = Arc::new(Server::http(&cfg.addr).map_err(|e| format!("cannot listen on {}: {e}", cfg.addr))?);
    let addr = server.server_addr().to_ip().ok_or("the server is not on an IP address")?;
    let stopping = Arc::new(AtomicBool::new(false));
    let (queue, jobs) = mpsc::channel::<Job>();
    let mut threads = Vec::new();
    let batcher_gen = Arc::clone(&generator);
    let (max_batch, gather) = (cfg.max_batch.max(1), cfg.gather);
    threads.push(std::thread::spawn(move || run_batcher(&*batcher_gen, &jobs, max_batch, gather)));
    let next_id = Arc::new(AtomicU64::new(1));
    let model = generator.model_id();
    for _ in 0..cfg.workers.max(1) {
        let (server, stopping, queue, next_id, model) =
            (Arc::clone(&server), Arc::clone(&stopping), queue.clone(), Arc::clone(&next_id), model.clone());
        let default_max_tokens = cfg.default_max_tokens;
        threads.push(std::thread::spawn(move || loop {
            match server.recv() {
                Ok(req) => handle(req, &queue, &model, &next_id, default_max_tokens),
                Err(_) if stopping.load(Ordering::SeqCst) => break,
                Err(_) => continue,
            }
        }));
    }
    Ok(RunningServer { addr, server, stopping, threads })
}

fn run_batcher(generator: &dyn TextGenerator, jobs: &Receiver<Job>, max_batch: usize, gather: Duration) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + gather;
        while batch.len() < max_batch {
            match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let requests: Vec<ChatRequest> = batch.iter().map(|(r, _)| r.clone()).collect();
        let results = generator.generate(&requests);
        for ((_, reply), result) in batch.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

fn json_response(status: u16, body: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    let header = Header::from_bytes("Content-Type", "application/json").expect("valid header");
    Response::from_data(body.to_string().into_bytes()).with_status_code(status).with_header(header)
}

fn handle(mut req: Request, queue: &Sender<Job>, model: &str, next_id: &AtomicU64, default_max_tokens: usize) {
    let path = req.url().split('?').next().unwrap_or("").trim_end_matches('/').to_string();
    let method = req.method().clone();
    let (status, body) = match (&method, path.as_str()) {
        (Method::Get, "/v1/models") => (200, wire::models_body(model)),
        (Method::Post, "/v1/chat/completions") => complete(&mut req, queue, model, next_id, default_max_tokens),
        (_, "/v1/models" | "/v1/chat/completions") => {
            (405, wire::error_body("method not allowed", "invalid_request_error"))
        }
        _ => (404, wire::error_body(&format!("no route {path}"), "invalid_request_error")),
    };
    let _ = req.respond(json_response(status, &body));
}

fn complete(
    req: &mut Request,
    queue: &Sender<Job>,
    model: &str,
    next_id: &AtomicU64,
    default_max_tokens: usize,
) -> (u16, Value) {
    let invalid = |m: String| (400, wire::error_body(&m, "invalid_request_error"));
    let mut text = String::new();
    if let Err(e) = req.as_reader().read_to_string(&mut text) {
        return invalid(format!("unreadable request body: {e}"));
    }
    let body: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return invalid(format!("request body is not JSON: {e}")),
    };
    let chat = match wire::parse_request(&body, default_max_tokens) {
        Ok(c) => c,
        Err(m) => return invalid(m),
    };
    let (reply, answer) = mpsc::channel();
    if queue.send((chat, reply)).is_err() {
        return (503, wire::error_body("the server is shutting down", "server_error"));
    }
    match answer.recv() {
        Ok(Ok(r)) => {
            let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            (200, wire::response_body(next_id.fetch_add(1, Ordering::Relaxed), model, created, &r))
        }
        Ok(Err(e)) if e.retryable => (503, wire::error_body(&e.message, "server_error")),
        Ok(Err(e)) => invalid(e.message),
        Err(_) => (503, wire::error_body("the generator stopped", "server_error")),
    }
}
