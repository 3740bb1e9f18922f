//! Benchmarks that print figures with the machine and a reference measured
//! in the same run. Usage: `bench <subcommand> [options]`.

mod tokenizer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("tokenizer") => tokenizer::run(&args[1..]),
        _ => Err("usage: bench tokenizer [--vocab N] [--reps N]".into()),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
