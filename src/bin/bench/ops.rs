//! `bench ops`: GB/s (bytes read + written per second) of elementwise ops, reductions and
//! the fused row ops on a `[4096, 8192]` f32 tensor (128 MiB, four times the L3 cache, so
//! the data streams from memory), for 1 and 2 threads. References measured in the same
//! process: a parallel `copy_from_slice` into a preallocated buffer (the memory-bandwidth
//! ceiling), the same copy into a freshly allocated `Vec` (what any op that returns a new
//! tensor also pays), and per op the simple single-threaded loop one would write by hand.

use crate::harness::{self, cell, consume, emit_case, BenchResult, Options, Results, THREAD_COUNTS};
use rayon::prelude::*;
use tensor::{Cpu, Tensor};

const USAGE: &str = "usage: bench ops [options]
  Without --threads, measures every op on 1 and 2 threads (one child process each)
  and prints one table; with --threads N, measures on N threads and prints raw figures.";

const ROWS: usize = 4096;
const COLS: usize = 8192;
const N: usize = ROWS * COLS;
const F32: f64 = 4.0;

/// Reference rows of the table, measured before the ops.
const COPY: &str = "copy, preallocated (ceiling)";
const ALLOC_COPY: &str = "copy into a new Vec";

/// `tanh`-approximation GELU constant √(2/π), as in `tensor::ops`.
const GELU_C: f32 = 0.797_884_6;

pub fn run(args: &[String]) -> BenchResult {
    let opts = Options::parse(args, USAGE)?;
    match opts.threads {
        Some(threads) => measure(threads, &opts),
        None => {
            let results = harness::run_children("ops", &opts)?;
            harness::print_machine(&opts);
            print_table(&results);
            Ok(())
        }
    }
}

/// One op: its name, the bytes it must move, the tensor call and the simple loop.
struct Op<'a> {
    name: &'static str,
    bytes: f64,
    tensor: Box<dyn FnMut() + 'a>,
    simple: Box<dyn FnMut() + 'a>,
}

/// Child mode: times references and ops on `threads` threads and emits GB/s.
fn measure(threads: usize, opts: &Options) -> BenchResult {
    harness::pin_threads(threads)?;
    let cpu = Cpu::<f32>::new();
    let (a, b) = (harness::random_vec(N, 1), harness::random_vec(N, 2));
    let (row, gain) = (harness::random_vec(COLS, 3), harness::random_vec(COLS, 4));
    let targets: Vec<u32> = (0..ROWS).map(|r| (r * 7919 % COLS) as u32).collect();
    let ta = Tensor::from_vec(a.clone(), &[ROWS, COLS], &cpu);
    let tb = Tensor::from_vec(b.clone(), &[ROWS, COLS], &cpu);
    let trow = Tensor::from_vec(row.clone(), &[COLS], &cpu);
    let tgain = Tensor::from_vec(gain.clone(), &[COLS], &cpu);

    // References: memory bandwidth with and without allocating the destination.
    let (a, b, row, gain) = (&a, &b, &row, &gain);
    let mut dst = vec![0f32; N];
    let chunk = N.div_ceil(rayon::current_num_threads());
    let mut copy = || {
        dst.par_chunks_mut(chunk).zip(a.par_chunks(chunk)).for_each(|(d, s)| d.copy_from_slice(s));
        consume(&dst);
    };
    let mut alloc_copy = || consume(a.par_iter().copied().collect::<Vec<f32>>());
    for (name, f) in [(COPY, &mut copy as &mut dyn FnMut()), (ALLOC_COPY, &mut alloc_copy)] {
        if opts.selects(name) {
            eprintln!("  {threads}T {name}");
            let (t, busy) = harness::medians(opts, &mut [f]);
            emit_case(name, &[("tensor", 2.0 * N as f64 * F32 / t[0] / 1e9)], busy);
        }
    }

    let bytes = |elems: usize| elems as f64 * F32;
    let ops: Vec<Op> = vec![
        Op {
            name: "add [R,C]+[R,C]",
            bytes: bytes(3 * N),
            tensor: Box::new(|| consume(ta.add(&tb))),
            simple: Box::new(|| consume(simple_map2(a, b, |x, y| x + y))),
        },
        Op {
            name: "add [R,C]+[C] (broadcast row)",
            bytes: bytes(2 * N + COLS),
            tensor: Box::new(|| consume(ta.add(&trow))),
            simple: Box::new(|| {
                let mut o = vec![0f32; N];
                for r in 0..ROWS {
                    for c in 0..COLS {
                        o[r * COLS + c] = a[r * COLS + c] + row[c];
                    }
                }
                consume(o)
            }),
        },
        Op {
            name: "mul [R,C]*[R,C]",
            bytes: bytes(3 * N),
            tensor: Box::new(|| consume(ta.mul(&tb))),
            simple: Box::new(|| consume(simple_map2(a, b, |x, y| x * y))),
        },
        Op {
            name: "exp",
            bytes: bytes(2 * N),
            tensor: Box::new(|| consume(ta.exp())),
            simple: Box::new(|| consume(simple_map(a, f32::exp))),
        },
        Op {
            name: "gelu (tanh)",
            bytes: bytes(2 * N),
            tensor: Box::new(|| consume(ta.gelu())),
            simple: Box::new(|| {
                consume(simple_map(a, |x| 0.5 * x * (1.0 + (GELU_C * (x + 0.044715 * x * x * x)).tanh())))
            }),
        },
        Op {
            name: "silu",
            bytes: bytes(2 * N),
            tensor: Box::new(|| consume(ta.silu())),
            simple: Box::new(|| consume(simple_map(a, |x| x / (1.0 + (-x).exp())))),
        },
        Op {
            name: "sum over last axis",
            bytes: bytes(N + ROWS),
            tensor: Box::new(|| consume(ta.sum(&[1], false))),
            simple: Box::new(|| consume(a.chunks_exact(COLS).map(|r| r.iter().sum::<f32>()).collect::<Vec<_>>())),
        },
        Op {
            name: "sum over first axis",
            bytes: bytes(N + COLS),
            tensor: Box::new(|| consume(ta.sum(&[0], false))),
            simple: Box::new(|| {
                let mut o = vec![0f32; COLS];
                for r in a.chunks_exact(COLS) {
                    for (o, &x) in o.iter_mut().zip(r) {
                        *o += x;
                    }
                }
                consume(o)
            }),
        },
        Op {
            name: "softmax (last axis)",
            bytes: bytes(2 * N),
            tensor: Box::new(|| consume(ta.softmax())),
            simple: Box::new(|| {
                let mut o = vec![0f32; N];
                for (x, o) in a.chunks_exact(COLS).zip(o.chunks_exact_mut(COLS)) {
                    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for (o, &x) in o.iter_mut().zip(x) {
                        *o = (x - max).exp();
                        sum += *o;
                    }
                    o.iter_mut().for_each(|o| *o /= sum);
                }
                consume(o)
            }),
        },
        Op {
            name: "rms_norm (gain)",
            bytes: bytes(2 * N + COLS + ROWS),
            tensor: Box::new(|| consume(ta.rms_norm(Some(&tgain), 1e-5))),
            simple: Box::new(|| {
                let mut o = vec![0f32; N];
                let mut rstd = vec![0f32; ROWS];
                for ((x, o), rs) in a.chunks_exact(COLS).zip(o.chunks_exact_mut(COLS)).zip(&mut rstd) {
                    *rs = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / COLS as f32 + 1e-5).sqrt();
                    for ((o, &x), &g) in o.iter_mut().zip(x).zip(gain) {
                        *o = x * *rs * g;
                    }
                }
                consume((o, rstd))
            }),
        },
        Op {
            name: "cross_entropy (fwd)",
            bytes: bytes(N + 3 * ROWS),
            tensor: Box::new(|| consume(ta.cross_entropy(&targets, None))),
            simple: Box::new(|| {
                let losses: Vec<f32> = a
                    .chunks_exact(COLS)
                    .zip(&targets)
                    .map(|(x, &t)| {
                        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let lse = max + x.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
                        lse - x[t as usize]
                    })
                    .collect();
                consume(losses)
            }),
        },
    ];
    for mut op in ops.into_iter().filter(|op| opts.selects(op.name)) {
        eprintln!("  {threads}T {}", op.name);
        let (t, busy) = harness::medians(opts, &mut [&mut op.tensor, &mut op.simple]);
        emit_case(op.name, &[("tensor", op.bytes / t[0] / 1e9), ("loop", op.bytes / t[1] / 1e9)], busy);
    }
    Ok(())
}

fn simple_map(x: &[f32], f: impl Fn(f32) -> f32) -> Vec<f32> {
    let mut o = vec![0f32; x.len()];
    for i in 0..x.len() {
        o[i] = f(x[i]);
    }
    o
}

fn simple_map2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    let mut o = vec![0f32; x.len()];
    for i in 0..x.len() {
        o[i] = f(x[i], y[i]);
    }
    o
}

fn print_table(r: &Results) {
    let [t1, t2] = THREAD_COUNTS;
    println!(
        "GB/s (bytes read + written / median time), f32 [{ROWS}, {COLS}] = {} MiB per tensor; \
         loop = simple single-threaded loop, new output per call",
        (N * 4) >> 20
    );
    println!("{}", r.describe());
    println!();
    println!(
        "| {:<30} | {:>9} | {:>9} | {:>7} | {:>9} | {:>11} | {:>11} | {:>11} |",
        "op",
        format!("tensor {t1}T"),
        format!("tensor {t2}T"),
        format!("{t2}T/{t1}T"),
        "loop",
        format!("{t2}T / loop"),
        format!("{t1}T / copy"),
        format!("{t2}T / copy"),
    );
    println!(
        "|{:-<32}|{:->11}|{:->11}|{:->9}|{:->11}|{:->13}|{:->13}|{:->13}|",
        ":", ":", ":", ":", ":", ":", ":", ":"
    );
    for case in &r.cases {
        let get = |t, m| r.get(t, case, m);
        // Ratios within one round: the loop and copy references ran in the same process.
        let of_copy = |t| r.over_rounds(|r| Some(r.get(t, case, "tensor")? / r.get(t, COPY, "tensor")?));
        let of_loop = r.ratio(t2, case, "tensor", "loop");
        println!(
            "| {:<30} | {} | {} | {} | {} | {} | {} | {} |",
            r.label(case),
            cell(get(t1, "tensor"), 9, 1),
            cell(get(t2, "tensor"), 9, 1),
            cell(r.speedup(case, "tensor"), 7, 2),
            cell(get(t1, "loop"), 9, 1),
            cell(of_loop, 11, 2),
            cell(of_copy(t1), 11, 2),
            cell(of_copy(t2), 11, 2),
        );
    }
    if let Some(note) = r.footnote() {
        println!("{note}");
    }
    println!(
        "Each byte read or written counts once; the write-allocate read of an output line does not, \
         so ops with more input streams than a copy can exceed its figure."
    );
}
