//! Fused ops with hand-written backward: softmax / log-softmax, cross-entropy, RMSNorm,
//! GroupNorm, RoPE and attention. Each backward is checked against the reference's
//! explicit Jacobian and, on f64 backends, against central finite differences of the
//! backend's own forward.

use super::reference::{self as r, Arr};
use super::{
    any_view, arr, check, close, close_norm, close_scaled, close_with, ensure, is_f64, round, shape, tol_acc, Dist,
    Gen, View,
};
use crate::backend::{Backend, NormStats, RopeArgs};
use crate::tensor::Tensor;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

/// On f64 backends: the directional derivative `Σᵢ ⟨gradᵢ, uᵢ⟩` of a scalar function of
/// several inputs against `(f(x + h·u) − f(x − h·u)) / 2h`. `noise` bounds the size of
/// the intermediate values `f` sums (before any cancellation), which sets the rounding
/// error of the difference quotient.
fn finite_difference<B: Backend>(
    what: &str,
    xs: &[&Arr],
    grads: &[&Arr],
    g: &mut Gen<B>,
    noise: f64,
    f: impl Fn(&[Arr]) -> f64,
) -> TestCaseResult {
    if !is_f64::<B>() {
        return Ok(());
    }
    let us: Vec<Arr> = xs.iter().map(|x| Arr::new(&x.shape, g.values(x.numel(), Dist::Normal(1.0)))).collect();
    let central = |h: f64| -> f64 {
        let shifted =
            |sign: f64| -> Vec<Arr> { xs.iter().zip(&us).map(|(x, u)| x.zip(u, |a, d| a + sign * h * d)).collect() };
        (f(&shifted(1.0)) - f(&shifted(-1.0))) / (2.0 * h)
    };
    // Richardson extrapolation of two central differences: O(h⁴) error, so the check
    // holds even where the curvature is high (e.g. a norm over nearly equal values).
    let h = 1e-5;
    let fd = (4.0 * central(h / 2.0) - central(h)) / 3.0;
    let an: f64 = grads.iter().zip(&us).map(|(gr, u)| gr.dot(u)).sum();
    let scale: f64 =
        grads.iter().zip(&us).map(|(gr, u)| gr.data.iter().zip(&u.data).map(|(a, b)| (a * b).abs()).sum::<f64>()).sum();
    ensure((fd - an).abs() <= 1e-6 * scale + 1e-8 * noise, || {
        format!("{what}: directional derivative {an:e}, central difference {fd:e} (scale {scale:e}, noise {noise:e})")
    })
}

/// `Σ |wᵢ|·sᵢ`: the noise bound of `⟨F(x), w⟩` when `F`'s element `i` is computed from
/// terms of size `sᵢ`.
fn weighted(w: &Arr, s: impl Fn(usize) -> f64) -> f64 {
    w.data.iter().enumerate().map(|(i, v)| v.abs() * s(i)).sum()
}

/// `⟨t, w⟩` for a tensor and a reference array.
fn dot<B: Backend>(t: &Tensor<B>, w: &Arr) -> f64 {
    arr(t).dot(w)
}

fn softmax_ref(x: &Arr, log: bool) -> Arr {
    let rows = r::rows(x).into_iter().map(|row| {
        let p = r::softmax_row(&row);
        if log {
            let l = r::logsumexp(&row);
            row.iter().map(|v| v - l).collect()
        } else {
            p
        }
    });
    r::from_rows(&x.shape, rows.collect())
}

/// `1 + |x| + |logsumexp(row)|` per element: `x − logsumexp` is rounded relative to it,
/// and `exp` turns that into a relative error of the probability.
fn shift_scale(x: &Arr) -> Vec<f64> {
    r::rows(x)
        .iter()
        .flat_map(|row| {
            let l = r::logsumexp(row).abs();
            row.iter().map(move |v| 1.0 + v.abs() + l).collect::<Vec<_>>()
        })
        .collect()
}

fn softmax_backward_ref(x: &Arr, dy: &Arr, log: bool) -> Arr {
    let rows = r::rows(x).iter().zip(r::rows(dy)).map(|(x, dy)| r::softmax_backward_row(x, &dy, log)).collect();
    r::from_rows(&x.shape, rows)
}

/// Sometimes (one case in four) masks logits to `−∞` (never a row's first entry); the
/// masked tensor is then a contiguous result of `masked_fill`. Returns whether it masked.
fn mask_logits<B: Backend>(g: &mut Gen<B>, x: Tensor<B>, xa: Arr) -> (Tensor<B>, Arr, bool) {
    if g.below(4) != 0 {
        return (x, xa, false);
    }
    let last = xa.rank() - 1;
    let mask = Arr::from_fn(&xa.shape, |i| if i[last] > 0 && g.below(3) == 0 { 1.0 } else { 0.0 });
    let masked = xa.zip(&mask, |v, m| if m != 0.0 { f64::NEG_INFINITY } else { v });
    (x.masked_fill(&g.upload(&mask), f64::NEG_INFINITY), masked, true)
}

fn check_softmax<B: Backend>(g: &mut Gen<B>, s: &[usize], vx: View, vg: View, spread: f64) -> TestCaseResult {
    let (x, xa) = g.input(s, vx, Dist::Normal(spread));
    let (x, xa, masked) = mask_logits(g, x, xa);
    let tol = tol_acc::<B>();
    let (p, scale) = (softmax_ref(&xa, false), shift_scale(&xa));
    let p_scale: Vec<f64> = p.data.iter().zip(&scale).map(|(&p, &s)| if p == 0.0 { 0.0 } else { p * s }).collect();
    close_with(&format!("softmax {s:?}"), &x.softmax(), &p, &p_scale, tol)?;
    close_with(&format!("log_softmax {s:?}"), &x.log_softmax(), &softmax_ref(&xa, true), &scale, tol)?;
    let (dy, dya) = g.input(s, vg, Dist::Normal(1.0));
    for log in [false, true] {
        let y = g.upload(&round::<B>(&softmax_ref(&xa, log)));
        let want = softmax_backward_ref(&xa, &dya, log);
        close_norm(&format!("softmax_backward {s:?} (log {log})"), &y.softmax_backward(&dy, log), &want, tol)?;
        let w = dya.clone();
        let y = if log { g.upload(&xa).log_softmax() } else { g.upload(&xa).softmax() };
        let grad = arr(&y.softmax_backward(&g.upload(&w), log));
        if masked {
            continue;
        }
        let b = g.b.clone();
        let ya = softmax_ref(&xa, log);
        let xmax = xa.max_abs();
        let noise = weighted(&w, |i| (1.0 + ya.data[i].abs()) * (1.0 + xmax));
        finite_difference(&format!("softmax_backward (log {log})"), &[&xa], &[&grad], g, noise, |xs| {
            let x = Tensor::from_f64(&xs[0].data, &xs[0].shape, &b);
            dot(&if log { x.log_softmax() } else { x.softmax() }, &w)
        })?;
    }
    Ok(())
}

/// Softmax and log-softmax over the last axis of strided inputs (also with large logits),
/// and `softmax_backward` for both; one case large enough for parallel rows.
pub fn softmax<B: Backend>(b: &B) {
    let strat = (
        shape(0..=2, 1..=4),
        1..=9usize,
        any_view(),
        any_view(),
        prop::sample::select(vec![1.0, 12.0, 300.0]),
        any::<u64>(),
    );
    check("softmax", 1.0, strat, |(mut s, last, vx, vg, spread, seed)| {
        s.push(last);
        check_softmax(&mut Gen::new(b, seed), &s, vx, vg, spread)
    });
    check_softmax(&mut Gen::new(b, 3), &[600, 128], View::Narrowed, View::Transposed, 2.0)
        .unwrap_or_else(|e| panic!("softmax (large): {e}"));
}

/// Cross-entropy loss and log-sum-exp per row, with no ignore index, an in-range ignore
/// index that some targets hit, and an out-of-range one (`-100` style); its backward
/// `(softmax − onehot)·dloss` against the reference.
pub fn cross_entropy<B: Backend>(b: &B) {
    let strat = ((1..=9usize, 1..=12usize, 0..4u8), any_view(), any_view(), any::<u64>());
    check("cross_entropy", 1.0, strat, |((rows, vocab, mode), vx, vg, seed)| {
        let mut g = Gen::new(b, seed);
        let spread = [1.0, 3.0, 300.0][g.below(3)];
        let (x, xa) = g.input(&[rows, vocab], vx, Dist::Normal(spread));
        let (x, xa, masked) = mask_logits(&mut g, x, xa);
        let mut targets = g.ids(rows, vocab);
        let ignore = match mode {
            0 => None,
            1 => Some(g.below(vocab) as u32),
            2 => Some(u32::MAX),
            _ => Some(vocab as u32 + 5),
        };
        if let Some(i) = ignore {
            for t in targets.iter_mut() {
                if g.below(3) == 0 {
                    *t = i;
                }
            }
            if ignore == Some(u32::MAX) {
                targets.iter_mut().for_each(|t| *t = (*t).min(vocab as u32 - 1));
            }
        }
        let active = |r: usize| Some(targets[r]) != ignore;
        let xr = r::rows(&xa);
        let lse: Vec<f64> = xr.iter().map(|row| r::logsumexp(row)).collect();
        let loss: Vec<f64> =
            (0..rows).map(|r| if active(r) { lse[r] - xr[r][targets[r] as usize] } else { 0.0 }).collect();
        let scale: Vec<f64> = xr.iter().map(|row| Arr::new(&[vocab], row.clone()).max_abs()).collect();
        let tol = tol_acc::<B>();
        let (gl, glse) = x.cross_entropy(&targets, ignore);
        close_scaled("cross_entropy loss", &gl.to_f64_vec(), &loss, Some(&scale), tol)?;
        close_scaled("cross_entropy lse", &glse.to_f64_vec(), &lse, Some(&scale), tol)?;
        ensure(gl.shape() == [rows] && glse.shape() == [rows], || {
            format!("shapes {:?} {:?}", gl.shape(), glse.shape())
        })?;

        let (dl, dla) = g.input(&[rows], vg, Dist::Normal(1.0));
        let want = Arr::from_fn(&[rows, vocab], |i| {
            let (r, c) = (i[0], i[1]);
            if !active(r) {
                return 0.0;
            }
            (r::softmax_row(&xr[r])[c] - f64::from(c == targets[r] as usize)) * dla.data[r]
        });
        let lse_t = g.upload(&round::<B>(&Arr::new(&[rows], lse.clone())));
        let shift = shift_scale(&xa);
        let bscale = Arr::from_fn(&[rows, vocab], |i| {
            let p = r::softmax_row(&xr[i[0]])[i[1]];
            if p == 0.0 {
                0.0
            } else {
                (p * shift[i[0] * vocab + i[1]] * dla.data[i[0]]).abs()
            }
        });
        let got = x.cross_entropy_backward(&lse_t, &targets, ignore, &dl);
        close_with("cross_entropy_backward", &got, &want, &bscale.data, tol)?;

        if masked {
            return Ok(());
        }
        let grad = arr(&x.cross_entropy_backward(&glse, &targets, ignore, &dl));
        let bk = b.clone();
        let xmax = xa.max_abs();
        let noise = weighted(&dla, |_| 1.0 + 2.0 * xmax);
        finite_difference("cross_entropy_backward", &[&xa], &[&grad], &mut g, noise, |xs| {
            let x = Tensor::from_f64(&xs[0].data, &xs[0].shape, &bk);
            dot(&x.cross_entropy(&targets, ignore).0, &dla)
        })
    });
}

/// Normalisation reference over the last axis in `groups` groups, with the gradients for
/// `dy` and, per element, the magnitude of the terms each result is computed from (its
/// rounding scale: with nearly equal values in a group, `x − mean` cancels and `rstd`
/// amplifies the rounding of the mean).
struct NormRef {
    y: Arr,
    mean: Vec<f64>,
    rstd: Vec<f64>,
    dx: Arr,
    dgain: Arr,
    dbias: Arr,
    y_scale: Vec<f64>,
    dx_scale: Vec<f64>,
    dgain_scale: Vec<f64>,
    dbias_scale: Vec<f64>,
}

fn norm_ref(x: &Arr, groups: usize, gain: Option<&Arr>, bias: Option<&Arr>, dy: &Arr, eps: f64, rms: bool) -> NormRef {
    let c = *x.shape.last().unwrap();
    let gs = c / groups;
    let mut o = NormRef {
        y: Arr::zeros(&x.shape),
        mean: vec![],
        rstd: vec![],
        dx: Arr::zeros(&x.shape),
        dgain: Arr::zeros(&[c]),
        dbias: Arr::zeros(&[c]),
        y_scale: vec![0.0; x.numel()],
        dx_scale: vec![0.0; x.numel()],
        dgain_scale: vec![0.0; c],
        dbias_scale: vec![0.0; c],
    };
    let gain_at = |i: usize| gain.map_or(1.0, |g| g.data[i]);
    for (row_i, (row, dyr)) in r::rows(x).iter().zip(r::rows(dy)).enumerate() {
        for grp in 0..groups {
            let range = grp * gs..(grp + 1) * gs;
            let dxhat: Vec<f64> = range.clone().map(|i| dyr[i] * gain_at(i)).collect();
            let (xhat, rs, mu, dxg) = r::norm_group(&row[range.clone()], &dxhat, eps, rms);
            o.mean.push(mu);
            o.rstd.push(rs);
            // Size of x̂ and of its rounding error, in units of the element's precision.
            let k = 1.0 + rs * row[range.clone()].iter().fold(0.0, |m: f64, v| m.max(v.abs()));
            let mean_abs_d = dxhat.iter().map(|d| d.abs()).sum::<f64>() / gs as f64;
            for (j, i) in range.enumerate() {
                let at = row_i * c + i;
                o.y.data[at] = xhat[j] * gain_at(i) + bias.map_or(0.0, |b| b.data[i]);
                o.y_scale[at] = k * gain_at(i).abs() + bias.map_or(0.0, |b| b.data[i].abs());
                o.dx.data[at] = dxg[j];
                o.dx_scale[at] = rs * (dxhat[j].abs() + mean_abs_d * (1.0 + k * k));
                o.dgain.data[i] += dyr[i] * xhat[j];
                o.dgain_scale[i] += (dyr[i] * k).abs();
                o.dbias.data[i] += dyr[i];
                o.dbias_scale[i] += dyr[i].abs();
            }
        }
    }
    o
}

/// Affine parameters as plain, narrowed or strided vectors.
fn param<B: Backend>(g: &mut Gen<B>, c: usize, present: bool, d: Dist) -> Option<(Tensor<B>, Arr)> {
    present.then(|| {
        let view = [View::Contiguous, View::Narrowed, View::Broadcast][g.below(3)];
        g.input(&[c], view, d)
    })
}

/// RMSNorm with and without gain on strided inputs: output, saved `rstd`, and backward
/// (`dx`, `dgain`); one case large enough for parallel rows and the parallel gain sum.
pub fn rms_norm<B: Backend>(b: &B) {
    let strat = (shape(0..=2, 1..=4), 1..=12usize, any_view(), any_view(), any::<bool>(), any::<u64>());
    check("rms_norm", 1.0, strat, |(mut s, c, vx, vg, has_gain, seed)| {
        s.push(c);
        check_rms(&mut Gen::new(b, seed), &s, vx, vg, has_gain)
    });
    check_rms(&mut Gen::new(b, 5), &[600, 96], View::Narrowed, View::Transposed, true)
        .unwrap_or_else(|e| panic!("rms_norm (large): {e}"));
}

fn check_rms<B: Backend>(g: &mut Gen<B>, s: &[usize], vx: View, vg: View, has_gain: bool) -> TestCaseResult {
    let c = *s.last().unwrap();
    let eps = [1e-5, 1e-6, 0.1][g.below(3)];
    let (x, xa) = g.input(s, vx, Dist::Normal(1.5));
    let gain = param(g, c, has_gain, Dist::Normal(1.0));
    let (dy, dya) = g.input(s, vg, Dist::Normal(1.0));
    let nr = norm_ref(&xa, 1, gain.as_ref().map(|p| &p.1), None, &dya, eps, true);
    let tol = tol_acc::<B>();
    let gt = gain.as_ref().map(|p| &p.0);
    let (y, stats) = x.rms_norm(gt, eps);
    close_with(&format!("rms_norm {s:?}"), &y, &nr.y, &nr.y_scale, tol)?;
    let rows = nr.rstd.len();
    close("rms_norm rstd", &stats.rstd, &Arr::new(&[rows], nr.rstd.clone()), tol)?;
    ensure(stats.mean.is_none(), || "rms_norm saved a mean".into())?;

    let ref_stats = NormStats { mean: None, rstd: g.upload(&round::<B>(&Arr::new(&[rows], nr.rstd.clone()))) };
    let grads = x.rms_norm_backward(gt, &ref_stats, &dy);
    close_with("rms_norm_backward dx", &grads.dx, &nr.dx, &nr.dx_scale, tol)?;
    ensure(grads.dbias.is_none() && grads.dgain.is_some() == has_gain, || {
        "rms_norm_backward: wrong grads present".into()
    })?;
    if let Some(dg) = &grads.dgain {
        close_with("rms_norm_backward dgain", dg, &nr.dgain, &nr.dgain_scale, tol)?;
    }

    let grads = x.rms_norm_backward(gt, &stats, &dy);
    let (dx, dgain) = (arr(&grads.dx), grads.dgain.as_ref().map(arr));
    let bk = g.b.clone();
    let mut xs = vec![&xa];
    let mut gs = vec![&dx];
    if let (Some(p), Some(dg)) = (&gain, &dgain) {
        xs.push(&p.1);
        gs.push(dg);
    }
    let noise = weighted(&dya, |i| nr.y_scale[i]);
    finite_difference("rms_norm_backward", &xs, &gs, g, noise, |xs| {
        let x = Tensor::from_f64(&xs[0].data, &xs[0].shape, &bk);
        let gain = xs.get(1).map(|p| Tensor::from_f64(&p.data, &p.shape, &bk));
        dot(&x.rms_norm(gain.as_ref(), eps).0, &dya)
    })
}

/// GroupNorm with 1 group (LayerNorm) and several, every combination of gain and bias:
/// output, saved mean/rstd, backward (`dx`, `dgain`, `dbias`).
pub fn group_norm<B: Backend>(b: &B) {
    let strat = (
        shape(0..=2, 1..=4),
        (1..=3usize, 1..=5usize),
        any_view(),
        any_view(),
        (any::<bool>(), any::<bool>()),
        any::<u64>(),
    );
    check("group_norm", 1.5, strat, |(mut s, (groups, gs), vx, vg, (has_gain, has_bias), seed)| {
        s.push(groups * gs);
        check_group(&mut Gen::new(b, seed), &s, groups, vx, vg, has_gain, has_bias)
    });
    check_group(&mut Gen::new(b, 6), &[400, 96], 4, View::Narrowed, View::Transposed, true, true)
        .unwrap_or_else(|e| panic!("group_norm (large): {e}"));
}

fn check_group<B: Backend>(
    g: &mut Gen<B>,
    s: &[usize],
    groups: usize,
    vx: View,
    vg: View,
    has_gain: bool,
    has_bias: bool,
) -> TestCaseResult {
    let c = *s.last().unwrap();
    let eps = [1e-5, 1e-6, 0.1][g.below(3)];
    let what = format!("group_norm {s:?} in {groups} groups (gain {has_gain}, bias {has_bias})");
    let (x, xa) = g.input(s, vx, Dist::Normal(1.5));
    let gain = param(g, c, has_gain, Dist::Normal(1.0));
    let bias = param(g, c, has_bias, Dist::Normal(1.0));
    let (dy, dya) = g.input(s, vg, Dist::Normal(1.0));
    let nr = norm_ref(&xa, groups, gain.as_ref().map(|p| &p.1), bias.as_ref().map(|p| &p.1), &dya, eps, false);
    let tol = tol_acc::<B>();
    let (gt, bt) = (gain.as_ref().map(|p| &p.0), bias.as_ref().map(|p| &p.0));
    let (y, stats) = x.group_norm(groups, gt, bt, eps);
    close_with(&what, &y, &nr.y, &nr.y_scale, tol)?;
    let n = nr.mean.len();
    let mean_t = stats.mean.as_ref().unwrap_or_else(|| panic!("{what}: no saved mean"));
    let mean_scale: Vec<f64> = r::rows(&xa.map(f64::abs))
        .iter()
        .flat_map(|row| {
            row.chunks(s[s.len() - 1] / groups).map(|g| g.iter().sum::<f64>() / g.len() as f64).collect::<Vec<_>>()
        })
        .collect();
    close_with(&format!("{what}: mean"), mean_t, &Arr::new(&[n], nr.mean.clone()), &mean_scale, tol)?;
    close(&format!("{what}: rstd"), &stats.rstd, &Arr::new(&[n], nr.rstd.clone()), tol)?;

    let ref_stats = NormStats {
        mean: Some(g.upload(&round::<B>(&Arr::new(&[n], nr.mean.clone())))),
        rstd: g.upload(&round::<B>(&Arr::new(&[n], nr.rstd.clone()))),
    };
    let grads = x.group_norm_backward(groups, gt, has_bias, &ref_stats, &dy);
    close_with(&format!("{what}: dx"), &grads.dx, &nr.dx, &nr.dx_scale, tol)?;
    ensure(grads.dgain.is_some() == has_gain && grads.dbias.is_some() == has_bias, || {
        format!("{what}: wrong grads present")
    })?;
    if let Some(dg) = &grads.dgain {
        close_with(&format!("{what}: dgain"), dg, &nr.dgain, &nr.dgain_scale, tol)?;
    }
    if let Some(db) = &grads.dbias {
        close_with(&format!("{what}: dbias"), db, &nr.dbias, &nr.dbias_scale, tol)?;
    }

    let grads = x.group_norm_backward(groups, gt, has_bias, &stats, &dy);
    let (dx, dgain, dbias) = (arr(&grads.dx), grads.dgain.as_ref().map(arr), grads.dbias.as_ref().map(arr));
    let (mut xs, mut gs) = (vec![&xa], vec![&dx]);
    if let (Some(p), Some(d)) = (&gain, &dgain) {
        xs.push(&p.1);
        gs.push(d);
    }
    if let (Some(p), Some(d)) = (&bias, &dbias) {
        xs.push(&p.1);
        gs.push(d);
    }
    let bk = g.b.clone();
    let noise = weighted(&dya, |i| nr.y_scale[i]);
    finite_difference(&format!("{what}: backward"), &xs, &gs, g, noise, |xs| {
        let t = |a: &Arr| Tensor::from_f64(&a.data, &a.shape, &bk);
        let x = t(&xs[0]);
        let mut k = 1;
        let gain = has_gain.then(|| {
            k += 1;
            t(&xs[k - 1])
        });
        let bias = has_bias.then(|| t(&xs[k]));
        dot(&x.group_norm(groups, gain.as_ref(), bias.as_ref(), eps).0, &dya)
    })
}

/// RoPE, interleaved and rotate-half, at position offsets, on strided `[B,T,H,D]` views
/// (including a strided last axis) and non-dense tables: forward and inverse against the
/// reference, `inverse(rope(x)) = x`, and the adjoint identity
/// `⟨rope(x), y⟩ = ⟨x, rope_inverse(y)⟩`.
pub fn rope<B: Backend>(b: &B) {
    let strat = (
        (1..=2usize, 1..=6usize, 1..=3usize, 1..=4usize),
        0..=3usize,
        any::<bool>(),
        any_view(),
        any_view(),
        any::<u64>(),
    );
    check("rope", 1.0, strat, |((bs, t, h, half), pos_offset, interleaved, vx, vy, seed)| {
        let mut g = Gen::new(b, seed);
        let s = [bs, t, h, 2 * half];
        let max_pos = t + pos_offset + g.below(3);
        let angles = Arr::new(&[max_pos, half], g.values(max_pos * half, Dist::Uniform(-3.2, 3.2)));
        let (cosa, sina) = (round::<B>(&angles.map(f64::cos)), round::<B>(&angles.map(f64::sin)));
        // Tables as dense tensors, or as column slices of wider ones.
        let table = |g: &mut Gen<B>, a: &Arr| -> Tensor<B> {
            if g.coin() {
                g.upload(a)
            } else {
                let wide = Arr::from_fn(&[max_pos, half + 2], |i| {
                    if i[1] >= 1 && i[1] <= half {
                        a.at(&[i[0], i[1] - 1])
                    } else {
                        9.0
                    }
                });
                g.upload(&wide).narrow(1, 1, half)
            }
        };
        let (cos, sin) = (table(&mut g, &cosa), table(&mut g, &sina));
        let (x, xa) = g.input(&s, vx, Dist::Normal(1.0));
        let (y, ya) = g.input(&s, vy, Dist::Normal(1.0));
        let fwd = RopeArgs { pos_offset, interleaved, inverse: false };
        let inv = RopeArgs { inverse: true, ..fwd };
        let tol = tol_acc::<B>();
        let what = format!("rope {s:?} offset {pos_offset} interleaved {interleaved}");
        let rx = x.rope(&cos, &sin, fwd);
        close_norm(&what, &rx, &r::rope(&xa, &cosa, &sina, pos_offset, interleaved, false), tol)?;
        let iy = y.rope(&cos, &sin, inv);
        close_norm(&format!("{what} inverse"), &iy, &r::rope(&ya, &cosa, &sina, pos_offset, interleaved, true), tol)?;
        close_norm(&format!("{what} round trip"), &rx.rope(&cos, &sin, inv), &xa, tol)?;
        let (lhs, rhs) = (dot(&rx, &ya), dot(&iy, &xa));
        let scale: f64 = xa.data.iter().map(|v| v.abs()).sum::<f64>() * ya.max_abs() * 2.0;
        ensure((lhs - rhs).abs() <= tol.rel * scale + tol.abs, || {
            format!("{what}: ⟨rope x, y⟩ = {lhs}, ⟨x, rope⁻¹ y⟩ = {rhs}")
        })
    });
}

/// Attention inputs `q [B,Tq,Hq,D]`, `k`, `v [B,Tk,Hk,D]` in one of several layouts:
/// contiguous, head-major storage permuted to token-major, narrowed out of a fused qkv
/// projection, or random views (a strided last axis included).
fn attention_inputs<B: Backend>(
    g: &mut Gen<B>,
    layout: u8,
    (bs, tq, tk, hq, hk, d): AttnDims,
    views: [View; 3],
) -> [(Tensor<B>, Arr); 3] {
    let (sq, skv) = ([bs, tq, hq, d], [bs, tk, hk, d]);
    let n = Dist::Normal(1.0);
    match layout {
        0 => {
            [g.input(&sq, View::Contiguous, n), g.input(&skv, View::Contiguous, n), g.input(&skv, View::Contiguous, n)]
        }
        1 => {
            let mut head_major = |s: [usize; 4]| {
                let (t, a) = g.dense(&[s[0], s[2], s[1], s[3]], n);
                (t.permute(&[0, 2, 1, 3]), a.permute(&[0, 2, 1, 3]))
            };
            [head_major(sq), head_major(skv), head_major(skv)]
        }
        2 => {
            // One projection output [B, Tk, Hq + 2·Hk, D]; queries are its last Tq tokens.
            let (t, a) = g.dense(&[bs, tk, hq + 2 * hk, d], n);
            let part = |h0: usize, h: usize, t0: usize| {
                (t.narrow(2, h0, h).narrow(1, t0, tk - t0), a.narrow(2, h0, h).narrow(1, t0, tk - t0))
            };
            [part(0, hq, tk - tq), part(hq, hk, 0), part(hq + hk, hk, 0)]
        }
        _ => [g.input(&sq, views[0], n), g.input(&skv, views[1], n), g.input(&skv, views[2], n)],
    }
}

/// `(batch, seq_q, seq_kv, q_heads, kv_heads, head_dim)`.
type AttnDims = (usize, usize, usize, usize, usize, usize);

type AttnCase = ((usize, usize, usize, usize), (bool, bool, usize, usize), bool, u8, [View; 4], u64);

fn attention_case() -> impl Strategy<Value = AttnCase> {
    (
        (1..=2usize, 1..=2usize, 1..=2usize, 1..=8usize),
        (any::<bool>(), any::<bool>(), 1..=9usize, any::<usize>()),
        any::<bool>(),
        0..4u8,
        [any_view(), any_view(), any_view(), any_view()],
        any::<u64>(),
    )
}

/// `(batch, seq_q, seq_kv, q_heads, kv_heads, head_dim)` of a case: short sequences, or
/// longer than the 64-row query block, with `seq_q ≤ seq_kv` (KV cache) half the time.
fn attention_dims(c: &AttnCase) -> AttnDims {
    let ((bs, hk, group, d), (long, cached, short, pick), ..) = *c;
    let tk = if long { 65 + pick % 12 } else { short };
    let tq = if cached { 1 + pick % tk } else { tk };
    (bs, tq, tk, hk * group, hk, d)
}

fn check_attention<B: Backend>(
    g: &mut Gen<B>,
    dims: AttnDims,
    causal: bool,
    layout: u8,
    views: [View; 4],
    backward: bool,
) -> TestCaseResult {
    let (bs, tq, tk, hq, hk, d) = dims;
    let [(q, qa), (k, ka), (v, va)] = attention_inputs(g, layout, dims, [views[0], views[1], views[2]]);
    let scale = if g.coin() { 1.0 / (d as f64).sqrt() } else { g.value(Dist::Uniform(0.2, 1.5)) };
    let what = format!("attention B{bs} Tq{tq} Tk{tk} Hq{hq} Hk{hk} D{d} causal {causal} layout {layout}");
    let (dout, douta) = g.input(&[bs, tq, hq, d], views[3], Dist::Normal(1.0));
    let ra = r::attention(&qa, &ka, &va, &douta, causal, scale);
    let tol = tol_acc::<B>();
    if !backward {
        let (o, lse) = Tensor::attention(&q, &k, &v, causal, scale);
        close_with(&what, &o, &ra.out, &ra.out_mag.data, tol)?;
        return close_with(&format!("{what}: lse"), &lse, &ra.lse, &ra.lse_mag.data, tol);
    }
    let (o_ref, lse_ref) = (g.upload(&round::<B>(&ra.out)), g.upload(&round::<B>(&ra.lse)));
    let (dq, dk, dv) = Tensor::attention_backward(&q, &k, &v, &o_ref, &lse_ref, &dout, causal, scale);
    close_with(&format!("{what}: dq"), &dq, &ra.dq, &ra.dq_mag.data, tol)?;
    close_with(&format!("{what}: dk"), &dk, &ra.dk, &ra.dk_mag.data, tol)?;
    close_with(&format!("{what}: dv"), &dv, &ra.dv, &ra.dv_mag.data, tol)?;

    let (o, lse) = Tensor::attention(&q, &k, &v, causal, scale);
    let (dq, dk, dv) = Tensor::attention_backward(&q, &k, &v, &o, &lse, &dout, causal, scale);
    let (dq, dk, dv) = (arr(&dq), arr(&dk), arr(&dv));
    let bk = g.b.clone();
    let size = va.max_abs() * (1.0 + scale * d as f64 * qa.max_abs() * ka.max_abs());
    let noise = weighted(&douta, |_| size);
    finite_difference(&format!("{what}: backward"), &[&qa, &ka, &va], &[&dq, &dk, &dv], g, noise, |xs| {
        let t = |a: &Arr| Tensor::from_f64(&a.data, &a.shape, &bk);
        dot(&Tensor::attention(&t(&xs[0]), &t(&xs[1]), &t(&xs[2]), causal, scale).0, &douta)
    })
}

/// Fixed cases that every run covers: GQA across several 64-row query blocks, and a
/// KV-cache step (`seq_q < seq_kv`, causal offset).
const FIXED_ATTENTION: [(AttnDims, bool, u8); 4] = [
    ((1, 70, 70, 4, 2, 8), true, 2),
    ((1, 5, 70, 4, 2, 8), true, 1),
    ((2, 130, 130, 2, 1, 4), true, 0),
    ((1, 66, 80, 2, 2, 3), false, 3),
];

/// Attention forward: causal and not, GQA (`q_heads = 2·kv_heads`), sequences past the
/// 64-row query block, `seq_q < seq_kv` with the causal offset, strided q/k/v layouts.
pub fn attention<B: Backend>(b: &B) {
    check("attention", 1.0, attention_case(), |c| {
        let (.., causal, layout, views, seed) = c;
        check_attention(&mut Gen::new(b, seed), attention_dims(&c), causal, layout, views, false)
    });
    for (i, (dims, causal, layout)) in FIXED_ATTENTION.into_iter().enumerate() {
        check_attention(&mut Gen::new(b, i as u64), dims, causal, layout, [View::Mixed; 4], false)
            .unwrap_or_else(|e| panic!("attention (fixed case {i}): {e}"));
    }
}

/// Attention backward (`dq`, `dk`, `dv`) against the reference chain rule and, on f64,
/// finite differences of the forward; the same shapes and layouts as [`attention`].
pub fn attention_backward<B: Backend>(b: &B) {
    check("attention_backward", 1.0, attention_case(), |c| {
        let (.., causal, layout, views, seed) = c;
        check_attention(&mut Gen::new(b, seed), attention_dims(&c), causal, layout, views, true)
    });
    for (i, (dims, causal, layout)) in FIXED_ATTENTION.into_iter().enumerate() {
        check_attention(&mut Gen::new(b, i as u64), dims, causal, layout, [View::Mixed; 4], true)
            .unwrap_or_else(|e| panic!("attention_backward (fixed case {i}): {e}"));
    }
}
