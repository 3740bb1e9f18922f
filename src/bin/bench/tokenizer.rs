//! `bench tokenizer`: BPE training time and encoding throughput on the
//! default corpus, on 1 and 2 threads, against Hugging Face `tokenizers`
//! measured in the same run (bench/tokenizers_ref.py in bench/.venv, made
//! by bench/setup_python.sh).

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use data::tokenizer::{train, TrainConfig};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

// Found from the repository root, wherever the bench is started.
const VENV_PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/.venv/bin/python");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/tokenizers_ref.py");

struct Figures {
    train_s: f64,
    encode_mb_s: f64,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut vocab = 8192;
    let mut reps = 3;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--vocab" => vocab = value()?.parse()?,
            "--reps" => reps = value()?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let (docs, _) = data::corpus::documents()?;
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let megabytes = texts.iter().map(|t| t.len()).sum::<usize>() as f64 / 1e6;
    println!(
        "tokenizer bench: default corpus {megabytes:.2} MB ({} documents), vocab {vocab}, median of {reps}",
        texts.len()
    );
    println!("machine: {}, {} threads available", cpu_model(), std::thread::available_parallelism()?);

    let scratch = std::env::temp_dir().join(format!("vwn-bench-tokenizer-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let docs_path = scratch.join("docs.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&docs_path)?);
    for t in &texts {
        writeln!(out, "{}", serde_json::json!({ "text": t }))?;
    }
    out.flush()?;

    let cfg = TrainConfig { vocab_size: vocab, ..TrainConfig::default() };
    let mut rows = Vec::new();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        let (train_s, tok) = median_time(reps, || Ok(pool.install(|| train(&texts, &cfg))?))?;
        let (encode_s, ids) = median_time(reps, || Ok(pool.install(|| tok.encode_batch(&texts))))?;
        let ours = Figures { train_s, encode_mb_s: megabytes / encode_s };
        let tokenizer_path = scratch.join("tokenizer.json");
        tok.save_hf(&tokenizer_path)?;
        let reference = reference(threads, &docs_path, &tokenizer_path, vocab, reps, &ids)?;
        rows.push((threads, ours, reference, ids.iter().map(Vec::len).sum::<usize>()));
    }
    std::fs::remove_dir_all(&scratch)?;

    println!("\nthreads | train ours | train HF | HF/ours | encode ours | encode HF | ours/HF | tokens");
    for (threads, ours, hf, tokens) in &rows {
        let (train_hf, ratio_train, enc_hf, ratio_enc) = match hf {
            Some(hf) => (
                format!("{:.2} s", hf.train_s),
                format!("{:.2}x", hf.train_s / ours.train_s),
                format!("{:.2} MB/s", hf.encode_mb_s),
                format!("{:.2}x", ours.encode_mb_s / hf.encode_mb_s),
            ),
            None => Default::default(),
        };
        println!(
            "{threads} | {:.2} s | {train_hf} | {ratio_train} | {:.2} MB/s | {enc_hf} | {ratio_enc} | {tokens}",
            ours.train_s, ours.encode_mb_s
        );
    }
    println!("(ratios above 1 mean ours is faster)");
    Ok(())
}

fn median_time<T>(reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        last = Some(f()?);
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last.expect("at least one repetition")))
}

/// Runs the Python reference; `None` (with a hint) when it is not set up.
fn reference(
    threads: usize,
    docs: &Path,
    tokenizer: &Path,
    vocab: usize,
    reps: usize,
    our_ids: &[Vec<u32>],
) -> Result<Option<Figures>> {
    if !Path::new(VENV_PYTHON).exists() {
        if threads == 1 {
            println!("HF tokenizers reference skipped: run bench/setup_python.sh once to set it up");
        }
        return Ok(None);
    }
    let output = Command::new(VENV_PYTHON)
        .arg(SCRIPT)
        .arg("--docs")
        .arg(docs)
        .arg("--tokenizer")
        .arg(tokenizer)
        .args(["--vocab", &vocab.to_string(), "--reps", &reps.to_string()])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()?;
    if !output.status.success() {
        return Err(format!("{SCRIPT} failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let field = |k: &str| v[k].as_f64().ok_or_else(|| format!("{SCRIPT} output lacks {k}: {v}"));
    let (tokens, hash) = checksum(our_ids);
    if field("tokens")? as usize != tokens || v["ids_hash"].as_u64() != Some(hash) {
        return Err(format!(
            "HF tokenizers encodes our tokenizer.json differently: {v} vs {tokens} tokens, hash {hash}"
        )
        .into());
    }
    if threads == 1 {
        println!("HF tokenizers encodes our tokenizer.json to identical ids ({tokens} tokens)");
        println!("HF's own {vocab}-token vocabulary encodes the corpus to {} tokens", v["trained_tokens"]);
    }
    Ok(Some(Figures { train_s: field("train_s")?, encode_mb_s: field("encode_mb_s")? }))
}

/// The same checksum as the Python script's.
fn checksum(ids: &[Vec<u32>]) -> (usize, u64) {
    const P: u128 = (1 << 61) - 1;
    let mut h: u128 = 0;
    for &id in ids.iter().flatten() {
        h = (h * 1_000_003 + u128::from(id)) % P;
    }
    (ids.iter().map(Vec::len).sum(), h as u64)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
