//! The text generator a run talks to: the local GGUF engine or an OpenAI-compatible server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use data::llm::TextGenerator;
use data::openai::{ClientConfig, OpenAiClient};
use model::llama::{LlamaEngine, FETCH_COMMAND};
use vwn::cli::Args;

use crate::options::default_model;

/// `--model` names a GGUF file for the local engine and a served model for a server.
pub enum BackendOptions {
    Local {
        model: PathBuf,
        /// Threads of the local engine (default: all cores).
        threads: Option<usize>,
    },
    Http(ClientConfig),
}

impl BackendOptions {
    pub fn parse(args: &mut Args) -> Result<BackendOptions, String> {
        let model = args.take("model");
        match args.take("backend").as_deref() {
            None | Some("local") => {
                for http_only in ["url", "api-key-env", "concurrency", "timeout", "http-retries"] {
                    if given(args, http_only) {
                        return Err(format!("--{http_only} is for --backend http"));
                    }
                }
                Ok(BackendOptions::Local {
                    model: model.map_or_else(default_model, PathBuf::from),
                    threads: args.take_parsed("threads")?,
                })
            }
            Some("http") => Ok(BackendOptions::Http(Self::client(args, model)?)),
            Some(other) => Err(format!("--backend {other:?}: expected local or http")),
        }
    }

    fn client(args: &mut Args, model: Option<String>) -> Result<ClientConfig, String> {
        if given(args, "threads") {
            return Err("--threads is for --backend local (the server sets its own)".into());
        }
        let d = ClientConfig::default();
        let api_key = match args.take("api-key-env") {
            Some(var) => {
                Some(std::env::var(&var).map_err(|_| format!("--api-key-env {var}: the variable is not set"))?)
            }
            None => None,
        };
        Ok(ClientConfig {
            base_url: args.take("url").ok_or("--backend http needs --url http://HOST:PORT")?,
            model,
            api_key,
            concurrency: args.take_parsed("concurrency")?.unwrap_or(d.concurrency),
            timeout: args.take_parsed::<f64>("timeout")?.map_or(d.timeout, Duration::from_secs_f64),
            retries: args.take_parsed("http-retries")?.unwrap_or(d.retries),
            ..d
        })
    }

    /// The GGUF file whose tokenizer counts tokens when no `--tokenizer` is given.
    pub fn tokenizer_file(&self) -> PathBuf {
        match self {
            BackendOptions::Local { model, .. } => model.clone(),
            BackendOptions::Http(_) => default_model(),
        }
    }

    pub fn open(&self) -> Result<Arc<dyn TextGenerator>, String> {
        match self {
            BackendOptions::Local { model, threads } => open_local(model, *threads),
            BackendOptions::Http(cfg) => {
                let client = OpenAiClient::connect(cfg.clone()).map_err(|e| e.to_string())?;
                eprintln!("backend: {} at {}", client.model_id(), cfg.base_url);
                Ok(Arc::new(client))
            }
        }
    }
}

fn given(args: &Args, name: &str) -> bool {
    args.options.iter().any(|(k, _)| k == name)
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
