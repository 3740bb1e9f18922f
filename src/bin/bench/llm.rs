//! `bench llm`: tokens/s of the local GGUF llama engine on SmolLM2-135M-Instruct Q4_1,
//! prompt processing (one 128-token prompt) and generation (batch 1 and batch 8), on 1
//! and 2 threads, beside llama.cpp's figures for the same file on this machine (issue 6).

use std::path::Path;

use crate::harness::{self, cell, emit_case, BenchResult, Options, Results, THREAD_COUNTS};
use model::llama::{smollm2_path, Llama, Segment};

const USAGE: &str = "usage: bench llm [options]
  Needs the model from scripts/fetch_model.sh (models/ or $VWN_MODEL_DIR).
  Without --threads, measures every case on 1 and 2 threads (one child process each)
  and prints one table; with --threads N, measures on N threads and prints raw figures.";

const PROMPT_LEN: usize = 128;
/// Decoding steps timed per generation case, after a prompt of `GEN_PROMPT` tokens.
const GEN_STEPS: usize = 32;
const GEN_PROMPT: usize = 32;

/// `(case, sequences decoded together, llama.cpp tok/s on 1 and 2 threads)`; `batch 0`
/// marks the prompt-processing case.
const CASES: &[(&str, usize, [Option<f64>; 2])] = &[
    ("prompt 128 tok", 0, [Some(182.0), Some(352.0)]),
    ("generate batch 1", 1, [None, Some(125.0)]),
    ("generate batch 8", 8, [None, Some(197.0)]),
];

/// The target: at least this share of llama.cpp's figure.
const TARGET: f64 = 0.5;

pub fn run(args: &[String]) -> BenchResult {
    let opts = Options::parse(args, USAGE)?;
    match opts.threads {
        Some(threads) => measure(threads, &opts),
        None => {
            let results = harness::run_children("llm", &opts)?;
            harness::print_machine(&opts);
            print_table(&results);
            Ok(())
        }
    }
}

/// Deterministic token ids spread over the vocabulary (the cost does not depend on them).
fn tokens(n: usize, seed: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + seed * 104_729 + 13) % vocab) as u32).collect()
}

fn measure(threads: usize, opts: &Options) -> BenchResult {
    harness::pin_threads(threads)?;
    let path = smollm2_path(Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let model = Llama::load(&path)?;
    let vocab = model.config.vocab_size;
    for &(name, batch, _) in CASES.iter().filter(|(name, _, _)| opts.selects(name)) {
        eprintln!("  {threads}T {name}");
        let (t, busy, tokens_per_rep) = if batch == 0 {
            let prompt = tokens(PROMPT_LEN, 0, vocab);
            let mut prefill = || {
                let mut cache = model.new_cache();
                harness::consume(model.forward(&mut [Segment { cache: &mut cache, tokens: &prompt }]));
            };
            let (t, busy) = harness::medians(opts, &mut [&mut prefill]);
            (t[0], busy, PROMPT_LEN)
        } else {
            // Prompts of different lengths, prefilled once; each repetition decodes
            // GEN_STEPS tokens per sequence from copies of those caches.
            let prompts: Vec<Vec<u32>> = (0..batch).map(|s| tokens(GEN_PROMPT + 3 * s, s + 1, vocab)).collect();
            let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache()).collect();
            let mut segments: Vec<Segment> =
                caches.iter_mut().zip(&prompts).map(|(cache, p)| Segment { cache, tokens: p }).collect();
            let first = model.forward(&mut segments);
            let first: Vec<u32> = first.chunks_exact(vocab).map(tensor::sampling::argmax).collect();
            let mut decode = || {
                let mut caches = caches.clone();
                let mut next = first.clone();
                for _ in 0..GEN_STEPS {
                    let feed = next.clone();
                    let mut segments: Vec<Segment> = caches
                        .iter_mut()
                        .zip(&feed)
                        .map(|(cache, t)| Segment { cache, tokens: std::slice::from_ref(t) })
                        .collect();
                    let logits = model.forward(&mut segments);
                    next = logits.chunks_exact(vocab).map(tensor::sampling::argmax).collect();
                }
                harness::consume(next);
            };
            let (t, busy) = harness::medians(opts, &mut [&mut decode]);
            (t[0], busy, batch * GEN_STEPS)
        };
        emit_case(name, &[("tok/s", tokens_per_rep as f64 / t)], busy);
    }
    Ok(())
}

fn print_table(r: &Results) {
    let [t1, t2] = THREAD_COUNTS;
    println!("tokens/s, SmolLM2-135M-Instruct Q4_1, median of repetitions; llama.cpp = the issue's figures");
    println!(
        "prompt: one {PROMPT_LEN}-token prompt from an empty cache; generate: {GEN_STEPS} greedy steps per sequence"
    );
    println!("after prompts of {GEN_PROMPT}+ tokens (batch 8: 8 sequences of different lengths, aggregate tok/s)");
    println!("{}", r.describe());
    println!();
    println!(
        "| {:<18} | {:>9} | {:>12} | {:>6} | {:>9} | {:>12} | {:>6} | {:>7} |",
        "case",
        format!("ours {t1}T"),
        format!("llama.cpp {t1}T"),
        "ratio",
        format!("ours {t2}T"),
        format!("llama.cpp {t2}T"),
        "ratio",
        format!("{t2}T/{t1}T"),
    );
    println!("|{:-<20}|{:->11}|{:->14}|{:->8}|{:->11}|{:->14}|{:->8}|{:->9}|", ":", ":", ":", ":", ":", ":", ":", ":");
    let mut misses = Vec::new();
    for &(name, _, reference) in CASES.iter().filter(|(name, _, _)| r.cases.iter().any(|c| c == name)) {
        let ours = |i: usize| r.get(THREAD_COUNTS[i], name, "tok/s");
        let ratio = |i: usize| Some(ours(i)? / reference[i]?);
        println!(
            "| {:<18} | {} | {} | {} | {} | {} | {} | {} |",
            r.label(name),
            cell(ours(0), 9, 1),
            cell(reference[0], 12, 0),
            cell(ratio(0), 6, 2),
            cell(ours(1), 9, 1),
            cell(reference[1], 12, 0),
            cell(ratio(1), 6, 2),
            cell(r.speedup(name, "tok/s"), 7, 2),
        );
        for (i, t) in THREAD_COUNTS.iter().enumerate() {
            if let Some(x) = ratio(i).filter(|&x| x < TARGET) {
                misses.push(format!("{name}: {x:.2}× llama.cpp on {t}T"));
            }
        }
    }
    if let Some(note) = r.footnote() {
        println!("{note}");
    }
    println!();
    if misses.is_empty() {
        println!("target (≥ {TARGET}× llama.cpp on every figure it has): all met");
    } else {
        println!("targets missed (< {TARGET}× llama.cpp):");
        for m in misses {
            println!("  {m}");
        }
    }
}
