//! Training-loop behaviour: fitting, memory, accumulation, no-grad, optimizers, schedules.

use autograd::{
    clip_scale, global_grad_norm, no_grad, AdamW, AdamWConfig, GroupRule, LrSchedule, Param, Reduction, Sgd, SgdConfig,
    Var,
};
use tensor::{Cpu, Rng, Tensor};

mod common;

use common::{dataset, mse, Mlp};

#[test]
fn mlp_fits_a_nonlinear_target() {
    let cpu = Cpu::<f32>::new();
    let mut rng = Rng::seed(7);
    let mlp = Mlp::new(2, 32, 1, &mut rng, &cpu);
    let (x, y) = dataset(256, &mut rng, &cpu);
    let xv = Var::constant(x);
    let mut opt = AdamW::new(AdamWConfig { weight_decay: 0.0, beta2: 0.999, ..Default::default() });
    let initial = no_grad(|| mse(&mlp.forward(&xv), &y).item());
    for _ in 0..1500 {
        mlp.params().iter().for_each(|p| p.zero_grad());
        mse(&mlp.forward(&xv), &y).backward();
        opt.step(&mlp.params(), 1e-2, 1.0);
    }
    let fin = no_grad(|| mse(&mlp.forward(&xv), &y).item());
    // The target's variance is about 0.17; a linear fit leaves most of it.
    assert!(initial > 0.05, "initial loss {initial}");
    assert!(fin < 0.005, "loss went from {initial} to only {fin}");
}

#[test]
fn micro_batch_accumulation_equals_the_full_batch() {
    let cpu = Cpu::<f64>::new();
    let mut rng = Rng::seed(11);
    let mlp = Mlp::new(2, 8, 1, &mut rng, &cpu);
    let (x, y) = dataset(12, &mut rng, &cpu);
    mse(&mlp.forward(&Var::constant(x.clone())), &y).backward();
    let full: Vec<Vec<f64>> = mlp.params().iter().map(|p| p.grad().unwrap().to_f64_vec()).collect();
    mlp.params().iter().for_each(|p| p.zero_grad());
    for i in 0..3 {
        let (xs, ys) = (x.narrow(0, 4 * i, 4), y.narrow(0, 4 * i, 4));
        // Each micro-batch's mean loss carries a third of the weight.
        mse(&mlp.forward(&Var::constant(xs)), &ys).mul_scalar(1.0 / 3.0).backward();
    }
    for (p, f) in mlp.params().iter().zip(full) {
        for (a, b) in p.grad().unwrap().to_f64_vec().iter().zip(f) {
            assert!((a - b).abs() < 1e-12, "{}: {a} vs {b}", p.name());
        }
    }
}

#[test]
fn no_grad_records_nothing_and_detach_cuts_the_graph() {
    let cpu = Cpu::<f64>::new();
    let w = Param::new("w", Tensor::ones(&[3], &cpu), true);
    let y = no_grad(|| w.var().mul_scalar(2.0).sum_all());
    assert!(!y.requires_grad());
    assert!(autograd::is_grad_enabled(), "no_grad restores recording");
    let z = w.var().mul_scalar(2.0).detach().mul(&w.var()).sum_all();
    z.backward();
    assert_eq!(w.grad().unwrap().to_f64_vec(), vec![2.0; 3]);
}

#[test]
fn cross_entropy_mean_ignores_rows() {
    let cpu = Cpu::<f64>::new();
    let logits = Var::constant(Tensor::zeros(&[3, 4], &cpu));
    let loss = logits.cross_entropy(&[0, 9, 2], Some(9), Reduction::Mean).item();
    assert!((loss - 4f64.ln()).abs() < 1e-12);
}

/// PyTorch's AdamW on one scalar, written out.
fn adamw_reference(p: f64, grads: &[f64], lr: f64, wd: f64, (b1, b2, eps): (f64, f64, f64)) -> f64 {
    let (mut p, mut m, mut v) = (p, 0.0, 0.0);
    for (t, &g) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        p *= 1.0 - lr * wd;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        p -= lr / (1.0 - b1.powi(t)) * m / (v.sqrt() / (1.0 - b2.powi(t)).sqrt() + eps);
    }
    p
}

#[test]
fn adamw_follows_pytorch_with_groups_and_decay_flags() {
    let cpu = Cpu::<f64>::new();
    let decayed = Param::new("w", Tensor::from_f64(&[1.0], &[1], &cpu), true);
    let plain = Param::new("norm.gain", Tensor::from_f64(&[1.0], &[1], &cpu), false);
    let slow = Param::new("ghc.static", Tensor::from_f64(&[1.0], &[1], &cpu), true);
    let rule = GroupRule { prefix: "ghc.".into(), lr_scale: 0.5, weight_decay: 0.0 };
    let cfg = AdamWConfig { weight_decay: 0.1, groups: vec![rule], ..Default::default() };
    let betas = (cfg.beta1, cfg.beta2, cfg.eps);
    let mut opt = AdamW::new(cfg);
    let grads = [0.3, -0.2, 0.5];
    for &g in &grads {
        for p in [&decayed, &plain, &slow] {
            p.zero_grad();
            p.var().mul_scalar(g).sum_all().backward();
        }
        opt.step(&[&decayed, &plain, &slow], 0.01, 1.0);
    }
    let close = |p: &Param<Cpu<f64>>, want: f64| assert!((p.value().item() - want).abs() < 1e-12, "{}", p.name());
    close(&decayed, adamw_reference(1.0, &grads, 0.01, 0.1, betas));
    close(&plain, adamw_reference(1.0, &grads, 0.01, 0.0, betas));
    close(&slow, adamw_reference(1.0, &grads, 0.005, 0.0, betas));
}

#[test]
fn sgd_momentum_matches_the_recurrence() {
    let cpu = Cpu::<f64>::new();
    let p = Param::new("w", Tensor::from_f64(&[2.0], &[1], &cpu), true);
    let mut opt = Sgd::new(SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 0.0, groups: vec![] });
    let (mut x, mut buf) = (2.0f64, 0.0);
    for _ in 0..5 {
        p.zero_grad();
        p.var().square().sum_all().backward(); // gradient 2x
        opt.step(&[&p], 0.1, 1.0);
        buf = 0.9 * buf + 2.0 * x;
        x -= 0.1 * buf;
    }
    assert!((p.value().item() - x).abs() < 1e-12);
}

#[test]
fn gradient_clipping_scales_to_the_max_norm() {
    let cpu = Cpu::<f64>::new();
    let a = Param::new("a", Tensor::from_f64(&[1.0, 1.0], &[2], &cpu), true);
    let b = Param::new("b", Tensor::from_f64(&[1.0], &[1], &cpu), true);
    // Gradients (3, 3) and (4·…): loss = 3a₀ + 3a₁ + 1b.
    a.var().mul_scalar(3.0).sum_all().add(&b.var().sum_all()).backward();
    let norm = global_grad_norm(&[&a, &b]);
    assert!((norm - 19f64.sqrt()).abs() < 1e-12);
    assert!((clip_scale(norm, 1.0) * norm - 1.0).abs() < 1e-6);
    assert_eq!(clip_scale(norm, 10.0), 1.0);
    assert_eq!(clip_scale(f64::NAN, 1.0), 1.0);
}

#[test]
fn schedules() {
    let cos = LrSchedule::WarmupCosine { warmup: 10, total: 110, min_ratio: 0.1 };
    assert!((cos.lr(0, 1.0) - 0.1).abs() < 1e-12);
    assert!((cos.lr(9, 1.0) - 1.0).abs() < 1e-12);
    assert!((cos.lr(10, 1.0) - 1.0).abs() < 1e-12);
    assert!((cos.lr(60, 1.0) - 0.55).abs() < 1e-12);
    assert!((cos.lr(110, 1.0) - 0.1).abs() < 1e-12);
    assert!((cos.lr(500, 1.0) - 0.1).abs() < 1e-12);
    let wsd = LrSchedule::WarmupStableDecay { warmup: 4, total: 100, decay: 20, min_ratio: 0.0 };
    assert!((wsd.lr(1, 2.0) - 1.0).abs() < 1e-12);
    assert_eq!(wsd.lr(50, 2.0), 2.0);
    assert!((wsd.lr(90, 2.0) - 1.0).abs() < 1e-12);
    assert_eq!(wsd.lr(100, 2.0), 0.0);
    assert_eq!(LrSchedule::Constant.lr(12345, 3e-4), 3e-4);
}
