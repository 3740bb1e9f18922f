//! Construction and initialisers, zero-copy views and reshape, indexing (index_select,
//! index_add, embedding), joining (concat, split, stack) and the optimizer steps.

use super::reference::{self as r, Arr};
use super::{
    any_view, arr, check, check_shape, close, close_norm, close_with, distinct_view, ensure, shape, tol_acc, Dist, Gen,
    View, EXACT,
};
use crate::backend::Backend;
use crate::element::Element;
use crate::ops::{AdamWStep, SgdStep};
use crate::rng::Rng;
use crate::tensor::Tensor;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

/// Constructors (`from_vec`, `from_f64`, `full`, `zeros`, `ones`, `scalar`, `zeros_like`,
/// `item`) and the seeded initialisers (`randn`, `rand_uniform`, `trunc_normal`) against
/// the generator's stream.
pub fn init<B: Backend>(b: &B) {
    check("init", 0.5, (shape(0..=3, 1..=5), any::<u64>()), |(s, seed)| {
        let mut g = Gen::new(b, seed);
        let n: usize = s.iter().product();
        let data = g.values(n, Dist::Normal(1.0));
        let want = Arr::new(&s, data.clone());
        let elems: Vec<B::Elem> = data.iter().map(|&x| B::Elem::from_f64(x)).collect();
        close("from_vec", &Tensor::from_vec(elems, &s, b), &want, EXACT)?;
        let t = Tensor::from_f64(&data, &s, b);
        close("from_f64", &t, &want, EXACT)?;
        ensure(t.numel() == n && t.rank() == s.len() && t.is_contiguous(), || format!("from_f64 {s:?}: metadata"))?;
        close("full", &Tensor::full(&s, -2.5, b), &Arr::new(&s, vec![-2.5; n]), EXACT)?;
        close("zeros", &Tensor::zeros(&s, b), &Arr::new(&s, vec![0.0; n]), EXACT)?;
        close("ones", &Tensor::ones(&s, b), &Arr::new(&s, vec![1.0; n]), EXACT)?;
        close("zeros_like", &t.zeros_like(), &Arr::new(&s, vec![0.0; n]), EXACT)?;
        let sc = Tensor::scalar(0.75, b);
        ensure(sc.shape().is_empty() && sc.item() == 0.75, || format!("scalar: {sc:?}"))?;
        if n > 0 {
            let first = t.reshape(&[n]).narrow(0, 0, 1);
            ensure(first.item() == data[0], || format!("item: {} vs {}", first.item(), data[0]))?;
        }

        let round = |x: f64| B::Elem::from_f64(x).to_f64();
        let (mean, std) = (0.5, 2.0);
        let mut stream = Rng::seed(seed);
        let want = Arr::new(&s, (0..n).map(|_| round(mean + std * stream.normal())).collect());
        close("randn", &Tensor::randn(&s, mean, std, &mut Rng::seed(seed), b), &want, EXACT)?;
        let mut stream = Rng::seed(seed);
        let want = Arr::new(&s, (0..n).map(|_| round(-1.0 + 4.0 * stream.uniform())).collect());
        close("rand_uniform", &Tensor::rand_uniform(&s, -1.0, 3.0, &mut Rng::seed(seed), b), &want, EXACT)?;
        let mut stream = Rng::seed(seed);
        let want = Arr::new(
            &s,
            (0..n)
                .map(|_| loop {
                    let x = 0.1 * stream.normal();
                    if (-0.15..=0.2).contains(&x) {
                        break round(x);
                    }
                })
                .collect(),
        );
        close("trunc_normal", &Tensor::trunc_normal(&s, 0.0, 0.1, -0.15, 0.2, &mut Rng::seed(seed), b), &want, EXACT)
    });
}

/// Whether two tensors share one storage (views must not copy).
fn shares<B: Backend>(a: &Tensor<B>, b: &Tensor<B>) -> bool {
    std::ptr::eq(a.storage(), b.storage())
}

/// A random shape with `n` elements: `n`'s prime factors grouped at random, with size-1
/// axes sprinkled in.
fn factor_shape<B: Backend>(g: &mut Gen<B>, mut n: usize) -> Vec<usize> {
    let mut primes = vec![];
    let mut p = 2;
    while n > 1 {
        while n.is_multiple_of(p) {
            primes.push(p);
            n /= p;
        }
        p += 1;
    }
    g.rng.shuffle(&mut primes);
    let mut dims: Vec<usize> = vec![];
    for p in primes {
        match dims.last_mut() {
            Some(d) if g.coin() => *d *= p,
            _ => dims.push(p),
        }
    }
    for _ in 0..g.below(3) {
        let at = g.below(dims.len() + 1);
        dims.insert(at, 1);
    }
    dims
}

/// A random chain of views (transpose, `.t()`, permute, narrow, split, unsqueeze,
/// squeeze, broadcast_to, reshape) on strided inputs: values after every step, storage
/// shared by the zero-copy ones, and `contiguous()` / `dense()` at the end.
pub fn views<B: Backend>(b: &B) {
    check(
        "views",
        2.0,
        (shape(0..=4, 1..=4), any_view(), prop::collection::vec(0..9u8, 1..=6), any::<u64>()),
        |(s, v, ops, seed)| {
            let mut g = Gen::new(b, seed);
            let (mut t, mut a) = g.input(&s, v, Dist::Normal(1.0));
            let mut log = format!("{s:?} {v:?}");
            for op in ops {
                let rank = a.rank();
                let prev = t.clone();
                let (nt, na, view): (Tensor<B>, Arr, bool) = match op {
                    0 if rank >= 1 => {
                        let (x, y) = (g.below(rank), g.below(rank));
                        log += &format!(" transpose({x},{y})");
                        (t.transpose(x, y), a.transpose(x, y), true)
                    }
                    1 if rank >= 2 => {
                        log += " t()";
                        (t.t(), a.transpose(rank - 2, rank - 1), true)
                    }
                    2 => {
                        let p = g.perm(rank);
                        log += &format!(" permute({p:?})");
                        (t.permute(&p), a.permute(&p), true)
                    }
                    3 if rank >= 1 => {
                        let ax = g.below(rank);
                        let len = 1 + g.below(a.shape[ax]);
                        let start = g.below(a.shape[ax] - len + 1);
                        log += &format!(" narrow({ax},{start},{len})");
                        (t.narrow(ax, start, len), a.narrow(ax, start, len), true)
                    }
                    4 if rank >= 1 => {
                        let ax = g.below(rank);
                        let cut = g.below(a.shape[ax] + 1);
                        let sizes = [cut, a.shape[ax] - cut];
                        let pick = if cut == 0 {
                            1
                        } else if cut == a.shape[ax] {
                            0
                        } else {
                            g.below(2)
                        };
                        log += &format!(" split({ax},{sizes:?})[{pick}]");
                        let parts = t.split(ax, &sizes);
                        ensure(parts.len() == 2, || "split: parts".into())?;
                        let start = if pick == 0 { 0 } else { cut };
                        (parts[pick].clone(), a.narrow(ax, start, sizes[pick]), true)
                    }
                    5 => {
                        let ax = g.below(rank + 1);
                        log += &format!(" unsqueeze({ax})");
                        (t.unsqueeze(ax), a.unsqueeze(ax), true)
                    }
                    6 if a.shape.contains(&1) => {
                        let ones: Vec<usize> = (0..rank).filter(|&i| a.shape[i] == 1).collect();
                        let ax = ones[g.below(ones.len())];
                        log += &format!(" squeeze({ax})");
                        (t.squeeze(ax), a.squeeze(ax), true)
                    }
                    7 => {
                        let mut target: Vec<usize> =
                            a.shape.iter().map(|&d| if d == 1 { 1 + g.below(3) } else { d }).collect();
                        if g.coin() {
                            target.insert(0, 1 + g.below(3));
                        }
                        log += &format!(" broadcast_to({target:?})");
                        (t.broadcast_to(&target), a.broadcast_to(&target), true)
                    }
                    _ => {
                        let target = factor_shape(&mut g, a.numel());
                        log += &format!(" reshape({target:?})");
                        (t.reshape(&target), a.reshape(&target), false)
                    }
                };
                t = nt;
                a = na;
                close(&log, &t, &a, EXACT)?;
                ensure(!view || shares(&t, &prev), || format!("{log}: the view copied its input"))?;
                ensure(t.rank() == a.rank() && t.numel() == a.numel(), || format!("{log}: metadata"))?;
                for ax in 0..a.rank() {
                    ensure(t.dim(ax) == a.shape[ax], || format!("{log}: dim({ax})"))?;
                }
            }
            let c = t.contiguous();
            close(&format!("{log} contiguous()"), &c, &a, EXACT)?;
            ensure(c.is_contiguous(), || format!("{log}: contiguous() is not contiguous"))?;
            ensure(!t.is_contiguous() || shares(&c, &t), || format!("{log}: contiguous() copied a contiguous tensor"))?;
            let d = t.dense();
            close(&format!("{log} dense()"), &d, &a, EXACT)?;
            ensure(d.is_contiguous() && d.layout().offset() == 0, || format!("{log}: dense() layout {:?}", d.layout()))
        },
    );
}

/// Reshape of contiguous (a view sharing storage) and non-contiguous inputs (a view where
/// the strides allow, else a copy) to random factorizations, and back.
pub fn reshape<B: Backend>(b: &B) {
    check("reshape", 1.0, (shape(0..=4, 1..=5), any_view(), any::<u64>()), |(s, v, seed)| {
        let mut g = Gen::new(b, seed);
        let (t, a) = g.input(&s, v, Dist::Normal(1.0));
        let target = factor_shape(&mut g, a.numel());
        let what = format!("reshape {s:?} ({v:?}, layout {:?}) to {target:?}", t.layout());
        let rt = t.reshape(&target);
        close(&what, &rt, &a.reshape(&target), EXACT)?;
        ensure(!t.is_contiguous() || shares(&rt, &t), || format!("{what}: copied a contiguous input"))?;
        close(&format!("{what} and back"), &rt.reshape(&s), &a, EXACT)?;
        let flat = t.reshape(&[a.numel()]);
        close(&format!("{what}: flatten"), &flat, &a.reshape(&[a.numel()]), EXACT)
    });
}

/// `index_select` along every axis of strided inputs with repeated ids, and `embedding`
/// on contiguous and strided tables.
pub fn index_select<B: Backend>(b: &B) {
    let strat = (shape(1..=4, 1..=5), any::<prop::sample::Index>(), 0..=6usize, any_view(), any::<u64>());
    check("index_select", 1.0, strat, |(s, axis, n, v, seed)| {
        let mut g = Gen::new(b, seed);
        let axis = axis.index(s.len());
        let (x, xa) = g.input(&s, v, Dist::Normal(1.0));
        let ids = g.ids(n, s[axis]);
        let mut out = s.clone();
        out[axis] = n;
        let want = Arr::from_fn(&out, |i| {
            let mut src = i.to_vec();
            src[axis] = ids[i[axis]] as usize;
            xa.at(&src)
        });
        close(&format!("index_select axis {axis} of {s:?} ids {ids:?}"), &x.index_select(axis, &ids), &want, EXACT)?;

        let (vocab, dim) = (s[0], s.iter().skip(1).product::<usize>());
        let (table, ta) = g.input(&[vocab, dim], v, Dist::Normal(1.0));
        let ids = g.ids(n, vocab);
        let want = Arr::from_fn(&[n, dim], |i| ta.at(&[ids[i[0]] as usize, i[1]]));
        close(&format!("embedding [{vocab}, {dim}] ids {ids:?}"), &table.embedding(&ids), &want, EXACT)
    });
}

/// `index_add` along every axis with repeated ids (which accumulate), and the adjoint
/// identity `⟨index_select(x), y⟩ = ⟨x, index_add(y)⟩`.
pub fn index_add<B: Backend>(b: &B) {
    let strat = (shape(1..=4, 1..=4), any::<prop::sample::Index>(), 1..=5usize, any_view(), any::<u64>());
    check("index_add", 1.0, strat, |(s, axis, size, v, seed)| {
        let mut g = Gen::new(b, seed);
        let axis = axis.index(s.len());
        let (src, sa) = g.input(&s, v, Dist::Normal(1.0));
        let ids = g.ids(s[axis], size);
        let mut out = s.clone();
        out[axis] = size;
        let (mut want, mut scale) = (Arr::zeros(&out), Arr::zeros(&out));
        r::for_each_index(&s, |i| {
            let mut dst = i.to_vec();
            dst[axis] = ids[i[axis]] as usize;
            *want.at_mut(&dst) += sa.at(i);
            *scale.at_mut(&dst) += sa.at(i).abs();
        });
        let what = format!("index_add axis {axis} of {s:?} into {size} with ids {ids:?}");
        let got = src.index_add(axis, &ids, size);
        close_with(&what, &got, &want, &scale.data, tol_acc::<B>())?;

        let (x, xa) = g.input(&out, View::Contiguous, Dist::Normal(1.0));
        let lhs = arr(&x.index_select(axis, &ids)).dot(&sa);
        let rhs = xa.dot(&arr(&got));
        let bound = xa.data.iter().map(|v| v.abs()).sum::<f64>() * sa.max_abs() * 4.0;
        ensure((lhs - rhs).abs() <= tol_acc::<B>().rel * bound + 1e-12, || format!("{what}: adjoint {lhs} vs {rhs}"))
    });
}

/// `concat` of strided parts along every axis, `split` back into them, and `stack`.
pub fn concat_split_stack<B: Backend>(b: &B) {
    let strat = (
        shape(1..=4, 1..=4),
        any::<prop::sample::Index>(),
        prop::collection::vec((1..=4usize, any_view()), 1..=4),
        any::<u64>(),
    );
    check("concat_split_stack", 1.0, strat, |(s, axis, parts, seed)| {
        let mut g = Gen::new(b, seed);
        let axis = axis.index(s.len());
        let (mut ts, mut arrs, mut sizes) = (vec![], vec![], vec![]);
        for &(n, v) in &parts {
            let mut ps = s.clone();
            ps[axis] = n;
            let (t, a) = g.input(&ps, v, Dist::Normal(1.0));
            ts.push(t);
            arrs.push(a);
            sizes.push(n);
        }
        let total: usize = sizes.iter().sum();
        let mut out = s.clone();
        out[axis] = total;
        let want = Arr::from_fn(&out, |i| {
            let (mut k, mut j) = (0, i[axis]);
            while j >= sizes[k] {
                j -= sizes[k];
                k += 1;
            }
            let mut src = i.to_vec();
            src[axis] = j;
            arrs[k].at(&src)
        });
        let what = format!("concat {sizes:?} along {axis} of {s:?}");
        let joined = Tensor::concat(&ts, axis);
        close(&what, &joined, &want, EXACT)?;
        let pieces = joined.split(axis, &sizes);
        ensure(pieces.len() == sizes.len(), || format!("{what}: split gave {} pieces", pieces.len()))?;
        for (k, (p, a)) in pieces.iter().zip(&arrs).enumerate() {
            close(&format!("{what}: split piece {k}"), p, a, EXACT)?;
        }

        let sax = g.below(s.len() + 1);
        let (mut same, mut same_a) = (vec![], vec![]);
        for &(_, v) in &parts {
            let (t, a) = g.input(&s, v, Dist::Normal(1.0));
            same.push(t);
            same_a.push(a);
        }
        let mut out = s.clone();
        out.insert(sax, parts.len());
        let want = Arr::from_fn(&out, |i| {
            let mut src = i.to_vec();
            let k = src.remove(sax);
            same_a[k].at(&src)
        });
        let got = Tensor::stack(&same, sax);
        check_shape("stack", &got, &out)?;
        close(&format!("stack {} of {s:?} at {sax}", parts.len()), &got, &want, EXACT)
    });
}

fn pick<B: Backend, T: Copy>(g: &mut Gen<B>, options: &[T]) -> T {
    options[g.below(options.len())]
}

/// AdamW over several steps against PyTorch's formulas, from the backend's own state at
/// each step; the parameter may be a strided view and a kept clone must not change.
pub fn adamw_step<B: Backend>(b: &B) {
    check(
        "adamw_step",
        1.0,
        (shape(1..=3, 1..=6), 1..=4u64, distinct_view(), any_view(), any::<u64>()),
        |(s, steps, vp, vg, seed)| {
            let mut g = Gen::new(b, seed);
            let h0 = AdamWStep {
                lr: pick(&mut g, &[1e-3, 0.01, 0.1]),
                beta1: pick(&mut g, &[0.9, 0.8, 0.0]),
                beta2: pick(&mut g, &[0.999, 0.95]),
                eps: pick(&mut g, &[1e-8, 1e-6]),
                weight_decay: pick(&mut g, &[0.0, 0.01, 0.1]),
                step: 1,
                grad_scale: pick(&mut g, &[1.0, 0.5, 2.0]),
            };
            let (mut p, _) = g.input(&s, vp, Dist::Normal(1.0));
            let (mut m, mut v) = (Tensor::zeros(&s, b), Tensor::zeros(&s, b));
            for step in 1..=steps {
                let h = AdamWStep { step, ..h0 };
                let (grad, ga) = g.input(&s, vg, Dist::Normal(1.0));
                let (pa, ma, va) = (arr(&p), arr(&m), arr(&v));
                let kept = p.clone();
                p.adamw_step(&grad, &mut m, &mut v, &h);
                let (bc1, bc2) = (1.0 - h.beta1.powi(step as i32), 1.0 - h.beta2.powi(step as i32));
                let mut want = (pa.clone(), ma.clone(), va.clone());
                for i in 0..pa.numel() {
                    let gi = ga.data[i] * h.grad_scale;
                    let mut pi = pa.data[i] * (1.0 - h.lr * h.weight_decay);
                    let mi = h.beta1 * ma.data[i] + (1.0 - h.beta1) * gi;
                    let vi = h.beta2 * va.data[i] + (1.0 - h.beta2) * gi * gi;
                    pi -= h.lr / bc1 * mi / (vi.sqrt() / bc2.sqrt() + h.eps);
                    want.0.data[i] = pi;
                    want.1.data[i] = mi;
                    want.2.data[i] = vi;
                }
                let what = format!("adamw step {step} {h:?}");
                close_norm(&format!("{what}: param"), &p, &want.0, tol_acc::<B>())?;
                close_norm(&format!("{what}: m"), &m, &want.1, tol_acc::<B>())?;
                close_norm(&format!("{what}: v"), &v, &want.2, tol_acc::<B>())?;
                close(&format!("{what}: a clone of the parameter"), &kept, &pa, EXACT)?;
            }
            Ok(())
        },
    );
}

/// SGD (momentum, Nesterov, L2 weight decay added to the gradient, as PyTorch) over
/// several steps against the scalar formulas.
pub fn sgd_step<B: Backend>(b: &B) {
    check(
        "sgd_step",
        1.0,
        (shape(1..=3, 1..=6), 1..=4u64, distinct_view(), any_view(), any::<u64>()),
        |(s, steps, vp, vg, seed)| {
            let mut g = Gen::new(b, seed);
            let h = SgdStep {
                lr: pick(&mut g, &[1e-3, 0.01, 0.1]),
                momentum: pick(&mut g, &[0.0, 0.9, 0.5]),
                weight_decay: pick(&mut g, &[0.0, 0.01, 0.1]),
                nesterov: g.coin(),
                grad_scale: pick(&mut g, &[1.0, 0.5, 2.0]),
            };
            let (mut p, _) = g.input(&s, vp, Dist::Normal(1.0));
            let mut buf = Tensor::zeros(&s, b);
            for step in 1..=steps {
                let (grad, ga) = g.input(&s, vg, Dist::Normal(1.0));
                let (pa, ba) = (arr(&p), arr(&buf));
                let kept = p.clone();
                p.sgd_step(&grad, &mut buf, &h);
                let mut want = (pa.clone(), ba.clone());
                for i in 0..pa.numel() {
                    let gi = ga.data[i] * h.grad_scale + h.weight_decay * pa.data[i];
                    let bi = h.momentum * ba.data[i] + gi;
                    let d = if h.nesterov { gi + h.momentum * bi } else { bi };
                    want.0.data[i] = pa.data[i] - h.lr * d;
                    want.1.data[i] = bi;
                }
                let what = format!("sgd step {step} {h:?}");
                close_norm(&format!("{what}: param"), &p, &want.0, tol_acc::<B>())?;
                close_norm(&format!("{what}: momentum"), &buf, &want.1, tol_acc::<B>())?;
                close(&format!("{what}: a clone of the parameter"), &kept, &pa, EXACT)?;
            }
            Ok(())
        },
    );
}

/// Tensors with a zero-size axis, contiguous and strided: copies, reshape, elementwise
/// with broadcasting, reductions over the empty axis (sum 0, max −∞, mean NaN) and over
/// the others, matmul with an empty inner or outer axis, concat/split, index_select,
/// softmax and norms.
pub fn empty_tensors<B: Backend>(b: &B) {
    let ok = |r: TestCaseResult| r.unwrap_or_else(|e| panic!("empty_tensors: {e}"));
    let mut g = Gen::new(b, 1);
    let n = Dist::Normal(1.0);
    for view in [View::Contiguous, View::Permuted, View::Transposed, View::Narrowed, View::Mixed] {
        let (x, xa) = g.input(&[2, 0, 3], view, n);
        ok(close("empty view", &x, &xa, EXACT));
        ok(close("empty contiguous", &x.contiguous(), &xa, EXACT));
        ok(close("empty reshape", &x.reshape(&[3, 0, 2]), &xa.reshape(&[3, 0, 2]), EXACT));
        ok(close("empty flatten", &x.reshape(&[0]), &xa.reshape(&[0]), EXACT));
        ok(close("empty exp", &x.exp(), &xa.map(f64::exp), EXACT));
        let (y, ya) = g.input(&[1, 3], View::Contiguous, n);
        ok(close("empty broadcast add", &x.add(&y), &xa.zip(&ya, |a, b| a + b), EXACT));
        for axes in [&[1][..], &[0], &[2], &[0, 1, 2], &[]] {
            let keep: Vec<usize> = (0..3).map(|a| if axes.contains(&a) { 1 } else { xa.shape[a] }).collect();
            let sum = xa.reduce(axes, 0.0, |a, b| a + b);
            ok(close(&format!("empty sum {axes:?}"), &x.sum(axes, true), &sum, EXACT));
            let count: usize = axes.iter().map(|&a| xa.shape[a]).product();
            ok(close(&format!("empty mean {axes:?}"), &x.mean(axes, true), &sum.map(|v| v / count as f64), EXACT));
            let max = xa.reduce(axes, f64::NEG_INFINITY, f64::max);
            ok(close(&format!("empty max {axes:?}"), &x.max(axes, true), &max, EXACT));
            ok(check_shape("empty sum shape", &x.sum(axes, false), &kept(&keep, axes)));
        }
        ok(close("empty sum_all", &x.sum_all(), &Arr::new(&[], vec![0.0]), EXACT));
        ok(close("empty index_select", &x.index_select(2, &[2, 0]), &Arr::zeros(&[2, 0, 2]), EXACT));
        ok(close("empty softmax", &x.softmax(), &xa, EXACT));
        ok(close("empty rms_norm", &x.rms_norm(None, 1e-5).0, &xa, EXACT));
        let parts = [x.clone(), g.input(&[2, 2, 3], view, n).0];
        ok(check_shape("concat with an empty part", &Tensor::concat(&parts, 1), &[2, 2, 3]));
        let (w, wa) = g.input(&[3, 4], view, n);
        ok(close("empty rows matmul", &x.matmul(&w), &r::matmul(&xa, &wa).0, EXACT));
        let (p, pa) = g.input(&[2, 3, 0], view, n);
        let (q, qa) = g.input(&[0, 5], view, n);
        ok(close("empty inner matmul", &p.matmul(&q), &r::matmul(&pa, &qa).0, EXACT));
    }
    let (t, ta) = g.input(&[4, 3], View::Transposed, n);
    ok(close("select no ids", &t.index_select(0, &[]), &Arr::zeros(&[0, 3]), EXACT));
    ok(close("embedding no ids", &t.embedding(&[]), &Arr::zeros(&[0, 3]), EXACT));
    let pieces = t.split(0, &[0, 4]);
    ok(close("split empty piece", &pieces[0], &Arr::zeros(&[0, 3]), EXACT));
    ok(close("split full piece", &pieces[1], &ta, EXACT));
}

fn kept(keep: &[usize], axes: &[usize]) -> Vec<usize> {
    keep.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
}
