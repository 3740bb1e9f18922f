//! A small model and data set shared by the training tests.
#![allow(dead_code)] // each test binary uses its own subset

use autograd::{Param, Var};
use tensor::{Backend, Rng, Tensor};

/// A two-layer tanh MLP.
pub struct Mlp<B: Backend> {
    w1: Param<B>,
    b1: Param<B>,
    w2: Param<B>,
    b2: Param<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn new(inputs: usize, hidden: usize, outputs: usize, rng: &mut Rng, b: &B) -> Self {
        Mlp {
            w1: Param::new("w1", Tensor::randn(&[inputs, hidden], 0.0, 1.0 / (inputs as f64).sqrt(), rng, b), true),
            b1: Param::new("b1", Tensor::zeros(&[hidden], b), false),
            w2: Param::new("w2", Tensor::randn(&[hidden, outputs], 0.0, 1.0 / (hidden as f64).sqrt(), rng, b), true),
            b2: Param::new("b2", Tensor::zeros(&[outputs], b), false),
        }
    }
    pub fn forward(&self, x: &Var<B>) -> Var<B> {
        x.matmul(&self.w1.var()).add(&self.b1.var()).tanh().matmul(&self.w2.var()).add(&self.b2.var())
    }
    pub fn params(&self) -> Vec<&Param<B>> {
        vec![&self.w1, &self.b1, &self.w2, &self.b2]
    }
}

/// Inputs in [-1, 1]² and the nonlinear target sin(3·x₀)·x₁.
pub fn dataset<B: Backend>(n: usize, rng: &mut Rng, b: &B) -> (Tensor<B>, Tensor<B>) {
    let x = Tensor::rand_uniform(&[n, 2], -1.0, 1.0, rng, b);
    let xs = x.to_f64_vec();
    let y: Vec<f64> = xs.chunks(2).map(|p| (3.0 * p[0]).sin() * p[1]).collect();
    (x, Tensor::from_f64(&y, &[n, 1], b))
}

pub fn mse<B: Backend>(pred: &Var<B>, y: &Tensor<B>) -> Var<B> {
    pred.sub(&Var::constant(y.clone())).square().mean_all()
}
