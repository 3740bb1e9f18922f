//! A whole training step of a tiny VWN with multi-token prediction on the GPU against the
//! CPU backend (both f32, same initial weights): the loss, every gradient and every
//! parameter after one AdamW step agree, and 50 steps follow the same loss curve.

use autograd::{AdamW, AdamWConfig, Param};
use gpu::GpuBackend;
use model::{Arch, Model, ModelConfig, MtpConfig, MtpNorm, VwnConfig};
use tensor::{Backend, Cpu};

const LR: f64 = 3e-3;
const BATCH: usize = 2;
const SEQ: usize = 12;
const VOCAB: usize = 32;

fn config() -> ModelConfig {
    ModelConfig {
        arch: Arch::Vwn,
        vocab_size: VOCAB,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        n_kv_heads: 1,
        ffn_hidden: 32,
        max_seq_len: 16,
        vwn: VwnConfig { m: 2, n: 3, ..Default::default() },
        mtp: MtpConfig { enabled: true, lambda: 0.3, norm: MtpNorm::PerVector },
        ..Default::default()
    }
}

/// Windows of a learnable sequence (a noisy arithmetic progression mod VOCAB), varying
/// with the step.
fn windows(step: usize) -> (Vec<u32>, Vec<u32>) {
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for b in 0..BATCH {
        let start = (step * 7 + b * 13) % VOCAB;
        let stride = 1 + (step + b) % 3;
        let ids: Vec<u32> = (0..=SEQ).map(|i| ((start + i * stride) % VOCAB) as u32).collect();
        inputs.extend_from_slice(&ids[..SEQ]);
        targets.extend_from_slice(&ids[1..]);
    }
    (inputs, targets)
}

struct Trace {
    losses: Vec<f64>,
    /// Gradients and parameters after the first step, by parameter.
    grads: Vec<Vec<f64>>,
    params: Vec<Vec<f64>>,
}

fn values<B: Backend>(params: &[&Param<B>]) -> Vec<Vec<f64>> {
    params.iter().map(|p| p.value().to_f64_vec()).collect()
}

fn train<B: Backend>(backend: &B, steps: usize) -> Trace {
    let model = Model::new(&config(), 5, backend).expect("valid config");
    let params = model.params();
    let mut opt = AdamW::new(AdamWConfig::default());
    let mut trace = Trace { losses: Vec::new(), grads: Vec::new(), params: Vec::new() };
    for step in 0..steps {
        params.iter().for_each(|p| p.zero_grad());
        let (inputs, targets) = windows(step);
        let out = model.loss(&inputs, &targets, BATCH, SEQ);
        trace.losses.push(out.total.item());
        out.total.backward();
        if step == 0 {
            trace.grads = params.iter().map(|p| p.grad().expect("every parameter is used").to_f64_vec()).collect();
        }
        opt.step(&params, LR, 1.0);
        if step == 0 {
            trace.params = values(&params);
        }
    }
    trace
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn one_step_matches_the_cpu() {
    let cpu = train(&Cpu::<f32>::new(), 1);
    let gpu = train(&GpuBackend::shared(), 1);
    let (lc, lg) = (cpu.losses[0], gpu.losses[0]);
    assert!((lc - lg).abs() <= 1e-5 * lc, "loss: cpu {lc}, gpu {lg}");
    let names: Vec<String> =
        Model::new(&config(), 5, &Cpu::<f32>::new()).unwrap().params().iter().map(|p| p.name().to_string()).collect();
    for (i, name) in names.iter().enumerate() {
        let (gc, gg) = (&cpu.grads[i], &gpu.grads[i]);
        let scale = max_abs(gc);
        for (j, (a, b)) in gc.iter().zip(gg).enumerate() {
            assert!((a - b).abs() <= 1e-7 + 1e-3 * scale, "{name} gradient [{j}]: cpu {a}, gpu {b} (scale {scale})");
        }
        // AdamW's first step moves every weight by about ±lr·sign(g): where a gradient is
        // at rounding-noise level its sign may differ between devices, a full 2·lr apart.
        for (j, (a, b)) in cpu.params[i].iter().zip(&gpu.params[i]).enumerate() {
            let noise_level = gc[j].abs() < 1e-3 * scale;
            let tol = if noise_level { 2.0 * LR + 1e-6 } else { 1e-3 * LR + 1e-6 };
            assert!((a - b).abs() <= tol, "{name} after the step [{j}]: cpu {a}, gpu {b} (gradient {})", gc[j]);
        }
    }
}

#[test]
fn fifty_steps_track_the_cpu_loss_curve() {
    let steps = 50;
    let cpu = train(&Cpu::<f32>::new(), steps);
    let gpu = train(&GpuBackend::shared(), steps);
    for (s, (a, b)) in cpu.losses.iter().zip(&gpu.losses).enumerate() {
        assert!(
            (a - b).abs() <= 2e-2 * a,
            "step {s}: cpu loss {a}, gpu loss {b}\ncpu {:?}\ngpu {:?}",
            cpu.losses,
            gpu.losses
        );
    }
    let (first, last) = (gpu.losses[0], gpu.losses[steps - 1]);
    assert!(last < 0.8 * first, "the GPU run did not learn: {first} → {last}");
}
