//! `bench gpu`: the wgpu backend beside the CPU backend in the same run: the adapter, a
//! kernel ladder (every matmul operand layout and the attention kernels, each checked
//! against the CPU, with GFLOP/s), and training tokens/s of a preset.

use crate::harness::{median, BenchResult};
use autograd::{AdamW, AdamWConfig};
use gpu::GpuBackend;
use model::train_config::preset;
use model::Model;
use std::time::Instant;
use tensor::{Backend, Cpu, Rng, Tensor};

const USAGE: &str = "usage: bench gpu [--sizes 1024,2048,4096] [--tokens 4096] [--d-model 256]
                 [--attention B,T,H,DH] [--preset default] [--train-steps 3] [--reps 5] [--adapter NAME|INDEX]
  Square matmuls at --sizes, transformer shapes for --tokens × --d-model, causal attention
  forward/backward, and training tokens/s of --preset; GPU beside CPU (f32) in one run.
  On software Vulkan (lavapipe, 1-5 GFLOP/s) use small sizes, e.g.
  --sizes 256,512 --tokens 512 --d-model 128 --attention 1,128,4,32 --preset tiny.";

struct Opts {
    sizes: Vec<usize>,
    tokens: usize,
    d_model: usize,
    attention: [usize; 4],
    preset: String,
    train_steps: usize,
    reps: usize,
    adapter: Option<String>,
}

fn list(v: &str) -> BenchResult<Vec<usize>> {
    v.split(',').map(|x| x.trim().parse::<usize>().map_err(|e| format!("{x:?}: {e}").into())).collect()
}

fn parse(args: &[String]) -> BenchResult<Opts> {
    let mut o = Opts {
        sizes: vec![1024, 2048, 4096],
        tokens: 4096,
        d_model: 256,
        attention: [4, 1024, 4, 64],
        preset: "default".into(),
        train_steps: 3,
        reps: 5,
        adapter: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--sizes" => o.sizes = list(value()?)?,
            "--tokens" => o.tokens = value()?.parse()?,
            "--d-model" => o.d_model = value()?.parse()?,
            "--attention" => {
                o.attention = list(value()?)?.try_into().map_err(|_| format!("--attention takes B,T,H,DH\n{USAGE}"))?
            }
            "--preset" => o.preset = value()?.clone(),
            "--train-steps" => o.train_steps = value()?.parse()?,
            "--reps" => o.reps = value()?.parse()?,
            "--adapter" => o.adapter = Some(value()?.clone()),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}").into()),
        }
    }
    if o.reps == 0 || o.train_steps == 0 {
        return Err("--reps and --train-steps must be positive".into());
    }
    Ok(o)
}

/// Median seconds of `reps` runs of `f` after one warm-up; `f` must wait for its result.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Waits for a tensor's producer: reads one element back (the GPU's only sync point).
fn sync<B: Backend>(t: &Tensor<B>) {
    if t.numel() > 0 {
        std::hint::black_box(t.reshape(&[t.numel()]).narrow(0, 0, 1).to_vec());
    }
}

fn random<B: Backend>(shape: &[usize], seed: u64, b: &B) -> Tensor<B> {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::seed(seed), b)
}

/// Largest |gpu − cpu| over the largest |cpu|.
fn rel_error<B: Backend>(gpu: &Tensor<B>, cpu: &Tensor<Cpu<f32>>) -> f64 {
    let (g, c) = (gpu.to_f64_vec(), cpu.to_f64_vec());
    let scale = c.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
    g.iter().zip(&c).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// One matmul case: `batch` products `(m×k)·(k×n)`, operands optionally stored transposed.
struct Case {
    name: String,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a_t: bool,
    b_t: bool,
}

fn operand<B: Backend>(batch: usize, rows: usize, cols: usize, transposed: bool, seed: u64, b: &B) -> Tensor<B> {
    if transposed {
        random(&[batch, cols, rows], seed, b).transpose(1, 2)
    } else {
        random(&[batch, rows, cols], seed, b)
    }
}

fn matmul_case(c: &Case, gpu: &GpuBackend, cpu: &Cpu<f32>, reps: usize) {
    let flops = 2.0 * (c.batch * c.m * c.k * c.n) as f64;
    let (ag, bg) = (operand(c.batch, c.m, c.k, c.a_t, 1, gpu), operand(c.batch, c.k, c.n, c.b_t, 2, gpu));
    let (ac, bc) = (operand(c.batch, c.m, c.k, c.a_t, 1, cpu), operand(c.batch, c.k, c.n, c.b_t, 2, cpu));
    let err = rel_error(&ag.matmul(&bg), &ac.matmul(&bc));
    let tg = time(reps, || sync(&ag.matmul(&bg)));
    let tc = time(reps, || sync(&ac.matmul(&bc)));
    let verdict = if err <= 1e-4 { "ok" } else { "MISMATCH" };
    println!(
        "  {:<28} gpu {:>8.1} GFLOP/s   cpu {:>8.1} GFLOP/s   gpu/cpu {:>6.2}×   max rel err {err:.1e} {verdict}",
        c.name,
        flops / tg / 1e9,
        flops / tc / 1e9,
        tc / tg
    );
}

fn matmul_ladder(o: &Opts, gpu: &GpuBackend, cpu: &Cpu<f32>) {
    println!("matmul (median of {} runs; GFLOP/s = 2·batch·m·k·n / time):", o.reps);
    let mut cases: Vec<Case> = Vec::new();
    for &s in &o.sizes {
        for (a_t, b_t, what) in [(false, false, "A·B"), (false, true, "A·Bᵀ"), (true, false, "Aᵀ·B")] {
            cases.push(Case { name: format!("{s}³ {what}"), batch: 1, m: s, k: s, n: s, a_t, b_t });
        }
    }
    let (t, d) = (o.tokens, o.d_model);
    let shapes = [
        (format!("{t}×{d}×{} x·W", 4 * d), 1, t, d, 4 * d, false, false),
        (format!("{t}×{}×{d} x·W", 4 * d), 1, t, 4 * d, d, false, false),
        (format!("{t}×{d}×{} x·Wᵀ", 4 * d), 1, t, d, 4 * d, false, true),
        (format!("{d}×{t}×{} xᵀ·dy", 4 * d), 1, d, t, 4 * d, true, false),
        (format!("{}×({t}/16×64)·(64×{t}/16)", 16), 16, t / 16, 64, t / 16, false, false),
    ];
    for (name, batch, m, k, n, a_t, b_t) in shapes {
        cases.push(Case { name, batch, m, k, n, a_t, b_t });
    }
    for c in &cases {
        matmul_case(c, gpu, cpu, o.reps);
    }
}

fn attention_ladder(o: &Opts, gpu: &GpuBackend, cpu: &Cpu<f32>) {
    let [b, t, h, dh] = o.attention;
    let scale = 1.0 / (dh as f64).sqrt();
    // Causal: half the score matrix; forward 2 products, backward 5 (recomputing scores).
    let fwd_flops = 2.0 * 2.0 * (b * h * t * t * dh) as f64 / 2.0;
    let bwd_flops = 2.5 * fwd_flops;
    println!("attention, causal, batch {b}, seq {t}, heads {h}, head_dim {dh}:");
    let seeds = [10u64, 11, 12, 13];
    let qg: Vec<Tensor<GpuBackend>> = seeds.iter().map(|&s| random(&[b, t, h, dh], s, gpu)).collect();
    let qc: Vec<Tensor<Cpu<f32>>> = seeds.iter().map(|&s| random(&[b, t, h, dh], s, cpu)).collect();
    let (og, lg) = Tensor::attention(&qg[0], &qg[1], &qg[2], true, scale);
    let (oc, lc) = Tensor::attention(&qc[0], &qc[1], &qc[2], true, scale);
    let err_f = rel_error(&og, &oc).max(rel_error(&lg, &lc));
    let gg = Tensor::attention_backward(&qg[0], &qg[1], &qg[2], &og, &lg, &qg[3], true, scale);
    let gc = Tensor::attention_backward(&qc[0], &qc[1], &qc[2], &oc, &lc, &qc[3], true, scale);
    let err_b = rel_error(&gg.0, &gc.0).max(rel_error(&gg.1, &gc.1)).max(rel_error(&gg.2, &gc.2));
    let tfg = time(o.reps, || sync(&Tensor::attention(&qg[0], &qg[1], &qg[2], true, scale).0));
    let tfc = time(o.reps, || sync(&Tensor::attention(&qc[0], &qc[1], &qc[2], true, scale).0));
    let tbg =
        time(o.reps, || sync(&Tensor::attention_backward(&qg[0], &qg[1], &qg[2], &og, &lg, &qg[3], true, scale).2));
    let tbc =
        time(o.reps, || sync(&Tensor::attention_backward(&qc[0], &qc[1], &qc[2], &oc, &lc, &qc[3], true, scale).2));
    for (what, tg, tc, flops, err) in
        [("forward", tfg, tfc, fwd_flops, err_f), ("backward", tbg, tbc, bwd_flops, err_b)]
    {
        let verdict = if err <= 1e-4 { "ok" } else { "MISMATCH" };
        println!(
            "  {what:<9} gpu {:>9.3} ms {:>8.1} GFLOP/s   cpu {:>9.3} ms {:>8.1} GFLOP/s   gpu/cpu {:>6.2}×   max rel err {err:.1e} {verdict}",
            tg * 1e3,
            flops / tg / 1e9,
            tc * 1e3,
            flops / tc / 1e9,
            tc / tg
        );
    }
}

/// Median seconds of one training step (forward, backward, AdamW; the loss read back).
fn train_step_time<B: Backend>(o: &Opts, backend: &B) -> BenchResult<(f64, usize)> {
    let cfg = preset(&o.preset)?;
    let mut mc = cfg.model.clone();
    mc.max_seq_len = cfg.seq_len;
    let model = Model::new(&mc, cfg.seed, backend).map_err(|e| e.to_string())?;
    let params = model.params();
    let mut opt = AdamW::new(AdamWConfig::default());
    let (batch, seq) = (cfg.batch_size, cfg.seq_len);
    let mut rng = Rng::seed(1);
    let ids: Vec<u32> = (0..batch * (seq + 1)).map(|_| rng.below(mc.vocab_size as u64) as u32).collect();
    let (inputs, targets): (Vec<u32>, Vec<u32>) =
        ids.chunks(seq + 1).flat_map(|w| w[..seq].iter().copied().zip(w[1..].iter().copied())).unzip();
    let mut step = || {
        params.iter().for_each(|p| p.zero_grad());
        let out = model.loss(&inputs, &targets, batch, seq);
        std::hint::black_box(out.total.item());
        out.total.backward();
        opt.step(&params, 1e-3, 1.0);
    };
    step();
    let times: Vec<f64> = (0..o.train_steps)
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64()
        })
        .collect();
    Ok((median(times), batch * seq))
}

pub fn run(args: &[String]) -> BenchResult {
    let o = parse(args)?;
    let gpu = GpuBackend::open(o.adapter.as_deref())?;
    let cpu = Cpu::<f32>::new();
    println!("adapter: {}", gpu.report());
    println!("cpu: {} (the machine may be shared: figures are medians, ratios from one run)", cpu.name());
    matmul_ladder(&o, &gpu, &cpu);
    attention_ladder(&o, &gpu, &cpu);
    let (tg, tokens) = train_step_time(&o, &gpu)?;
    let (tc, _) = train_step_time(&o, &cpu)?;
    println!(
        "training step, preset {:?} ({tokens} tokens/step, median of {}): gpu {:.0} tokens/s ({:.3} s/step), \
         cpu {:.0} tokens/s ({:.3} s/step), gpu/cpu {:.2}×",
        o.preset,
        o.train_steps,
        tokens as f64 / tg,
        tg,
        tokens as f64 / tc,
        tc,
        tc / tg
    );
    let (held, peak, free) = gpu.memory();
    println!("gpu memory: {} MiB held ({} MiB free in the pool), peak {} MiB", held >> 20, free >> 20, peak >> 20);
    Ok(())
}
