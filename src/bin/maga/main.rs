//! `maga`: genre–audience reformulation of a corpus (MAGA, shared/spec/maga.md), stage by
//! stage or all at once, with a local GGUF engine or any OpenAI-compatible server; plus the
//! server itself, the data-budget planner and the collapse analysis.

mod backend;
mod options;
mod progress;
mod reports;
mod serve;
mod stages;

use vwn::cli::Args;

const USAGE: &str = "\
Usage:
  maga run         [RUN OPTIONS] [--input CORPUS] [--docs N]      chunk → ga → reformulate → clean → dedup → judge → stats
  maga chunk       --run DIR [--input CORPUS] [--docs N] [--max-chunk-tokens 256] [--min-chunk-tokens 32]
  maga ga          --run DIR [BACKEND] [--ga-retries 2] [--min-pairs 5]
  maga reformulate --run DIR [BACKEND] [--reformulate-retries 1]
  maga clean       --run DIR [--min-tokens 50] [--max-tokens 4096] [--min-coverage 0.15] [--keywords 20] [--max-strip 0.2]
  maga dedup       --run DIR [--bands 14] [--rows 8]
  maga judge       --run DIR [BACKEND] [--fraction 1.0] [--judge-max-new-tokens 256]
  maga stats       --run DIR
  maga serve       [--model FILE.gguf] [--addr 127.0.0.1:8080] [--max-batch 8] [--threads N]
  maga mix         --budget TOKENS NAME=UNIQUE[xEPOCHS]...
  maga analyze     --real FILE.jsonl --synthetic FILE.jsonl [--k 2] [--window 0.05] [--out FILE.jsonl]

Every stage reads the stage before it from DIR/<stage>/ and writes DIR/<stage>/ (JSONL parts
written per batch, atomically; rejects with reason codes beside them). A stage that is killed
resumes where it stopped when run again with the same settings.

Common: --shard i/N (this process's share: N processes or array jobs need no coordinator),
        --batch N (inputs per batch and per output part), --seed S, --tokenizer FILE
        (.gguf or tokenizer.json; default: the model file).
Corpus: --input FILE_OR_DIR (.jsonl, .jsonl.zst, .parquet, text; default: the embedded corpus),
        --text-field text --id-field id (JSONL), --column meta.raw_text (Parquet).
Backend: --backend local (default): --model FILE.gguf (default
          models/SmolLM2-135M-Instruct.Q4_1.gguf, fetched by scripts/fetch_model.sh) --threads N;
        --backend http: --url http://HOST:PORT [--model NAME (default: the first /v1/models lists)]
          --api-key-env VAR --concurrency 4 --timeout 300 --http-retries 4.
Sampling (ga, reformulate; judge is greedy unless given): --temperature --top-p --top-k --max-new-tokens.";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = Args::parse(std::env::args().skip(1), &["help"])?;
    if args.has("help") || args.positional.is_empty() {
        println!("{USAGE}");
        return Ok(());
    }
    let command = args.positional.remove(0);
    if let Some(extra) = args.positional.first().filter(|_| command != "mix") {
        return Err(format!("unexpected argument {extra:?}\n\n{USAGE}"));
    }
    match command.as_str() {
        "run" => stages::run_all(&mut args),
        "chunk" | "ga" | "reformulate" | "clean" | "dedup" | "judge" | "stats" => stages::run_one(&command, &mut args),
        "serve" => serve::serve(&mut args),
        "mix" => reports::mix(&mut args),
        "analyze" => reports::analyze(&mut args),
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
}
