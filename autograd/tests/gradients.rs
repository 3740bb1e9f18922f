//! Every differentiable op's backward rule against central finite differences in f64.

use autograd::{check_gradients, GradCheckConfig, Reduction, Var};
use proptest::prelude::*;
use tensor::{Cpu, Rng, RopeArgs, Tensor};

type B = Cpu<f64>;

fn randn(shape: &[usize], seed: u64) -> Tensor<B> {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::seed(seed), &B::new())
}

/// Strictly positive inputs in [0.5, 2) for log, sqrt, pow and division.
fn positive(shape: &[usize], seed: u64) -> Tensor<B> {
    Tensor::rand_uniform(shape, 0.5, 2.0, &mut Rng::seed(seed), &B::new())
}

#[track_caller]
fn check(inputs: &[Tensor<B>], f: impl Fn(&[Var<B>]) -> Var<B>) {
    if let Err(e) = check_gradients(inputs, f, &GradCheckConfig::default()) {
        panic!("{e}");
    }
}

#[track_caller]
fn check1(x: &Tensor<B>, f: impl Fn(&Var<B>) -> Var<B>) {
    check(std::slice::from_ref(x), |v| f(&v[0]));
}

#[test]
fn unary_ops() {
    let x = randn(&[3, 5], 1);
    let p = positive(&[3, 5], 2);
    check1(&x, |v| v.neg());
    check1(&x, |v| v.exp());
    check1(&x, |v| v.tanh());
    check1(&x, |v| v.sigmoid());
    check1(&x, |v| v.relu());
    check1(&x, |v| v.silu());
    check1(&x, |v| v.gelu());
    check1(&x, |v| v.square());
    check1(&x, |v| v.abs());
    check1(&x, |v| v.add_scalar(0.7));
    check1(&x, |v| v.mul_scalar(-1.3));
    check1(&x, |v| v.max_scalar(0.1));
    check1(&p, |v| v.log());
    check1(&p, |v| v.sqrt());
    check1(&p, |v| v.rsqrt());
    check1(&p, |v| v.recip());
    check1(&p, |v| v.pow_scalar(1.7));
    // A strided (transposed) input.
    check(&[randn(&[5, 3], 3)], |v| v[0].t().silu());
}

/// Shapes that broadcast against each other, with some axes of size 1 or missing.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec((1usize..4, 0u8..3), 1..4).prop_map(|dims| {
        let full: Vec<usize> = dims.iter().map(|d| d.0).collect();
        let other: Vec<usize> = dims.iter().map(|&(d, mode)| if mode == 0 { 1 } else { d }).collect();
        let drop = dims.iter().take_while(|d| d.1 == 1).count().min(other.len() - 1);
        (full, other[drop..].to_vec())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn binary_ops_broadcast((sa, sb) in broadcast_pair(), seed in 0u64..1000, swap in any::<bool>()) {
        let (sa, sb) = if swap { (sb, sa) } else { (sa, sb) };
        let (a, b) = (randn(&sa, seed), randn(&sb, seed + 1));
        let (pa, pb) = (positive(&sa, seed + 2), positive(&sb, seed + 3));
        check(&[a.clone(), b.clone()], |v| v[0].add(&v[1]));
        check(&[a.clone(), b.clone()], |v| v[0].sub(&v[1]));
        check(&[a.clone(), b.clone()], |v| v[0].mul(&v[1]));
        check(&[a.clone(), pb.clone()], |v| v[0].div(&v[1]));
        check(&[a.clone(), b.clone()], |v| v[0].maximum(&v[1]));
        check(&[a.clone(), b.clone()], |v| v[0].minimum(&v[1]));
        check(&[pa.clone(), b.clone()], |v| v[0].pow(&v[1]));
    }

    #[test]
    fn reductions(shape in prop::collection::vec(1usize..5, 1..4), seed in 0u64..1000, mask in 1u8..8, keep in any::<bool>()) {
        let axes: Vec<usize> = (0..shape.len()).filter(|a| mask & (1 << a) != 0).collect();
        let axes = if axes.is_empty() { vec![0] } else { axes };
        let x = randn(&shape, seed);
        check1(&x, |v| v.sum(&axes, keep));
        check1(&x, |v| v.mean(&axes, keep));
        check1(&x, |v| v.max(&axes, keep));
        check1(&x, |v| v.min(&axes, keep));
        check1(&x, |v| v.sum_all());
        check1(&x, |v| v.mean_all());
    }

    #[test]
    fn matmul_shapes(m in 1usize..6, k in 1usize..6, n in 1usize..6, batch in 1usize..4, seed in 0u64..1000) {
        check(&[randn(&[m, k], seed), randn(&[k, n], seed + 1)], |v| v[0].matmul(&v[1]));
        check(&[randn(&[batch, m, k], seed), randn(&[k, n], seed + 1)], |v| v[0].matmul(&v[1]));
        check(&[randn(&[batch, m, k], seed), randn(&[batch, k, n], seed + 1)], |v| v[0].matmul(&v[1]));
        check(&[randn(&[m, k], seed), randn(&[batch, 1, k, n], seed + 1)], |v| v[0].matmul(&v[1]));
        check(&[randn(&[batch, m, k], seed), randn(&[n, k], seed + 1)], |v| v[0].linear(&v[1], None));
        check(&[randn(&[m, k], seed), randn(&[n, k], seed + 1), randn(&[n], seed + 2)], |v| v[0].linear(&v[1], Some(&v[2])));
        // Transposed operands: views, not copies.
        check(&[randn(&[k, m], seed), randn(&[n, k], seed + 1)], |v| v[0].t().matmul(&v[1].t()));
    }
}

#[test]
fn tie_gradients_split_evenly() {
    let cpu = B::new();
    let x = autograd::Param::new("x", Tensor::from_f64(&[1.0, 3.0, 3.0], &[3], &cpu), false);
    x.var().max(&[0], false).backward();
    assert_eq!(x.grad().unwrap().to_f64_vec(), vec![0.0, 0.5, 0.5]);
}

#[test]
fn shape_ops() {
    let x = randn(&[2, 3, 4], 5);
    check1(&x, |v| v.reshape(&[6, 4]));
    check1(&x, |v| v.transpose(0, 2).reshape(&[12, 2]));
    check1(&x, |v| v.permute(&[1, 2, 0]).contiguous());
    check1(&x, |v| v.unsqueeze(1).squeeze(1));
    check(&[randn(&[3, 1], 6)], |v| v[0].broadcast_to(&[2, 3, 4]));
    check1(&x, |v| v.narrow(2, 1, 2));
    check1(&x, |v| {
        let parts = v.split(1, &[1, 2]);
        parts[1].mul(&parts[0])
    });
    check(&[randn(&[2, 3], 7), randn(&[2, 5], 8)], |v| Var::concat(&[v[0].clone(), v[1].clone()], 1));
    check(&[randn(&[2, 3], 7), randn(&[2, 3], 8)], |v| Var::stack(&[v[0].clone(), v[1].clone()], 1));
}

#[test]
fn where_and_masked_fill() {
    let cpu = B::new();
    let cond = Tensor::from_f64(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], &[2, 3], &cpu);
    check(&[randn(&[2, 3], 1), randn(&[3], 2)], |v| Var::where_cond(&cond, &v[0], &v[1]));
    check(&[randn(&[2, 3], 1)], |v| v[0].masked_fill(&cond, -5.0));
}

#[test]
fn softmax_and_cross_entropy() {
    let x = randn(&[4, 7], 3);
    check1(&x, |v| v.softmax());
    check1(&x, |v| v.log_softmax());
    check1(&x, |v| v.cross_entropy(&[1, 6, 0, 3], None, Reduction::Mean));
    check1(&x, |v| v.cross_entropy(&[1, 6, 0, 3], Some(6), Reduction::Mean));
    check1(&x, |v| v.cross_entropy(&[1, 6, 0, 3], Some(0), Reduction::Sum));
    // Non-contiguous logits.
    check(&[randn(&[7, 4], 4)], |v| v[0].t().cross_entropy(&[2, 2, 5, 1], None, Reduction::Mean));
}

#[test]
fn norms() {
    let x = randn(&[3, 8], 4);
    let (g, b) = (randn(&[8], 5), randn(&[8], 6));
    check1(&x, |v| v.rms_norm(None, 1e-6));
    check(&[x.clone(), g.clone()], |v| v[0].rms_norm(Some(&v[1]), 1e-6));
    check(&[x.clone(), g.clone(), b.clone()], |v| v[0].layer_norm(Some(&v[1]), Some(&v[2]), 1e-5));
    check1(&x, |v| v.layer_norm(None, None, 1e-5));
    check(&[x.clone(), g.clone(), b.clone()], |v| v[0].group_norm(4, Some(&v[1]), Some(&v[2]), 1e-5));
    check(&[x.clone(), g.clone()], |v| v[0].group_norm(2, Some(&v[1]), None, 1e-5));
    check(&[randn(&[8, 3], 7)], |v| v[0].t().rms_norm(None, 1e-6));
}

fn rope_tables(max_pos: usize, half: usize) -> (Tensor<B>, Tensor<B>) {
    let cpu = B::new();
    let angles: Vec<f64> = (0..max_pos)
        .flat_map(|p| (0..half).map(move |i| p as f64 * 10000f64.powf(-(i as f64) / half as f64)))
        .collect();
    let cos: Vec<f64> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f64> = angles.iter().map(|a| a.sin()).collect();
    (Tensor::from_f64(&cos, &[max_pos, half], &cpu), Tensor::from_f64(&sin, &[max_pos, half], &cpu))
}

#[test]
fn rope() {
    let (cos, sin) = rope_tables(16, 3);
    for interleaved in [true, false] {
        let args = RopeArgs { pos_offset: 2, interleaved, inverse: false };
        check(&[randn(&[2, 5, 3, 6], 8)], |v| v[0].rope(&cos, &sin, args));
        // Strided input: heads and positions swapped in memory.
        check(&[randn(&[2, 3, 5, 6], 9)], |v| v[0].transpose(1, 2).rope(&cos, &sin, args));
    }
}

#[test]
fn attention() {
    // seq 70 crosses the 64-row query block; 4 query heads share 2 kv heads.
    let (b, t, hq, hkv, d) = (2, 70, 4, 2, 4);
    let cfg = GradCheckConfig { max_elements: 24, ..Default::default() };
    let inputs = [randn(&[b, t, hq, d], 1), randn(&[b, t, hkv, d], 2), randn(&[b, t, hkv, d], 3)];
    for causal in [true, false] {
        let r = check_gradients(&inputs, |v| Var::attention(&v[0], &v[1], &v[2], causal, 0.5), &cfg);
        r.unwrap_or_else(|e| panic!("causal={causal}: {e}"));
    }
    // KV-cache shape: 3 new queries against 9 keys, causal from offset 6.
    let inputs = [randn(&[1, 3, 2, 4], 4), randn(&[1, 9, 1, 4], 5), randn(&[1, 9, 1, 4], 6)];
    check(&inputs, |v| Var::attention(&v[0], &v[1], &v[2], true, 0.7));
    // q, k, v as strided slices of one fused projection.
    check(&[randn(&[2, 5, 3, 2, 4], 7)], |v| {
        let qkv = v[0].split(2, &[1, 1, 1]);
        let q = qkv[0].reshape(&[2, 5, 2, 4]);
        let k = qkv[1].reshape(&[2, 5, 2, 4]);
        let vv = qkv[2].reshape(&[2, 5, 2, 4]);
        Var::attention(&q, &k, &vv, true, 0.5)
    });
}

#[test]
fn indexing() {
    let table = randn(&[6, 4], 1);
    check1(&table, |v| v.embedding(&[1, 5, 1, 0]));
    check(&[randn(&[3, 5, 2], 2)], |v| v[0].index_select(1, &[4, 0, 4]));
    check(&[randn(&[5, 3], 3)], |v| v[0].t().index_select(0, &[2, 2]));
}
