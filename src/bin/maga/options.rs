//! Every setting of the `maga` commands, parsed once from the command line.

use std::path::{Path, PathBuf};

use data::llm::Sampling;
use data::maga::chunk::ChunkConfig;
use data::maga::clean::CleanConfig;
use data::maga::dedup::DedupConfig;
use data::maga::ga::GaConfig;
use data::maga::judge::JudgeConfig;
use data::maga::reformulate::ReformulateConfig;
use data::maga::stage::Shard;
use data::Tokenizer;
use vwn::cli::Args;

use crate::backend::BackendOptions;

/// The tool model's file when none is named: where scripts/fetch_model.sh puts it
/// (`models/` or `$VWN_MODEL_DIR`).
pub fn default_model() -> PathBuf {
    let dir = std::env::var_os("VWN_MODEL_DIR").map_or_else(|| PathBuf::from("models"), PathBuf::from);
    dir.join(model::llama::SMOLLM2_FILE)
}

/// The raw corpus the chunk stage reads.
pub struct CorpusOptions {
    /// `None`: the embedded default corpus.
    pub input: Option<PathBuf>,
    pub text_field: String,
    pub id_field: String,
    pub column: String,
    /// Only the first N documents (before sharding), for samples and tests.
    pub docs: Option<usize>,
}

pub struct Settings {
    pub run: PathBuf,
    pub shard: Shard,
    pub batch: usize,
    pub tokenizer: Option<PathBuf>,
    pub corpus: CorpusOptions,
    pub chunk: ChunkConfig,
    pub ga: GaConfig,
    pub reformulate: ReformulateConfig,
    pub clean: CleanConfig,
    pub dedup: DedupConfig,
    pub judge: JudgeConfig,
    pub backend: BackendOptions,
}

fn take_or<T: std::str::FromStr>(args: &mut Args, name: &str, default: T) -> Result<T, String> {
    Ok(args.take_parsed(name)?.unwrap_or(default))
}

/// The generation settings for ga and reformulate: the stage's defaults with the flags over them.
fn sampling(args: &Args, default: Sampling, seed: u64) -> Result<Sampling, String> {
    let get = |name: &str| args.options.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let parse = |name: &str, v: String| -> Result<f64, String> {
        v.parse().map_err(|_| format!("--{name}: cannot read {v:?}"))
    };
    let mut s = Sampling { seed, ..default };
    if let Some(v) = get("temperature") {
        s.temperature = parse("temperature", v)? as f32;
    }
    if let Some(v) = get("top-p") {
        s.top_p = parse("top-p", v)? as f32;
    }
    if let Some(v) = get("top-k") {
        s.top_k = parse("top-k", v)? as usize;
    }
    if let Some(v) = get("max-new-tokens") {
        s.max_tokens = parse("max-new-tokens", v)? as usize;
    }
    Ok(s)
}

impl Settings {
    /// Takes every option it knows from `args` (the caller checks that none is left).
    pub fn parse(args: &mut Args) -> Result<Settings, String> {
        let seed = take_or(args, "seed", 0u64)?;
        let ga_sampling = sampling(args, GaConfig::default().sampling, seed)?;
        let reformulate_sampling = sampling(args, ReformulateConfig::default().sampling, seed)?;
        for name in ["temperature", "top-p", "top-k", "max-new-tokens"] {
            args.take(name);
        }
        let judge_defaults = JudgeConfig::default();
        let judge_max = take_or(args, "judge-max-new-tokens", judge_defaults.sampling.max_tokens)?;
        let d = (ChunkConfig::default(), CleanConfig::default(), DedupConfig::default());
        Ok(Settings {
            run: args.take("run").map(PathBuf::from).ok_or("--run DIR is needed (the run's folder)")?,
            shard: args.take("shard").map(|s| s.parse::<Shard>()).transpose()?.unwrap_or(Shard::ALL),
            batch: take_or(args, "batch", 8)?,
            tokenizer: args.take("tokenizer").map(PathBuf::from),
            corpus: CorpusOptions {
                input: args.take("input").map(PathBuf::from),
                text_field: take_or(args, "text-field", "text".to_string())?,
                id_field: take_or(args, "id-field", "id".to_string())?,
                column: take_or(args, "column", "meta.raw_text".to_string())?,
                docs: args.take_parsed("docs")?,
            },
            chunk: ChunkConfig {
                max_tokens: take_or(args, "max-chunk-tokens", d.0.max_tokens)?,
                min_tokens: take_or(args, "min-chunk-tokens", d.0.min_tokens)?,
            },
            ga: GaConfig {
                sampling: ga_sampling,
                retries: take_or(args, "ga-retries", GaConfig::default().retries)?,
                min_pairs: take_or(args, "min-pairs", GaConfig::default().min_pairs)?,
            },
            reformulate: ReformulateConfig {
                sampling: reformulate_sampling,
                retries: take_or(args, "reformulate-retries", ReformulateConfig::default().retries)?,
            },
            clean: CleanConfig {
                min_tokens: take_or(args, "min-tokens", d.1.min_tokens)?,
                max_tokens: take_or(args, "max-tokens", d.1.max_tokens)?,
                min_coverage: take_or(args, "min-coverage", d.1.min_coverage)?,
                keywords: take_or(args, "keywords", d.1.keywords)?,
                max_strip: take_or(args, "max-strip", d.1.max_strip)?,
            },
            dedup: DedupConfig {
                bands: take_or(args, "bands", d.2.bands)?,
                rows: take_or(args, "rows", d.2.rows)?,
                ..d.2
            },
            judge: JudgeConfig {
                sampling: Sampling { seed, max_tokens: judge_max, ..judge_defaults.sampling },
                fraction: take_or(args, "fraction", judge_defaults.fraction)?,
            },
            backend: BackendOptions::parse(args)?,
        })
    }

    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.run.join(stage)
    }

    /// The tokenizer that counts tokens (chunk budgets, length limits, stats).
    pub fn tokenizer(&self) -> Result<Tokenizer, String> {
        let path = self.tokenizer.clone().unwrap_or_else(|| self.backend.tokenizer_file());
        load_tokenizer(&path)
    }
}

pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, String> {
    if !path.exists() {
        return Err(format!(
            "{}: no such tokenizer file (give --tokenizer FILE.gguf|tokenizer.json, or fetch the model with scripts/fetch_model.sh)",
            path.display()
        ));
    }
    let loaded = if path.extension().is_some_and(|e| e == "gguf") {
        Tokenizer::load_gguf(path)
    } else {
        Tokenizer::load_hf(path)
    };
    loaded.map_err(|e| e.to_string())
}
