//! The op conformance suite on the CPU backend, in f64 (tight tolerances plus finite
//! differences) and f32 (fp32 tolerances), and the host-side generator and sampling
//! helpers.
//!
//! The generic suite lives in `tensor::conformance` behind the `conformance` feature.
//! This crate's `[dev-dependencies]` include `tensor` itself with that feature, so every
//! test build of this package (plain `cargo test --workspace` included) compiles it and
//! these tests always run; nothing is gated behind `required-features`.

mod cpu_f64 {
    tensor::conformance_tests!(tensor::Cpu::<f64>::new());
}

mod cpu_f32 {
    tensor::conformance_tests!(tensor::Cpu::<f32>::new());
}

/// The profiling wrapper must forward every call unchanged.
mod profiled_cpu_f64 {
    tensor::conformance_tests!(tensor::profile::Profiled::new(tensor::Cpu::<f64>::new()));
}

mod rng {
    use proptest::prelude::*;
    use tensor::Rng;

    fn draws(rng: &mut Rng, n: usize) -> Vec<u64> {
        (0..n).map(|_| rng.next_u64()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

        /// The same seed gives the same stream; different seeds give different streams.
        #[test]
        fn deterministic_by_seed(seed in any::<u64>(), other in any::<u64>()) {
            prop_assert_eq!(draws(&mut Rng::seed(seed), 64), draws(&mut Rng::seed(seed), 64));
            prop_assume!(seed != other);
            prop_assert_ne!(draws(&mut Rng::seed(seed), 4), draws(&mut Rng::seed(other), 4));
        }

        /// `state()` / `from_state()` resume the exact stream (what checkpoints rely on).
        #[test]
        fn state_round_trip(seed in any::<u64>(), skip in 0..100usize) {
            let mut a = Rng::seed(seed);
            draws(&mut a, skip);
            a.normal();
            let mut b = Rng::from_state(a.state());
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(draws(&mut a, 32), draws(&mut b, 32));
            prop_assert_eq!(a.normal().to_bits(), b.normal().to_bits());
        }

        /// `below(n)` stays in `0..n` for any `n`, including 1 and `u64::MAX`.
        #[test]
        fn below_in_range(seed in any::<u64>(), n in prop_oneof![1..10u64, any::<u64>().prop_map(|n| n.max(1)), Just(u64::MAX)]) {
            let mut r = Rng::seed(seed);
            for _ in 0..200 {
                prop_assert!(r.below(n) < n);
            }
        }

        /// `uniform()` lies in `[0, 1)`; `shuffle` permutes; `fork` gives a different stream
        /// and advances the parent.
        #[test]
        fn uniform_shuffle_fork(seed in any::<u64>(), len in 0..40usize) {
            let mut r = Rng::seed(seed);
            for _ in 0..200 {
                let u = r.uniform();
                prop_assert!((0.0..1.0).contains(&u));
            }
            let mut v: Vec<usize> = (0..len).collect();
            r.shuffle(&mut v);
            let mut sorted = v.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..len).collect::<Vec<_>>());
            let before = r.clone();
            let mut child = r.fork();
            prop_assert_ne!(&before, &r);
            prop_assert_ne!(draws(&mut child, 4), draws(&mut r.clone(), 4));
        }
    }

    /// Mean and standard deviation of 100k normal draws, and of uniform draws (loose
    /// bounds: about 6 standard errors).
    #[test]
    fn normal_and_uniform_moments() {
        let n = 100_000;
        let mut r = Rng::seed(2024);
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(mean.abs() < 0.02, "normal mean {mean}");
        assert!((std - 1.0).abs() < 0.02, "normal std {std}");
        let within_1 = xs.iter().filter(|x| x.abs() < 1.0).count() as f64 / n as f64;
        assert!((within_1 - 0.6827).abs() < 0.01, "P(|x| < 1) = {within_1}");
        let us: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        let umean = us.iter().sum::<f64>() / n as f64;
        assert!((umean - 0.5).abs() < 0.006, "uniform mean {umean}");
    }

    /// `below(n)` is roughly uniform: each of 7 buckets within 5% of its expectation.
    #[test]
    fn below_is_uniform() {
        let mut r = Rng::seed(9);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 500.0, "bucket counts {counts:?}");
        }
    }
}

mod sampling {
    use proptest::prelude::*;
    use tensor::sampling::{argmax, filtered_distribution, sample, SamplingParams};
    use tensor::Rng;

    /// The reference: sort by logit (ties by index), keep the top k, softmax at the
    /// temperature (its total summed in index order), keep the shortest prefix reaching
    /// `top_p`, renormalise.
    fn reference(logits: &[f32], p: &SamplingParams) -> Vec<(u32, f64)> {
        let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
        ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        if p.top_k > 0 {
            ids.truncate(p.top_k);
        }
        let z: Vec<f64> = ids.iter().map(|&i| f64::from(logits[i as usize]) / p.temperature).collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut by_index: Vec<(u32, f64)> = ids.iter().copied().zip(z.iter().copied()).collect();
        by_index.sort_by_key(|c| c.0);
        let total: f64 = by_index.iter().map(|c| (c.1 - max).exp()).sum();
        let probs: Vec<f64> = z.iter().map(|v| (v - max).exp() / total).collect();
        let mut keep = probs.len();
        let mut mass = 0.0;
        for (i, q) in probs.iter().enumerate() {
            mass += q;
            if mass >= p.top_p {
                keep = i + 1;
                break;
            }
        }
        let kept: f64 = probs[..keep].iter().sum();
        ids[..keep].iter().zip(&probs).map(|(&i, &q)| (i, q / kept)).collect()
    }

    fn logits() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(prop_oneof![-8.0f32..8.0, prop::sample::select(vec![-1.0f32, 0.0, 2.0])], 1..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// `argmax` is the first index of the largest logit.
        #[test]
        fn argmax_first_max(l in logits()) {
            let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let first = l.iter().position(|&x| x == max).unwrap() as u32;
            prop_assert_eq!(argmax(&l), first);
        }

        /// Temperature 0 is greedy whatever the other settings and the generator.
        #[test]
        fn greedy_at_temperature_zero(l in logits(), top_k in 0..5usize, top_p in 0.1f64..=1.0, seed in any::<u64>()) {
            let p = SamplingParams { temperature: 0.0, top_k, top_p };
            let mut r = Rng::seed(seed);
            for _ in 0..5 {
                prop_assert_eq!(sample(&l, &p, &mut r), argmax(&l));
            }
            prop_assert_eq!(sample(&l, &SamplingParams::GREEDY, &mut r), argmax(&l));
        }

        /// Top-k / top-p filtering against the reference: the same candidates in the same
        /// order, probabilities within 1e-12, summing to 1.
        #[test]
        fn filtering_matches_reference(
            l in logits(),
            temperature in prop::sample::select(vec![0.25, 0.7, 1.0, 2.0]),
            top_k in 0..6usize,
            top_p in prop_oneof![Just(1.0), 0.05f64..1.0],
        ) {
            let p = SamplingParams { temperature, top_k, top_p };
            let got = filtered_distribution(&l, &p);
            let want = reference(&l, &p);
            prop_assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), want.iter().map(|c| c.0).collect::<Vec<_>>());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g.1 - w.1).abs() < 1e-12, "{:?} vs {:?}", got, want);
            }
            prop_assert!((got.iter().map(|c| c.1).sum::<f64>() - 1.0).abs() < 1e-12);
            if top_k > 0 {
                prop_assert!(got.len() <= top_k);
            }
        }

        /// Sampled tokens always come from the filtered candidates.
        #[test]
        fn samples_within_candidates(l in logits(), top_k in 0..4usize, top_p in 0.05f64..=1.0, seed in any::<u64>()) {
            let p = SamplingParams { temperature: 0.8, top_k, top_p };
            let cand: Vec<u32> = filtered_distribution(&l, &p).iter().map(|c| c.0).collect();
            let mut r = Rng::seed(seed);
            for _ in 0..50 {
                let t = sample(&l, &p, &mut r);
                prop_assert!(cand.contains(&t), "{} not in {:?}", t, cand);
            }
        }
    }

    /// A flat distribution over a vocabulary-sized row: the kept prefix grows past the
    /// first selections (64, 256, …) and still equals the reference.
    #[test]
    fn filtering_a_large_flat_row_matches_reference() {
        let mut r = Rng::seed(12);
        let l: Vec<f32> = (0..5000).map(|_| (r.normal() * 0.3) as f32).collect();
        for top_p in [0.01, 0.5, 0.9, 0.999, 1.0] {
            for top_k in [0, 300] {
                let p = SamplingParams { temperature: 0.7, top_k, top_p };
                let (got, want) = (filtered_distribution(&l, &p), reference(&l, &p));
                assert_eq!(got.len(), want.len(), "top_p {top_p} top_k {top_k}");
                assert!(got.len() > 64 || top_p < 0.1, "top_p {top_p}: only {} kept", got.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.0, w.0);
                    assert!((g.1 - w.1).abs() < 1e-12);
                }
            }
        }
    }

    /// Sampling frequencies follow the filtered distribution (loose bound).
    #[test]
    fn sampling_frequencies() {
        let l = [1.0f32, 0.5, 2.0, -1.0, 0.0];
        let p = SamplingParams { temperature: 1.0, top_k: 4, top_p: 0.95 };
        let dist = filtered_distribution(&l, &p);
        let mut r = Rng::seed(77);
        let n = 40_000;
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[sample(&l, &p, &mut r) as usize] += 1;
        }
        for (id, prob) in dist {
            let freq = counts[id as usize] as f64 / n as f64;
            assert!((freq - prob).abs() < 0.015, "token {id}: frequency {freq}, probability {prob} ({counts:?})");
        }
        assert_eq!(counts[3], 0, "token 3 is outside the top 4");
    }
}
