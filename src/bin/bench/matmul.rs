//! `bench matmul`: GFLOP/s of `Tensor::matmul` beside raw `matrixmultiply::sgemm` on the
//! same shape and strides, measured interleaved in the same process, for 1 and 2 threads.

use crate::harness::{self, cell, consume, emit_case, BenchResult, Options, Results, THREAD_COUNTS};
use tensor::{Cpu, Tensor};

const USAGE: &str = "usage: bench matmul [options]
  Without --threads, measures every case on 1 and 2 threads (one child process each)
  and prints one table; with --threads N, measures on N threads and prints raw figures.";

/// One GEMM shape: `batch` independent `(m×k)·(k×n)` products.
struct Case {
    name: &'static str,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    /// A is stored `[k, m]` and used as `a.t()`.
    a_t: bool,
    /// B is stored `[n, k]` and used as `b.t()`.
    b_t: bool,
}

const fn case(name: &'static str, batch: usize, m: usize, k: usize, n: usize, a_t: bool, b_t: bool) -> Case {
    Case { name, batch, m, k, n, a_t, b_t }
}

/// Square references, then the transformer shapes of a d_model = 256, 4096-token step:
/// x·W (forward), x·Wᵀ (forward with a `[out, in]` weight, and the tied LM head),
/// xᵀ·dy (the weight gradient), and the per-head attention products.
const CASES: &[Case] = &[
    case("1024³ A·B", 1, 1024, 1024, 1024, false, false),
    case("2048³ A·B", 1, 2048, 2048, 2048, false, false),
    case("4096×256×1024 x·W", 1, 4096, 256, 1024, false, false),
    case("4096×1024×256 x·W", 1, 4096, 1024, 256, false, false),
    case("4096×256×8192 x·W", 1, 4096, 256, 8192, false, false),
    case("4096×256×1024 x·Wᵀ", 1, 4096, 256, 1024, false, true),
    case("4096×256×8192 x·Wᵀ", 1, 4096, 256, 8192, false, true),
    case("256×4096×1024 xᵀ·dy", 1, 256, 4096, 1024, true, false),
    case("64×(256×64)·(64×256)", 64, 256, 64, 256, false, false),
    case("64×(256×64)·(256×64)ᵀ", 64, 256, 64, 256, false, true),
];

/// Cases for which the issue asks for a 2-thread speedup of at least 1.6×.
fn is_large(c: &Case) -> bool {
    c.batch == 1
}

pub fn run(args: &[String]) -> BenchResult {
    let opts = Options::parse(args, USAGE)?;
    match opts.threads {
        Some(threads) => measure(threads, &opts),
        None => {
            let results = harness::run_children("matmul", &opts)?;
            harness::print_machine(&opts);
            print_table(&results);
            Ok(())
        }
    }
}

/// Child mode: times every selected case on `threads` threads and emits GFLOP/s.
fn measure(threads: usize, opts: &Options) -> BenchResult {
    harness::pin_threads(threads)?;
    let cpu = Cpu::<f32>::new();
    for (i, c) in CASES.iter().enumerate().filter(|(_, c)| opts.selects(c.name)) {
        eprintln!("  {threads}T {}", c.name);
        let (batch, m, k, n) = (c.batch, c.m, c.k, c.n);
        let a = harness::random_vec(batch * m * k, 2 * i as u64);
        let b = harness::random_vec(batch * k * n, 2 * i as u64 + 1);
        let batched = |rows, cols| if batch > 1 { vec![batch, rows, cols] } else { vec![rows, cols] };
        let ta = Tensor::from_vec(a.clone(), &if c.a_t { batched(k, m) } else { batched(m, k) }, &cpu);
        let tb = Tensor::from_vec(b.clone(), &if c.b_t { batched(n, k) } else { batched(k, n) }, &cpu);
        let ta = if c.a_t { ta.t() } else { ta };
        let tb = if c.b_t { tb.t() } else { tb };

        let mut out = vec![0f32; batch * m * n];
        raw_sgemm(c, &a, &b, &mut out);
        let got = ta.matmul(&tb).to_vec();
        let err = got.iter().zip(&out).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        if err > 1e-3 * (k as f32).sqrt() {
            return Err(format!("{}: tensor and raw sgemm differ by {err}", c.name).into());
        }

        let mut raw = || raw_sgemm(c, &a, &b, &mut out);
        let mut tensor_path = || consume(ta.matmul(&tb));
        let (t, busy) = harness::medians(opts, &mut [&mut tensor_path, &mut raw]);
        let gflop = 2.0 * (batch * m * k * n) as f64 / 1e9;
        emit_case(c.name, &[("tensor", gflop / t[0]), ("raw", gflop / t[1])], busy);
    }
    Ok(())
}

/// The reference: one `matrixmultiply::sgemm` per batch entry, on operands with the
/// strides the tensor views have, into a preallocated `out`.
fn raw_sgemm(c: &Case, a: &[f32], b: &[f32], out: &mut [f32]) {
    let (m, k, n) = (c.m, c.k, c.n);
    let (rsa, csa) = if c.a_t { (1, m) } else { (k, 1) };
    let (rsb, csb) = if c.b_t { (1, k) } else { (n, 1) };
    assert!(a.len() >= c.batch * m * k && b.len() >= c.batch * k * n && out.len() >= c.batch * m * n);
    for i in 0..c.batch {
        // SAFETY: entry `i` of each buffer holds one operand of these shapes and strides
        // (checked above), and `out` is distinct from `a` and `b`.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a[i * m * k..].as_ptr(),
                rsa as isize,
                csa as isize,
                b[i * k * n..].as_ptr(),
                rsb as isize,
                csb as isize,
                0.0,
                out[i * m * n..].as_mut_ptr(),
                n as isize,
                1,
            )
        }
    }
}

fn print_table(r: &Results) {
    let [t1, t2] = THREAD_COUNTS;
    println!("GFLOP/s, f32, median of interleaved repetitions; raw = matrixmultiply::sgemm into a preallocated C");
    println!("{}", r.describe());
    println!();
    println!(
        "| {:<24} | {:>9} | {:>9} | {:>6} | {:>9} | {:>9} | {:>6} | {:>13} | {:>10} |",
        "shape (m×k×n)",
        format!("tensor {t1}T"),
        format!("raw {t1}T"),
        "ratio",
        format!("tensor {t2}T"),
        format!("raw {t2}T"),
        "ratio",
        format!("tensor {t2}T/{t1}T"),
        format!("raw {t2}T/{t1}T"),
    );
    println!(
        "|{:-<26}|{:->11}|{:->11}|{:->8}|{:->11}|{:->11}|{:->8}|{:->15}|{:->12}|",
        ":", ":", ":", ":", ":", ":", ":", ":", ":"
    );
    for case in &r.cases {
        let get = |t, m| r.get(t, case, m);
        let ratio = |t| r.ratio(t, case, "tensor", "raw");
        let speedup = |m| r.speedup(case, m);
        println!(
            "| {:<24} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label(case),
            cell(get(t1, "tensor"), 9, 1),
            cell(get(t1, "raw"), 9, 1),
            cell(ratio(t1), 6, 2),
            cell(get(t2, "tensor"), 9, 1),
            cell(get(t2, "raw"), 9, 1),
            cell(ratio(t2), 6, 2),
            cell(speedup("tensor"), 13, 2),
            cell(speedup("raw"), 10, 2),
        );
    }
    if let Some(note) = r.footnote() {
        println!("{note}");
    }
    println!();
    let mut misses = Vec::new();
    for c in CASES.iter().filter(|c| r.cases.iter().any(|n| n == c.name)) {
        for t in THREAD_COUNTS {
            if let Some(x) = r.ratio(t, c.name, "tensor", "raw").filter(|&x| x < 0.9) {
                misses.push(format!("{}: tensor/raw {x:.2} < 0.9 on {t}T", c.name));
            }
        }
        if let Some(x) = r.speedup(c.name, "tensor").filter(|&x| is_large(c) && x < 1.6) {
            misses.push(format!("{}: {t2}T/{t1}T speedup {x:.2} < 1.6", c.name));
        }
    }
    if misses.is_empty() {
        println!("targets (tensor ≥ 0.9× raw everywhere, ≥ 1.6× on {t2} threads for the large shapes): all met");
    } else {
        println!("targets missed:");
        for m in misses {
            println!("  {m}");
        }
    }
}
