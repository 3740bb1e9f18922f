//! The VWN spec's unit tests (shared/spec/vwn.md §10) and whole-model gradient checks.

use autograd::{check_param_gradients, GradCheckConfig, Param, Var};
use model::ghc::{dynamic_coefficients, init_static_beta_t, Ghc, GhcSpec};
use model::layers::Init;
use model::{Arch, EmbeddingMode, GroupNormFallback, Model, ModelConfig, MtpConfig, MtpNorm, VwnConfig};
use tensor::{Cpu, Rng, Tensor};

type B = Cpu<f64>;

fn ghc(m: usize, n: usize, d_b: usize, seed: u64) -> Ghc<B> {
    let mut rng = Rng::seed(seed);
    let mut init = Init { backend: &B::new(), rng: &mut rng, std: 0.02 };
    Ghc::new(&mut init, "ghc", &GhcSpec { m, n, d_b, dynamic: true, decay_scales: false, eps: 1e-6 })
}

fn randn(shape: &[usize], seed: u64) -> Tensor<B> {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::seed(seed), &B::new())
}

/// A stand-in sublayer: `tanh(x·W)` on `[tokens, m, d_b]`, flattened per token.
fn sublayer(x: &Var<B>, w: &Var<B>) -> Var<B> {
    let (t, m, d_b) = (x.dim(0), x.dim(1), x.dim(2));
    x.reshape(&[t, m * d_b]).matmul(w).tanh().reshape(&[t, m, d_b])
}

fn apply(g: &Ghc<B>, h: &Var<B>, w: &Var<B>) -> Var<B> {
    let (x, carry, bt) = g.width(h);
    g.depth(&sublayer(&x, w), &carry, &bt)
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

#[test]
fn m_equals_n_equals_one_is_a_prenorm_residual() {
    let g = ghc(1, 1, 6, 1);
    let h = randn(&[5, 1, 6], 2);
    let w = Var::constant(randn(&[6, 6], 3));
    let out = apply(&g, &Var::constant(h.clone()), &w);
    let residual = Var::constant(h.clone()).add(&sublayer(&Var::constant(h), &w));
    close(&out.value().to_f64_vec(), &residual.value().to_f64_vec(), 1e-12);
}

#[test]
fn init_routing_for_m2_n3() {
    let d_b = 4;
    let g = ghc(2, 3, d_b, 1);
    let h = randn(&[3, 3, d_b], 2);
    let (x, _, _) = g.width(&Var::constant(h.clone()));
    // The backbone reads exactly the first m slots (the first D features).
    close(&x.value().to_f64_vec(), &h.narrow(1, 0, 2).to_f64_vec(), 1e-12);
    let w = Var::constant(randn(&[2 * d_b, 2 * d_b], 3));
    let out = apply(&g, &Var::constant(h.clone()), &w).value().to_f64_vec();
    let z = sublayer(&Var::constant(h.narrow(1, 0, 2)), &w).value().to_f64_vec();
    let hv = h.to_f64_vec();
    // Slots (s0 + z0, s1 + z1, s2 + z0) for every token.
    for t in 0..3 {
        for (slot, seg) in [(0, 0), (1, 1), (2, 0)] {
            for c in 0..d_b {
                let want = hv[(t * 3 + slot) * d_b + c] + z[(t * 2 + seg) * d_b + c];
                assert!((out[(t * 3 + slot) * d_b + c] - want).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn cyclic_write_matrix_for_m8_n64() {
    let bt = init_static_beta_t(8, 64); // Bᵀ, 64 × 8
    for j in 0..64 {
        for i in 0..8 {
            assert_eq!(bt[j * 8 + i], f64::from(j % 8 == i), "B[{i},{j}]");
        }
    }
    for i in 0..8 {
        assert_eq!((0..64).filter(|j| bt[j * 8 + i] == 1.0).count(), 8, "segment {i} writes to 8 slots");
    }
}

#[test]
fn dynamic_path_is_inert_at_init_but_trainable() {
    let g = ghc(2, 3, 4, 1);
    let h = randn(&[4, 3, 4], 2);
    let w = Var::constant(randn(&[8, 8], 3));
    let before = apply(&g, &Var::constant(h.clone()), &w).value().to_f64_vec();
    g.s_alpha.set_value(randn(&[3, 5], 4));
    g.s_beta_t.set_value(randn(&[3, 2], 5));
    let after = apply(&g, &Var::constant(h.clone()), &w);
    close(&before, &after.value().to_f64_vec(), 0.0);
    after.sum_all().backward();
    for p in [&g.w_alpha, &g.w_beta] {
        let grad = p.grad().expect("gradient reaches W").to_f64_vec();
        assert!(grad.iter().any(|x| x.abs() > 1e-6), "{}: zero gradient at init", p.name());
    }
}

/// Moves every GHC parameter off its initial value so no term of the backward hides.
fn randomize(g: &Ghc<B>, seed: u64) {
    for (i, p) in g.params().into_iter().enumerate() {
        let base = p.value().to_f64_vec();
        let noise = randn(&p.shape(), seed + i as u64).to_f64_vec();
        let v: Vec<f64> = base.iter().zip(noise).map(|(b, n)| b + 0.5 * n).collect();
        p.set_value(Tensor::from_f64(&v, &p.shape(), &B::new()));
    }
}

#[test]
fn dghc_gradient_check() {
    // D = 4, m = 2, n = 3, d_b = 2 (spec §10.5), and a wider case.
    for (m, n, d_b) in [(2, 3, 2), (2, 8, 3), (1, 4, 3)] {
        let g = ghc(m, n, d_b, 7);
        randomize(&g, 11);
        let h = Param::new("h", randn(&[5, n, d_b], 1), false);
        let w = Param::new("w", randn(&[m * d_b, m * d_b], 2), false);
        let mut params = g.params();
        params.extend([&h, &w]);
        let cfg = GradCheckConfig { max_elements: 40, ..Default::default() };
        check_param_gradients(&params, || apply(&g, &h.var(), &w.var()).square().sum_all(), &cfg)
            .unwrap_or_else(|e| panic!("(m, n) = ({m}, {n}): {e}"));
    }
}

#[test]
fn fused_coefficients_match_the_composed_reference() {
    let (tokens, n, d_b, k) = (6, 3, 4, 7);
    let h = Var::constant(randn(&[tokens, n, d_b], 1));
    let (gain, wc) = (Var::constant(randn(&[d_b], 2)), Var::constant(randn(&[d_b, k], 3)));
    let (sc, cst) = (Var::constant(randn(&[n, k], 4)), Var::constant(randn(&[n, k], 5)));
    let fused = dynamic_coefficients(&h, &gain, &wc, &sc, &cst, 1e-6);
    let reference =
        h.rms_norm(Some(&gain), 1e-6).matmul(&wc).mul_scalar(1.0 / (d_b as f64).sqrt()).tanh().mul(&sc).add(&cst);
    close(&fused.value().to_f64_vec(), &reference.value().to_f64_vec(), 1e-12);
}

fn tiny(arch: Arch, m: usize, n: usize, mtp: bool) -> ModelConfig {
    ModelConfig {
        arch,
        vocab_size: 11,
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
        n_kv_heads: 1,
        ffn_hidden: 12,
        max_seq_len: 8,
        vwn: VwnConfig { m, n, ..Default::default() },
        mtp: MtpConfig { enabled: mtp, lambda: 0.3, norm: MtpNorm::PerVector },
        ..Default::default()
    }
}

fn whole_model_check(cfg: &ModelConfig) {
    let model = Model::<B>::new(cfg, 3, &B::new()).unwrap();
    // Random weights everywhere (including GHC), so every path carries signal.
    for (i, p) in model.params().into_iter().enumerate() {
        let base = p.value().to_f64_vec();
        let noise = randn(&p.shape(), 100 + i as u64).to_f64_vec();
        let v: Vec<f64> = base.iter().zip(noise).map(|(b, n)| b + 0.3 * n).collect();
        p.set_value(Tensor::from_f64(&v, &p.shape(), &B::new()));
    }
    let (batch, seq) = (2, 5);
    let ids: Vec<u32> = (0..batch * (seq + 1)).map(|i| (i * 7 % 11) as u32).collect();
    let (inputs, targets): (Vec<u32>, Vec<u32>) =
        ids.chunks(seq + 1).flat_map(|w| w[..seq].iter().copied().zip(w[1..].iter().copied())).unzip();
    let cfg_check = GradCheckConfig { max_elements: 12, ..Default::default() };
    check_param_gradients(&model.params(), || model.loss(&inputs, &targets, batch, seq).total, &cfg_check)
        .unwrap_or_else(|e| panic!("{:?} (m, n) = {:?}: {e}", cfg.arch, cfg.mn()));
}

#[test]
fn whole_model_gradients_vwn_with_mtp() {
    whole_model_check(&tiny(Arch::Vwn, 2, 3, true));
    whole_model_check(&tiny(Arch::Vwn, 2, 8, true));
}

#[test]
fn whole_model_gradients_variants() {
    whole_model_check(&tiny(Arch::Baseline, 1, 1, true));
    let mut factorized = tiny(Arch::Vwn, 2, 4, false);
    factorized.vwn.embedding = EmbeddingMode::Factorized;
    factorized.tie_embeddings = true;
    factorized.mtp = MtpConfig { enabled: true, lambda: 0.5, norm: MtpNorm::PerSlot };
    whole_model_check(&factorized);
}

#[test]
fn shape_rules() {
    let cfg = tiny(Arch::Vwn, 2, 8, false);
    assert_eq!((cfg.slot_dim(), cfg.wide_dim(), cfg.final_groups()), (4, 32, Some(4)));
    let r15 = tiny(Arch::Vwn, 2, 3, false);
    assert_eq!((r15.wide_dim(), r15.final_groups()), (12, None), "GroupNorm is skipped at 1.5×");
    let per_slot =
        ModelConfig { vwn: VwnConfig { groupnorm_fallback: GroupNormFallback::PerSlot, ..r15.vwn.clone() }, ..r15 };
    assert_eq!(per_slot.final_groups(), Some(3));
    assert_eq!(tiny(Arch::Vwn, 2, 2, false).final_groups(), None, "r = 1 has no GroupNorm");
}

#[test]
fn bad_configs_are_rejected_with_reasons() {
    let err =
        |cfg: ModelConfig| Model::<B>::new(&cfg, 0, &B::new()).err().expect("config must be rejected").to_string();
    assert!(err(tiny(Arch::Vwn, 4, 3, false)).contains("must be at least vwn.m"));
    assert!(err(tiny(Arch::Vwn, 3, 6, false)).contains("not divisible by vwn.m"));
    let mut tied = tiny(Arch::Vwn, 2, 4, false);
    tied.tie_embeddings = true;
    assert!(err(tied).contains("factorized"));
    let mut heads = tiny(Arch::Baseline, 1, 1, false);
    heads.n_heads = 3;
    assert!(err(heads).contains("n_heads"));
}
