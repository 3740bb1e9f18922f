//! The MAGA pipeline: genre–audience reformulation of a corpus (spec: shared/spec/maga.md).
//!
//! Stages, each reading and writing JSONL shards so that it runs and resumes on its own:
//! [`chunk`] (documents → chunks), [`ga`] (5 genre–audience pairs per chunk), [`reformulate`]
//! (one rewrite per pair, MAGACorpus rows), [`clean`] (boilerplate, keyword coverage, length),
//! [`dedup`] (MinHash-LSH), [`judge`] (Limited Consistency audit), [`stats`]; plus the
//! data-budget planner [`mix`] and the collapse analysis [`analyze`]. [`stage`] is the shared
//! driver: deterministic `--shard i/N` assignment, atomic per-batch output, resume, rejects.

pub mod analyze;
pub mod chunk;
pub mod clean;
pub mod dedup;
pub mod ga;
pub mod generation;
pub mod json_extract;
pub mod judge;
pub mod mix;
pub mod prompts;
pub mod reformulate;
pub mod schema;
pub mod stage;
pub mod stats;
pub mod text;
