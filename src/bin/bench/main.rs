//! Benchmarks that print figures beside references measured in the same run.
//!
//! `cargo run --release --bin bench -- <subcommand> [options]`; `bench --help` lists the
//! subcommands. Each subcommand is a module with
//! `pub fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>>`; to add one,
//! declare the module and add a line to [`SUBCOMMANDS`].

mod gpu;
mod harness;
mod matmul;
mod ops;
mod tokenizer;

use harness::BenchResult;

type Run = fn(&[String]) -> BenchResult;

/// `(name, one-line description, entry point)`.
const SUBCOMMANDS: &[(&str, &str, Run)] = &[
    ("gpu", "the wgpu backend beside the CPU: matmul/attention kernel ladder (checked), training tokens/s", gpu::run),
    ("matmul", "GFLOP/s of Tensor::matmul beside raw matrixmultiply::sgemm, 1 and 2 threads", matmul::run),
    ("ops", "GB/s of elementwise ops, reductions and fused row ops beside memcpy, 1 and 2 threads", ops::run),
    ("tokenizer", "BPE training time and encode MB/s beside Hugging Face tokenizers, 1 and 2 threads", tokenizer::run),
];

fn usage() -> String {
    let mut s = String::from("usage: bench <subcommand> [options]   (bench <subcommand> --help for options)\n");
    for (name, what, _) in SUBCOMMANDS {
        s += &format!("  {name:<10} {what}\n");
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{}", usage());
        std::process::exit(2);
    };
    if matches!(cmd.as_str(), "-h" | "--help" | "help") {
        print!("{}", usage());
        return;
    }
    let Some((_, _, run)) = SUBCOMMANDS.iter().find(|(name, _, _)| name == cmd) else {
        eprint!("unknown subcommand {cmd:?}\n{}", usage());
        std::process::exit(2);
    };
    if let Err(e) = run(rest) {
        eprintln!("bench {cmd}: {e}");
        std::process::exit(1);
    }
}
