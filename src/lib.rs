//! Shared pieces of the command-line programs (`pretrain`, `sample`, `bench`): argument
//! parsing, progress display and profiling. All model and data logic lives in the crates.

pub mod cli;
pub mod profiling;
pub mod progress;
