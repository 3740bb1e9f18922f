//! In-place optimizer updates, elementwise and parallel.

use super::strided::PAR_GRAIN;
use crate::element::Element;
use crate::ops::{AdamWStep, SgdStep};
use rayon::prelude::*;

/// PyTorch's AdamW: `p ← p·(1 − lr·wd)`, then the bias-corrected Adam step.
pub(crate) fn adamw<E: Element>(p: &mut [E], g: &[E], m: &mut [E], v: &mut [E], h: &AdamWStep) {
    let bc1 = 1.0 - h.beta1.powi(h.step as i32);
    let bc2 = 1.0 - h.beta2.powi(h.step as i32);
    let decay = E::from_f64(1.0 - h.lr * h.weight_decay);
    let (b1, b2) = (E::from_f64(h.beta1), E::from_f64(h.beta2));
    let (c1, c2) = (E::from_f64(1.0 - h.beta1), E::from_f64(1.0 - h.beta2));
    let step_size = E::from_f64(h.lr / bc1);
    let inv_sqrt_bc2 = E::from_f64(1.0 / bc2.sqrt());
    let (eps, scale) = (E::from_f64(h.eps), E::from_f64(h.grad_scale));
    p.par_chunks_mut(PAR_GRAIN)
        .zip(g.par_chunks(PAR_GRAIN))
        .zip(m.par_chunks_mut(PAR_GRAIN).zip(v.par_chunks_mut(PAR_GRAIN)))
        .for_each(|((p, g), (m, v))| {
            for i in 0..p.len() {
                let gi = g[i] * scale;
                m[i] = b1 * m[i] + c1 * gi;
                v[i] = b2 * v[i] + c2 * gi * gi;
                let denom = v[i].sqrt() * inv_sqrt_bc2 + eps;
                p[i] = p[i] * decay - step_size * m[i] / denom;
            }
        });
}

/// PyTorch's SGD: L2 weight decay added to the gradient, momentum buffer
/// `b ← μ·b + g`, Nesterov optional.
pub(crate) fn sgd<E: Element>(p: &mut [E], g: &[E], buf: &mut [E], h: &SgdStep) {
    let (lr, mu, wd, scale) =
        (E::from_f64(h.lr), E::from_f64(h.momentum), E::from_f64(h.weight_decay), E::from_f64(h.grad_scale));
    p.par_chunks_mut(PAR_GRAIN).zip(g.par_chunks(PAR_GRAIN)).zip(buf.par_chunks_mut(PAR_GRAIN)).for_each(
        |((p, g), b)| {
            for i in 0..p.len() {
                let gi = g[i] * scale + wd * p[i];
                b[i] = mu * b[i] + gi;
                let step = if h.nesterov { gi + mu * b[i] } else { b[i] };
                p[i] -= lr * step;
            }
        },
    );
}
