//! Optimizers (AdamW, SGD with momentum) and global-norm gradient clipping.
//!
//! State is keyed by parameter name, so it survives re-creating the model (resume from a
//! checkpoint) and can be saved and restored by name.

use crate::param::Param;
use std::collections::HashMap;
use tensor::{AdamWStep, Backend, SgdStep, Tensor};

/// Per-group overrides, chosen by parameter-name prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRule {
    /// Parameters whose name starts with this prefix use this rule (first match wins).
    pub prefix: String,
    pub lr_scale: f64,
    /// Replaces the default weight decay for these parameters.
    pub weight_decay: f64,
}

/// The learning-rate multiplier and weight decay a parameter gets: the first matching
/// rule, else (1, `default_wd` if the parameter is flagged for decay, else 0).
fn settings<B: Backend>(p: &Param<B>, rules: &[GroupRule], default_wd: f64) -> (f64, f64) {
    match rules.iter().find(|r| p.name().starts_with(&r.prefix)) {
        Some(r) => (r.lr_scale, r.weight_decay),
        None => (1.0, if p.weight_decay() { default_wd } else { 0.0 }),
    }
}

/// The L2 norm of all parameter gradients together.
pub fn global_grad_norm<B: Backend>(params: &[&Param<B>]) -> f64 {
    // One squared-sum tensor per parameter, added on the device, one read-back.
    let mut total: Option<Tensor<B>> = None;
    for g in params.iter().filter_map(|p| p.grad()) {
        let s = g.square().sum_all();
        total = Some(match total {
            Some(t) => t.add(&s),
            None => s,
        });
    }
    total.map_or(0.0, |t| t.item().sqrt())
}

/// The factor that scales gradients down to `max_norm` (1 when already within it).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if norm.is_finite() && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay for parameters flagged for decay.
    pub weight_decay: f64,
    pub groups: Vec<GroupRule>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, groups: Vec::new() }
    }
}

/// AdamW moments of one parameter.
pub struct AdamState<B: Backend> {
    pub m: Tensor<B>,
    pub v: Tensor<B>,
}

/// AdamW with decoupled weight decay (PyTorch's formulation).
pub struct AdamW<B: Backend> {
    pub config: AdamWConfig,
    step: u64,
    state: HashMap<String, AdamState<B>>,
}

impl<B: Backend> AdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW { config, step: 0, state: HashMap::new() }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Updates every parameter that has a gradient, with `lr` and gradients multiplied by
    /// `grad_scale` (from clipping or gradient accumulation).
    pub fn step(&mut self, params: &[&Param<B>], lr: f64, grad_scale: f64) {
        self.step += 1;
        for p in params {
            let Some(grad) = p.grad() else { continue };
            let (lr_scale, wd) = settings(p, &self.config.groups, self.config.weight_decay);
            let h = AdamWStep {
                lr: lr * lr_scale,
                beta1: self.config.beta1,
                beta2: self.config.beta2,
                eps: self.config.eps,
                weight_decay: wd,
                step: self.step,
                grad_scale,
            };
            let st = self
                .state
                .entry(p.name().to_string())
                .or_insert_with(|| AdamState { m: grad.zeros_like(), v: grad.zeros_like() });
            p.value_mut().adamw_step(&grad, &mut st.m, &mut st.v, &h);
        }
    }

    /// The moments by parameter name, and the step count (for checkpoints).
    pub fn state(&self) -> (&HashMap<String, AdamState<B>>, u64) {
        (&self.state, self.step)
    }
    /// Restores moments and step count saved by [`AdamW::state`].
    pub fn load_state(&mut self, state: HashMap<String, AdamState<B>>, step: u64) {
        self.state = state;
        self.step = step;
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 weight decay (added to the gradient, as PyTorch's SGD) for flagged parameters.
    pub weight_decay: f64,
    pub groups: Vec<GroupRule>,
}

/// SGD with (optionally Nesterov) momentum.
pub struct Sgd<B: Backend> {
    pub config: SgdConfig,
    momentum: HashMap<String, Tensor<B>>,
}

impl<B: Backend> Sgd<B> {
    pub fn new(config: SgdConfig) -> Self {
        Sgd { config, momentum: HashMap::new() }
    }

    pub fn step(&mut self, params: &[&Param<B>], lr: f64, grad_scale: f64) {
        for p in params {
            let Some(grad) = p.grad() else { continue };
            let (lr_scale, wd) = settings(p, &self.config.groups, self.config.weight_decay);
            let h = SgdStep {
                lr: lr * lr_scale,
                momentum: self.config.momentum,
                weight_decay: wd,
                nesterov: self.config.nesterov,
                grad_scale,
            };
            let buf = self.momentum.entry(p.name().to_string()).or_insert_with(|| grad.zeros_like());
            p.value_mut().sgd_step(&grad, buf, &h);
        }
    }
}
