//! Shared pieces of the command-line programs (`pretrain`, `sample`, `bench`): argument
//! parsing and progress display. All model and data logic lives in the crates.

pub mod cli;
pub mod progress;
