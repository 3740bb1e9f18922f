//! `sample`: generate text from a `pretrain` checkpoint (KV-cached decoding).

use model::generate::generate;
use model::trainer::{load_trained, Trained};
use std::path::{Path, PathBuf};
use tensor::sampling::SamplingParams;
use tensor::{Backend, Cpu, Rng};
use vwn::cli::{Args, Device};

const USAGE: &str = "\
Usage: sample --checkpoint RUN_OR_CHECKPOINT_DIR [--prompt TEXT] [--max-tokens 200]
              [--temperature 0.8] [--top-k 40] [--top-p 0.95] [--seed 0]
              [--device cpu|gpu] [--adapter NAME|INDEX]
A temperature of 0 decodes greedily.";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = Args::parse(std::env::args().skip(1), &["help"])?;
    if args.has("help") {
        println!("{USAGE}");
        return Ok(());
    }
    let dir = PathBuf::from(args.take("checkpoint").ok_or(format!("--checkpoint is required\n\n{USAGE}"))?);
    let prompt = args.take("prompt").unwrap_or_default();
    let max_tokens = args.take_parsed::<usize>("max-tokens")?.unwrap_or(200);
    let params = SamplingParams {
        temperature: args.take_parsed("temperature")?.unwrap_or(0.8),
        top_k: args.take_parsed("top-k")?.unwrap_or(40),
        top_p: args.take_parsed("top-p")?.unwrap_or(0.95),
    };
    let seed = args.take_parsed::<u64>("seed")?.unwrap_or(0);
    let device = Device::take(&mut args)?;
    args.finish()?;
    let options = SampleOptions { prompt, max_tokens, params, seed };
    match device {
        Device::Cpu => sample(&dir, &Cpu::<f32>::new(), &options),
        Device::Gpu { adapter } => sample(&dir, &Device::open_gpu(adapter.as_deref())?, &options),
    }
}

struct SampleOptions {
    prompt: String,
    max_tokens: usize,
    params: SamplingParams,
    seed: u64,
}

fn sample<B: Backend>(dir: &Path, backend: &B, o: &SampleOptions) -> Result<(), String> {
    let (prompt, max_tokens, params, seed) = (&o.prompt, o.max_tokens, &o.params, o.seed);
    let Trained { tokenizer, model, .. } = load_trained(dir, backend).map_err(|e| e.to_string())?;
    let eos = tokenizer.eos_id();
    let ids = match tokenizer.encode(prompt) {
        v if v.is_empty() => vec![eos.ok_or("the tokenizer has no end-of-text token to start from")?],
        v => v,
    };
    let t0 = std::time::Instant::now();
    let out = generate(&model, &ids, max_tokens, params, &mut Rng::seed(seed), eos);
    let dt = t0.elapsed().as_secs_f64();
    println!("{prompt}{}", tokenizer.decode(&out).map_err(|e| e.to_string())?);
    eprintln!("[{} tokens in {:.2} s, {:.1} tokens/s]", out.len(), dt, out.len() as f64 / dt);
    Ok(())
}
