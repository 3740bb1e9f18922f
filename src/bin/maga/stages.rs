//! The stage commands: each reads the stage before it from the run folder, runs under the
//! shared driver (sharding, atomic batches, resume, rejects) and reports progress.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use data::llm::TextGenerator;
use data::maga::clean::{clean_row, Idf};
use data::maga::dedup::clusters;
use data::maga::schema::{ChunkRow, GaRow, MgaRow, Reject, SamplingRecord};
use data::maga::stage::{
    read_all_rows, read_rows, require_finished, run_stage, stage_files, Counts, Item, Outcome, Shard, StageConfig,
};
use data::maga::{chunk, ga, judge, prompts, reformulate, stats};
use data::readers::{Document, Source};
use data::Tokenizer;
use serde_json::{json, Value};
use vwn::cli::Args;

use crate::options::{CorpusOptions, Settings};
use crate::progress::StageProgress;

const CHUNKS: &str = "chunks";
/// The stages in order, by folder name.
const STAGES: [&str; 6] = [CHUNKS, "ga", "reformulate", "clean", "dedup", "judge"];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn run_one(stage: &str, args: &mut Args) -> Result<(), String> {
    let s = Settings::parse(args)?;
    args.finish()?;
    let stage = if stage == "chunk" { CHUNKS } else { stage };
    let needs_llm = matches!(stage, "ga" | "reformulate" | "judge");
    let generator = if needs_llm { Some(s.backend.open()?) } else { None };
    run_stage_named(stage, &s, generator.as_deref())
}

/// All stages in order; with more than one shard, the per-shard stages only (dedup, judge and
/// stats need every shard's output: run them once all shards are done).
pub fn run_all(args: &mut Args) -> Result<(), String> {
    let s = Settings::parse(args)?;
    args.finish()?;
    let generator = s.backend.open()?;
    let last = if s.shard.count > 1 { "clean" } else { "judge" };
    for stage in STAGES {
        run_stage_named(stage, &s, Some(&*generator))?;
        if stage == last {
            break;
        }
    }
    if s.shard.count > 1 {
        eprintln!(
            "shard {} done; once every shard is, run `maga dedup`, `maga judge` and `maga stats` on {}",
            s.shard,
            s.run.display()
        );
        return Ok(());
    }
    stats_command(&s)
}

fn run_stage_named(stage: &str, s: &Settings, generator: Option<&dyn TextGenerator>) -> Result<(), String> {
    let llm = || generator.ok_or_else(|| format!("{stage} needs a backend"));
    match stage {
        CHUNKS => chunk_stage(s),
        "ga" => ga_stage(s, llm()?),
        "reformulate" => reformulate_stage(s, llm()?),
        "clean" => clean_stage(s),
        "dedup" => dedup_stage(s),
        "judge" => judge_stage(s, llm()?),
        "stats" => stats_command(s),
        other => Err(format!("unknown stage {other}")),
    }
}

fn config(s: &Settings, stage: &'static str, shard: Shard, settings: Value) -> StageConfig {
    StageConfig { stage, out_dir: s.stage_dir(stage), shard, batch_size: s.batch, settings }
}

fn drive<T, O: serde::Serialize>(
    cfg: StageConfig,
    items: impl Iterator<Item = data::Result<Item<T>>>,
    process: impl FnMut(Vec<(String, T)>) -> data::Result<Outcome<O>>,
) -> Result<Counts, String> {
    let progress = StageProgress::new(cfg.stage);
    eprintln!("[{}] shard {} → {}", cfg.stage, cfg.shard, cfg.out_dir.display());
    let counts = run_stage(&cfg, items, process, &mut |c| progress.update(c)).map_err(err)?;
    progress.finish(&counts);
    Ok(counts)
}

/// The part files a stage reads from `upstream`: its own shard's, or every part of a global
/// stage (dedup), after checking that the upstream stage finished.
fn upstream_files(s: &Settings, upstream: &str) -> Result<Vec<PathBuf>, String> {
    let dir = s.stage_dir(upstream);
    let shard = if upstream == "dedup" { None } else { Some(s.shard) };
    require_finished(&dir, shard).map_err(err)?;
    stage_files(&dir, "part", shard).map_err(err)
}

fn counter(tok: &Tokenizer) -> impl Fn(&str) -> usize + '_ {
    |t: &str| tok.encode(t).len()
}

/// A raw input document: text, source name and the other fields as JSON.
struct RawDoc {
    text: String,
    source: String,
    meta_extra: String,
}

fn raw_items(c: &CorpusOptions) -> Result<Box<dyn Iterator<Item = data::Result<Item<RawDoc>>>>, String> {
    let from_docs = |docs: Vec<Document>, source: String| -> Box<dyn Iterator<Item = data::Result<Item<RawDoc>>>> {
        Box::new(docs.into_iter().map(move |d| {
            let value = RawDoc { text: d.text, source: source.clone(), meta_extra: "{}".into() };
            Ok(Item::Good { id: d.id.clone(), docid: d.id, value })
        }))
    };
    let Some(input) = &c.input else {
        let (docs, _) = data::corpus::documents().map_err(err)?;
        return Ok(from_docs(docs, "default-corpus".into()));
    };
    let name = input.file_name().unwrap_or_default().to_string_lossy().into_owned();
    if input.is_file() && name.ends_with(".jsonl") {
        // Plain JSONL is read line by line so that every malformed line becomes a reject.
        let (text_field, id_field) = (c.text_field.clone(), c.id_field.clone());
        let stem = name.trim_end_matches(".jsonl").to_string();
        let rows = read_rows::<Value>(CHUNKS, vec![input.clone()], move |v| {
            let id = match v.get(&id_field) {
                Some(Value::String(s)) => s.clone(),
                Some(n @ Value::Number(_)) => n.to_string(),
                _ => format!(
                    "{:016x}",
                    data::hash::stable_hash(v.get(&text_field).map_or(String::new(), Value::to_string).as_bytes())
                ),
            };
            (id.clone(), id)
        });
        let (text_field, id_field) = (c.text_field.clone(), c.id_field.clone());
        return Ok(Box::new(rows.map(move |item| {
            Ok(match item? {
                Item::Bad { docid, reject } => Item::Bad { docid, reject },
                Item::Good { id, docid, value } => {
                    match value.get(&text_field).and_then(Value::as_str).filter(|t| !t.trim().is_empty()) {
                        None => Item::Bad {
                            docid,
                            reject: Reject {
                                stage: CHUNKS.into(),
                                reason: "missing_text".into(),
                                id,
                                detail: format!("no non-empty string field {text_field:?}"),
                                record: value.to_string(),
                            },
                        },
                        Some(text) => {
                            let mut extra = value.as_object().cloned().unwrap_or_default();
                            extra.remove(&text_field);
                            extra.remove(&id_field);
                            let source = extra.get("source").and_then(Value::as_str).unwrap_or(&stem).to_string();
                            let value =
                                RawDoc { text: text.to_string(), source, meta_extra: Value::Object(extra).to_string() };
                            Item::Good { id, docid, value }
                        }
                    }
                }
            })
        })));
    }
    let source = if name.ends_with(".parquet") || input.is_dir() && has_parquet(input) {
        Source::Parquet { path: input.clone(), text_column: c.column.clone(), id_column: None }
    } else if name.ends_with(".jsonl.zst") || input.is_dir() {
        Source::Jsonl { path: input.clone(), text_field: c.text_field.clone(), id_field: c.id_field.clone() }
    } else {
        Source::Text { path: input.clone() }
    };
    let (docs, report) = source.read_all().map_err(err)?;
    eprintln!("[chunks] read {report}");
    Ok(from_docs(docs, name))
}

fn has_parquet(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|entries| entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "parquet")))
}

fn chunk_stage(s: &Settings) -> Result<(), String> {
    let tok = s.tokenizer()?;
    let count = counter(&tok);
    let items = raw_items(&s.corpus)?.take(s.corpus.docs.unwrap_or(usize::MAX));
    let settings = json!({
        "input": s.corpus.input, "docs": s.corpus.docs, "max_tokens": s.chunk.max_tokens,
        "min_tokens": s.chunk.min_tokens, "tokenizer": tok.fingerprint(),
    });
    let cfg = config(s, CHUNKS, s.shard, settings);
    drive(cfg, items, |docs| {
        let mut out = Outcome::default();
        for (id, d) in docs {
            let rows = chunk::chunk_document(&id, &d.text, &d.source, &d.meta_extra, s.chunk, &count);
            out.tokens += rows.iter().map(|r| r.n_tokens as u64).sum::<u64>();
            out.outputs.extend(rows);
        }
        Ok(out)
    })
    .map(drop)
}

fn llm_settings(model: &str, prompt: &prompts::Template, sampling: &data::llm::Sampling, extra: Value) -> Value {
    json!({"model": model, "prompt": prompt.version, "sampling": SamplingRecord::from(sampling), "extra": extra})
}

fn ga_stage(s: &Settings, generator: &dyn TextGenerator) -> Result<(), String> {
    let files = upstream_files(s, CHUNKS)?;
    let items = read_rows::<ChunkRow>("ga", files, |c| (c.chunk_id.clone(), c.docid.clone()));
    let extra = json!({"retries": s.ga.retries, "min_pairs": s.ga.min_pairs});
    let cfg = config(s, "ga", s.shard, llm_settings(&generator.model_id(), &prompts::GA, &s.ga.sampling, extra));
    drive(cfg, items, |batch| Ok(ga::run_batch(generator, &s.ga, batch))).map(drop)
}

fn reformulate_stage(s: &Settings, generator: &dyn TextGenerator) -> Result<(), String> {
    let files = upstream_files(s, "ga")?;
    let items = read_rows::<GaRow>("reformulate", files, |r| (r.chunk.chunk_id.clone(), r.chunk.docid.clone()));
    let extra = json!({"retries": s.reformulate.retries});
    let settings = llm_settings(&generator.model_id(), &prompts::REFORMULATE, &s.reformulate.sampling, extra);
    let cfg = config(s, "reformulate", s.shard, settings);
    drive(cfg, items, |batch| Ok(reformulate::run_batch(generator, &s.reformulate, batch))).map(drop)
}

fn mga_items(stage: &'static str, files: Vec<PathBuf>) -> impl Iterator<Item = data::Result<Item<MgaRow>>> {
    read_rows::<MgaRow>(stage, files, |r| (r.row_id(), r.meta.docid.clone()))
}

fn clean_stage(s: &Settings) -> Result<(), String> {
    let tok = s.tokenizer()?;
    let count = counter(&tok);
    let files = upstream_files(s, "reformulate")?;
    // IDF over the distinct source chunks of this shard's input (a first pass).
    let mut sources: HashMap<String, String> = HashMap::new();
    for item in mga_items("clean", files.clone()) {
        if let Item::Good { value, .. } = item.map_err(err)? {
            sources.entry(value.meta.chunk_id).or_insert(value.meta.raw_text);
        }
    }
    let mut ordered: Vec<(&String, &String)> = sources.iter().collect();
    ordered.sort();
    let idf = Idf::from_sources(ordered.into_iter().map(|(_, t)| t.as_str()));
    let settings = json!({"clean": s.clean, "tokenizer": tok.fingerprint()});
    let cfg = config(s, "clean", s.shard, settings);
    drive(cfg, mga_items("clean", files), |batch| {
        let mut out = Outcome::default();
        for (_, row) in batch {
            match clean_row(row, &s.clean, &idf, &count) {
                Ok(r) => out.outputs.push(r),
                Err(reject) => out.rejects.push(reject),
            }
        }
        Ok(out)
    })
    .map(drop)
}

fn dedup_stage(s: &Settings) -> Result<(), String> {
    let dir = s.stage_dir("clean");
    require_finished(&dir, None).map_err(err)?;
    let files = stage_files(&dir, "part", None).map_err(err)?;
    let rows: Vec<MgaRow> = read_all_rows(&dir, "part").map_err(err)?;
    let texts: Vec<&str> = rows.iter().map(|r| r.content_split.as_str()).collect();
    let reps = clusters(&texts, s.dedup);
    let keeper: HashMap<String, (String, String)> = rows
        .iter()
        .zip(&reps)
        .map(|(r, &rep)| (r.row_id(), (rows[rep].row_id(), rows[rep].meta.chunk_id.clone())))
        .collect();
    let settings = json!({"bands": s.dedup.bands, "rows": s.dedup.rows, "ngram": s.dedup.ngram, "seed": s.dedup.seed});
    let cfg = config(s, "dedup", Shard::ALL, settings);
    drive(cfg, mga_items("dedup", files), |batch| {
        let mut out = Outcome::default();
        for (id, row) in batch {
            match keeper.get(&id) {
                Some((kept, chunk)) if *kept != id => {
                    let scope = if *chunk == row.meta.chunk_id { "a sibling" } else { "another chunk's row" };
                    out.rejects.push(Reject {
                        stage: "dedup".into(),
                        reason: "near_duplicate".into(),
                        id,
                        detail: format!("near-duplicate of {kept} ({scope})"),
                        record: row.content_split,
                    });
                }
                _ => out.outputs.push(row),
            }
        }
        Ok(out)
    })
    .map(drop)
}

fn judge_stage(s: &Settings, generator: &dyn TextGenerator) -> Result<(), String> {
    let files = upstream_files(s, "dedup")?;
    let extra = json!({"fraction": s.judge.fraction});
    let cfg =
        config(s, "judge", s.shard, llm_settings(&generator.model_id(), &prompts::JUDGE, &s.judge.sampling, extra));
    drive(cfg, mga_items("judge", files), |batch| Ok(judge::run_batch(generator, &s.judge, batch))).map(drop)?;
    let rows: Vec<MgaRow> = read_all_rows(&s.stage_dir("judge"), "part").map_err(err)?;
    let table = judge::rate_table(&rows);
    let path = s.stage_dir("judge").join("rates.md");
    data::maga::stage::write_report(&path, &table.to_string()).map_err(err)?;
    eprintln!("{table}→ {}", path.display());
    Ok(())
}

/// `stats`: over the last stage that has output, with every stage's rejects; written to DIR/stats.md.
fn stats_command(s: &Settings) -> Result<(), String> {
    let tok = s.tokenizer()?;
    let last = ["judge", "dedup", "clean", "reformulate"]
        .into_iter()
        .find(|st| s.stage_dir(st).is_dir())
        .ok_or_else(|| format!("{}: no reformulated rows yet", s.run.display()))?;
    let rows: Vec<MgaRow> = read_all_rows(&s.stage_dir(last), "part").map_err(err)?;
    let chunks: Vec<ChunkRow> = read_all_rows(&s.stage_dir(CHUNKS), "part").map_err(err)?;
    let mut rejects: Vec<Reject> = Vec::new();
    for st in STAGES.into_iter().filter(|st| s.stage_dir(st).is_dir()) {
        rejects.extend(read_all_rows::<Reject>(&s.stage_dir(st), "rejects").map_err(err)?);
    }
    let chunk_tokens: Vec<(String, usize)> = chunks.into_iter().map(|c| (c.chunk_id, c.n_tokens)).collect();
    let st = stats::compute(&chunk_tokens, &rows, &rejects, &counter(&tok));
    let mut report = format!("rows from {last}/\n\n{st}");
    let table = judge::rate_table(&rows);
    if table.total() > 0 {
        report.push_str(&format!("\nLimited Consistency judge ({} rows judged)\n\n{table}", table.total()));
    }
    let path = s.run.join("stats.md");
    data::maga::stage::write_report(&path, &report).map_err(err)?;
    println!("{report}");
    eprintln!("→ {}", path.display());
    Ok(())
}
