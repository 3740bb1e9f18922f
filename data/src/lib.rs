//! Text to token batches: a byte-level BPE tokenizer, the embedded default
//! corpus with its train/validation split, streaming corpus readers, token
//! shards and a resumable, mixing batch loader.
//!
//! For pretraining: [`default_corpus::prepare`] gives the tokenizer and the
//! train/validation shards (cached), and a [`loader::Loader`] over those
//! shards gives batches and a [`loader::LoaderState`] for checkpoints.

pub mod corpus;
pub mod default_corpus;
pub mod error;
pub mod fsutil;
pub mod gguf;
pub mod hash;
pub mod llm;
pub mod loader;
pub mod maga;
pub mod openai;
pub mod readers;
pub mod shard;
pub mod tokenizer;

pub use error::{Error, Result};
pub use tokenizer::{PreTokenizer, Tokenizer};
