//! End-to-end tests of the `maga` binary with the real SmolLM2-135M engine (small budgets):
//! the HTTP backend against our own `maga serve` on loopback, and a full `maga run` killed
//! with SIGKILL mid-way and restarted, which must end with no row lost and none duplicated.
//!
//! They need the model file: `scripts/fetch_model.sh` fetches it (CI runs it first).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use data::llm::{ChatMessage, ChatRequest, Sampling, TextGenerator};
use data::maga::schema::{ChunkRow, GaRow, MgaRow, Reject};
use data::maga::stage::read_all_rows;
use data::openai::{ClientConfig, OpenAiClient};
use model::llama::{smollm2_path, LlamaEngine};
use serde_json::Value;

fn model_path() -> PathBuf {
    smollm2_path(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kills the child when dropped, so a failing test leaves no server behind.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maga"))
        .args(["serve", "--addr", "127.0.0.1:0", "--max-batch", "4", "--model"])
        .arg(model_path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    assert!(line.starts_with("serving ") && url.starts_with("http://127.0.0.1:"), "server said {line:?}");
    (Killed(child), url)
}

fn ask(text: &str, max_tokens: usize) -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::user(text)], sampling: Sampling::greedy(max_tokens) }
}

#[test]
fn http_backend_against_maga_serve_matches_the_engine() {
    let (_server, url) = start_server();
    let client =
        OpenAiClient::connect(ClientConfig { base_url: url.clone(), concurrency: 3, ..ClientConfig::default() })
            .expect("connects and reads /v1/models");
    assert_eq!(client.model_id(), "SmolLM2-135M-Instruct.Q4_1");
    let requests = [
        ask("What is the capital of France?", 12),
        ask("Name a colour.", 6),
        ChatRequest {
            sampling: Sampling { temperature: 0.8, top_k: 40, top_p: 0.9, max_tokens: 6, seed: 7 },
            ..ask("Say hi.", 6)
        },
    ];
    let over_http: Vec<_> = client.generate(&requests).into_iter().map(|r| r.expect("served")).collect();
    // The three were in flight together; the server batches them, and each answer must be
    // exactly what the engine gives in-process.
    let engine = LlamaEngine::load(model_path()).unwrap();
    let direct: Vec<_> = engine.generate(&requests).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(over_http, direct);
    assert!(over_http[0].text.starts_with("The capital of France is Paris"), "{:?}", over_http[0].text);

    // A request the engine refuses (context overflow) is a non-retried client error that says why.
    let too_long = ask("Hi", 1 << 20);
    let e = client.generate(&[too_long]).remove(0).unwrap_err();
    assert!(!e.retryable && e.message.contains("HTTP 400") && e.message.contains("context window"), "{}", e.message);
    // A malformed body is refused with the field named.
    let resp = ureq::post(&format!("{url}/v1/chat/completions")).send_string(r#"{"messages": []}"#);
    match resp {
        Err(ureq::Error::Status(400, r)) => assert!(r.into_string().unwrap().contains("'messages' must not be empty")),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
}

fn corpus(dir: &Path) -> PathBuf {
    let docs = [
        "Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water. \
         It takes place in the chloroplasts and releases oxygen as a by-product.",
        "The Danube is the second-longest river in Europe. It flows through ten countries, from the Black Forest in \
         Germany to the Black Sea, and has been a trade route for centuries.",
        "A binary search finds an item in a sorted list by repeatedly halving the part of the list that can still \
         contain it, so it needs only about log2(n) comparisons.",
    ];
    let mut text = String::new();
    for (i, d) in docs.iter().enumerate() {
        text.push_str(&serde_json::json!({"id": format!("doc{i}"), "text": d, "source": "test"}).to_string());
        text.push('\n');
    }
    text.push_str("{\"id\": \"broken\", \"text\": \n"); // malformed: must become a reject, not vanish
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn maga_run(run: &Path, input: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maga"));
    // Tiny generation budgets keep the test short: what it checks is the accounting of rows.
    c.args(["run", "--batch", "1", "--min-pairs", "1", "--ga-retries", "0", "--reformulate-retries", "0"])
        .args(["--max-new-tokens", "96", "--judge-max-new-tokens", "16", "--min-tokens", "5", "--model"])
        .arg(model_path())
        .arg("--run")
        .arg(run)
        .arg("--input")
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn ids<T: serde::de::DeserializeOwned>(dir: &Path, id: impl Fn(&T) -> String) -> Vec<String> {
    read_all_rows::<T>(dir, "part").unwrap().iter().map(id).collect()
}

fn reject_ids(dir: &Path) -> Vec<String> {
    read_all_rows::<Reject>(dir, "rejects").unwrap().into_iter().map(|r| r.id).collect()
}

/// Outputs and rejects of a stage together hold each expected id exactly once.
fn accounted(stage: &Path, outputs: Vec<String>, expected: &BTreeSet<String>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in outputs.into_iter().chain(reject_ids(stage)) {
        *seen.entry(id).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "{}: duplicated {dups:?}", stage.display());
    let got: BTreeSet<String> = seen.into_keys().collect();
    assert_eq!(&got, expected, "{}: lost or unexpected rows", stage.display());
}

#[test]
fn a_run_killed_mid_way_and_restarted_loses_and_duplicates_nothing() {
    let dir = scratch("maga-kill-resume");
    let input = corpus(&dir);
    let run = dir.join("run");
    // Kill -9 as soon as the first GA batch is committed (mid-stage, with work in flight).
    let mut child = Killed(maga_run(&run, &input).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let committed = std::fs::read_dir(run.join("ga"))
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("part-")).count())
            .unwrap_or(0);
        if committed >= 1 {
            break;
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(Instant::now() < deadline, "no GA batch committed in 10 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    assert!(!run.join("ga/done-s0000of0001.json").exists(), "killed after GA finished: the test did not interrupt it");

    let status = maga_run(&run, &input).status().unwrap();
    assert!(status.success(), "the restarted run failed");

    let chunks: Vec<ChunkRow> = read_all_rows(&run.join("chunks"), "part").unwrap();
    let chunk_ids: BTreeSet<String> = chunks.iter().map(|c| c.chunk_id.clone()).collect();
    assert_eq!(chunk_ids.len(), 3, "one chunk per short document");
    let chunk_rejects = read_all_rows::<Reject>(&run.join("chunks"), "rejects").unwrap();
    assert!(chunk_rejects.len() == 1 && chunk_rejects[0].reason == "malformed_input", "{chunk_rejects:?}");

    accounted(&run.join("ga"), ids(&run.join("ga"), |r: &GaRow| r.chunk.chunk_id.clone()), &chunk_ids);
    let ga: Vec<GaRow> = read_all_rows(&run.join("ga"), "part").unwrap();
    let pairs: BTreeSet<String> =
        ga.iter().flat_map(|r| (0..r.pairs.len()).map(move |i| format!("{}#{i}", r.chunk.chunk_id))).collect();
    let row_id = |r: &MgaRow| r.row_id();
    accounted(&run.join("reformulate"), ids(&run.join("reformulate"), row_id), &pairs);
    let reformulated: BTreeSet<String> = ids(&run.join("reformulate"), row_id).into_iter().collect();
    accounted(&run.join("clean"), ids(&run.join("clean"), row_id), &reformulated);
    let cleaned: BTreeSet<String> = ids(&run.join("clean"), row_id).into_iter().collect();
    accounted(&run.join("dedup"), ids(&run.join("dedup"), row_id), &cleaned);
    let kept: BTreeSet<String> = ids(&run.join("dedup"), row_id).into_iter().collect();
    assert_eq!(ids(&run.join("judge"), row_id).into_iter().collect::<BTreeSet<_>>(), kept);

    // Rows follow the MAGACorpus schema, with our fields apart under "vwn".
    for line in std::fs::read_dir(run.join("reformulate"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
    {
        for l in std::fs::read_to_string(line.path()).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["content_split", "meta", "vwn"]);
            let meta: BTreeSet<&str> = v["meta"].as_object().unwrap().keys().map(String::as_str).collect();
            let want = ["audience", "chunk_id", "docid", "genre", "meta_extra", "raw_text", "source", "split"];
            assert_eq!(meta, want.into_iter().collect());
            assert_eq!(v["vwn"]["reformulation"]["prompt_version"], "reformulate.v1");
            assert_eq!(v["vwn"]["reformulation"]["model_id"], "SmolLM2-135M-Instruct.Q4_1");
        }
    }
    let stats = std::fs::read_to_string(run.join("stats.md")).unwrap();
    assert!(stats.contains("expansion (output / source tokens)"), "{stats}");
    assert!(stats.contains("| chunks | malformed_input | 1 |"), "{stats}");
}

/// `maga analyze` reads what `pretrain eval --dump` writes: two checkpoints of the tiny preset
/// (1 and 3 steps) stand in for the real-data and synthetic-data models.
#[test]
fn analyze_reads_the_per_token_loss_dumps_of_pretrain_eval() {
    let dir = scratch("maga-analyze");
    let cache = dir.join("corpus-cache");
    let docs = dir.join("docs.jsonl");
    let texts = ["The river flows to the sea.", "Plants make food from light, water and air.", "A cat sat."];
    let lines: Vec<String> =
        texts.iter().enumerate().map(|(i, t)| serde_json::json!({"id": i, "text": t}).to_string()).collect();
    std::fs::write(&docs, lines.join("\n") + "\n").unwrap();
    let dump = |steps: &str| {
        let ckpt = dir.join(format!("steps{steps}"));
        let trained = Command::new(env!("CARGO_BIN_EXE_pretrain"))
            .args(["--preset", "tiny", "--steps", steps, "--out-dir"])
            .arg(&ckpt)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap();
        assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
        let path = dir.join(format!("losses{steps}.jsonl"));
        let eval = Command::new(env!("CARGO_BIN_EXE_pretrain"))
            .arg("eval")
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--data")
            .arg(&docs)
            .arg("--dump")
            .arg(&path)
            .output()
            .unwrap();
        assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
        path
    };
    let (real, synthetic) = (dump("1"), dump("3"));
    let out = dir.join("analysis.jsonl");
    let analyzed = Command::new(env!("CARGO_BIN_EXE_maga"))
        .arg("analyze")
        .arg("--real")
        .arg(&real)
        .arg("--synthetic")
        .arg(&synthetic)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(analyzed.status.success(), "{}", String::from_utf8_lossy(&analyzed.stderr));
    let report = String::from_utf8_lossy(&analyzed.stdout);
    assert!(report.starts_with("3 documents, mean token loss difference"), "{report}");
    assert!(report.contains("| none (−1) |"), "{report}");

    let dumped = data::maga::analyze::read_dump(&real).unwrap();
    let rows: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), texts.len());
    for (row, doc) in rows.iter().zip(&dumped) {
        assert!(!doc.tokens.is_empty() && doc.losses.iter().all(|l| l.is_finite() && *l > 0.0));
        assert_eq!(row["len"], doc.losses.len(), "{row}");
        assert_eq!(row["doc"], doc.doc.to_string(), "{row}");
    }
}

#[test]
fn bad_flags_get_clear_errors() {
    let run = scratch("maga-bad-flags");
    let run = run.to_string_lossy();
    for (args, expect) in [
        (vec!["frobnicate"], "unknown command \"frobnicate\""),
        (vec!["ga", "--run", &run, "--shard", "4/4"], "expected i/N with 0 <= i < N"),
        (vec!["ga", "--run", &run, "--backend", "grpc"], "expected local or http"),
        (vec!["ga", "--run", &run, "--backend", "http"], "--backend http needs --url"),
        (vec!["ga", "--run", &run, "--url", "http://127.0.0.1:1"], "--url is for --backend http"),
        (vec!["ga", "--run", &run, "--batch", "many"], "--batch: cannot read \"many\""),
        (vec!["ga", "--run", &run, "--temprature", "0.5"], "unknown option --temprature"),
        (vec!["ga"], "--run DIR is needed"),
        (vec!["ga", "--run", &run, "--model", "/nonexistent.gguf"], "fetch it with `scripts/fetch_model.sh`"),
        (vec!["mix", "fineweb=195"], "mix needs --budget"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_maga")).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expect), "maga {args:?}: {stderr}");
    }
}
