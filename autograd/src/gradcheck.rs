//! Finite-difference gradient checks, for op tests and whole-model tests alike.
//!
//! Run them on an `f64` backend: central differences `(f(x+ε) − f(x−ε)) / 2ε` then agree
//! with exact gradients to ~1e-8, so a wrong backward rule cannot hide in float noise.

use crate::param::Param;
use crate::var::{no_grad, Var};
use tensor::{Backend, Rng, Tensor};

#[derive(Clone, Copy, Debug)]
pub struct GradCheckConfig {
    /// Finite-difference step.
    pub eps: f64,
    /// Pass when `|analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|)`.
    pub atol: f64,
    pub rtol: f64,
    /// Check at most this many (randomly chosen) elements per parameter.
    pub max_elements: usize,
    pub seed: u64,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        GradCheckConfig { eps: 1e-6, atol: 1e-7, rtol: 1e-5, max_elements: 64, seed: 0 }
    }
}

/// Checks the gradients that `loss()` (a one-element output) puts on `params` against
/// central differences, perturbing the parameters in place and restoring them after.
/// Returns a description of the first mismatches on failure.
pub fn check_param_gradients<B: Backend>(
    params: &[&Param<B>],
    loss: impl Fn() -> Var<B>,
    cfg: &GradCheckConfig,
) -> Result<(), String> {
    params.iter().for_each(|p| p.zero_grad());
    loss().backward();
    let mut rng = Rng::seed(cfg.seed);
    let mut failures = Vec::new();
    for p in params {
        let base = p.value().clone();
        let values = base.to_f64_vec();
        let analytic = p.grad().map(|g| g.to_f64_vec()).unwrap_or_else(|| vec![0.0; values.len()]);
        let mut idx: Vec<usize> = (0..values.len()).collect();
        if idx.len() > cfg.max_elements {
            rng.shuffle(&mut idx);
            idx.truncate(cfg.max_elements);
        }
        let eval_at = |i: usize, x: f64| {
            let mut v = values.clone();
            v[i] = x;
            p.set_value(Tensor::from_f64(&v, base.shape(), base.backend()));
            no_grad(&loss).item()
        };
        for i in idx {
            let numeric = (eval_at(i, values[i] + cfg.eps) - eval_at(i, values[i] - cfg.eps)) / (2.0 * cfg.eps);
            let a = analytic[i];
            if (a - numeric).abs() > cfg.atol + cfg.rtol * a.abs().max(numeric.abs()) || !a.is_finite() {
                failures.push(format!("{}[{i}]: analytic {a:.10e} vs numeric {numeric:.10e}", p.name()));
            }
        }
        p.set_value(base);
    }
    params.iter().for_each(|p| p.zero_grad());
    if failures.is_empty() {
        Ok(())
    } else {
        let n = failures.len();
        failures.truncate(8);
        Err(format!("{n} gradient mismatches:\n  {}", failures.join("\n  ")))
    }
}

/// Checks `f`'s gradients with respect to each of `inputs`. A non-scalar output is
/// reduced with fixed random weights, `Σ f(x)·w`, so every output element matters.
pub fn check_gradients<B: Backend>(
    inputs: &[Tensor<B>],
    f: impl Fn(&[Var<B>]) -> Var<B>,
    cfg: &GradCheckConfig,
) -> Result<(), String> {
    let params: Vec<Param<B>> =
        inputs.iter().enumerate().map(|(i, t)| Param::new(format!("input{i}"), t.clone(), false)).collect();
    let refs: Vec<&Param<B>> = params.iter().collect();
    let backend = inputs.first().expect("check_gradients needs an input").backend().clone();
    let weights = std::cell::OnceCell::new();
    check_param_gradients(
        &refs,
        || {
            let vars: Vec<Var<B>> = params.iter().map(Param::var).collect();
            let out = f(&vars);
            if out.value().numel() == 1 {
                return out.reshape(&[]);
            }
            let w = weights
                .get_or_init(|| Tensor::randn(out.shape(), 0.0, 1.0, &mut Rng::seed(cfg.seed ^ 0x5eed), &backend));
            out.mul(&Var::constant(w.clone())).sum_all()
        },
        cfg,
    )
}
