//! The text generator a run talks to: the local GGUF engine or an OpenAI-compatible server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use data::llm::TextGenerator;
use data::openai::{ClientConfig, OpenAiClient};
use model::llama::{LlamaEngine, FETCH_COMMAND};
use vwn::cli::Args;

use crate::options::default_model;

pub enum Kind {
    Local,
    Http,
}

pub struct BackendOptions {
    pub kind: Kind,
    /// The GGUF file (local engine; also the default tokenizer).
    pub model: PathBuf,
    /// Threads of the local engine (default: all cores).
    pub threads: Option<usize>,
    pub client: ClientConfig,
}

impl BackendOptions {
    pub fn parse(args: &mut Args) -> Result<BackendOptions, String> {
        let kind = match args.take("backend").as_deref() {
            None | Some("local") => Kind::Local,
            Some("http") => Kind::Http,
            Some(other) => return Err(format!("--backend {other:?}: expected local or http")),
        };
        let d = ClientConfig::default();
        let api_key = match args.take("api-key-env") {
            Some(var) => {
                Some(std::env::var(&var).map_err(|_| format!("--api-key-env {var}: the variable is not set"))?)
            }
            None => None,
        };
        let client = ClientConfig {
            base_url: args.take("url").unwrap_or(d.base_url),
            model: args.take("model-name"),
            api_key,
            concurrency: args.take_parsed("concurrency")?.unwrap_or(d.concurrency),
            timeout: args.take_parsed::<f64>("timeout")?.map_or(d.timeout, Duration::from_secs_f64),
            retries: args.take_parsed("http-retries")?.unwrap_or(d.retries),
            ..d
        };
        Ok(BackendOptions {
            kind,
            model: args.take("model").map_or_else(default_model, PathBuf::from),
            threads: args.take_parsed("threads")?,
            client,
        })
    }

    pub fn open(&self) -> Result<Arc<dyn TextGenerator>, String> {
        match self.kind {
            Kind::Local => open_local(&self.model, self.threads),
            Kind::Http => {
                let client = OpenAiClient::connect(self.client.clone()).map_err(|e| e.to_string())?;
                eprintln!("backend: {} at {}", client.model_id(), self.client.base_url);
                Ok(Arc::new(client))
            }
        }
    }
}

/// Loads the local engine from `model`, on `threads` threads (default: all cores).
pub fn open_local(model: &Path, threads: Option<usize>) -> Result<Arc<dyn TextGenerator>, String> {
    if !model.is_file() {
        return Err(format!("{}: no such model file; fetch it with `{FETCH_COMMAND}`", model.display()));
    }
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| format!("--threads {n}: {e}"))?;
    }
    let engine = LlamaEngine::load(model).map_err(|e| e.to_string())?;
    eprintln!("backend: {} (local engine, {} threads)", engine.model_id(), rayon::current_num_threads());
    Ok(Arc::new(engine))
}
