//! `maga serve`: the local engine as an OpenAI-compatible server.

use std::sync::Arc;
use std::time::Duration;

use data::openai::{serve as start, ServerConfig};
use vwn::cli::Args;

use crate::backend::open_local;
use crate::options::default_model;

pub fn serve(args: &mut Args) -> Result<(), String> {
    let d = ServerConfig::default();
    let model = args.take("model").map_or_else(default_model, std::path::PathBuf::from);
    let threads = args.take_parsed("threads")?;
    let cfg = ServerConfig {
        addr: args.take("addr").unwrap_or(d.addr),
        workers: args.take_parsed("workers")?.unwrap_or(d.workers),
        max_batch: args.take_parsed("max-batch")?.unwrap_or(d.max_batch),
        gather: args.take_parsed::<u64>("gather-ms")?.map_or(d.gather, Duration::from_millis),
        default_max_tokens: args.take_parsed("default-max-tokens")?.unwrap_or(d.default_max_tokens),
    };
    args.finish()?;
    let generator = open_local(&model, threads)?;
    let model_id = generator.model_id();
    let server = start(Arc::clone(&generator), cfg.clone())?;
    // Tests and scripts wait for this line to know the address (port 0 picks a free one).
    println!("serving {model_id} on http://{}", server.addr);
    eprintln!("  POST /v1/chat/completions, GET /v1/models; batches of up to {} requests", cfg.max_batch);
    server.wait();
    Ok(())
}
