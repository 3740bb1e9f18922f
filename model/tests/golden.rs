//! Golden debug states (llm.c's `test_gpt2.c` idea): our forward pass, backward pass and
//! AdamW against the PyTorch reference `bench/torch_ref.py`, which is written from the VWN
//! spec rather than from this code. `bench/make_golden.py` wrote `tests/golden/*.safetensors`:
//! fixed weights, a fixed batch, the reference's logits, both losses, every gradient, and
//! the weights after three AdamW steps on that batch. No PyTorch is needed here.
//!
//! Tolerance. Each value is compared relative to itself, with a floor for values near zero
//! (cancellation makes their relative error meaningless): `|ours − ref| ≤ rtol ·
//! max(|ref|, 1e-3 · max|tensor|)`.
//! - Our f64 run: the reference ran in float64 and was stored as f32, so the expected gap is
//!   the f32 rounding of the stored value (2⁻²⁴ ≈ 6e-8 relative) plus float64 summation-order
//!   noise (~1e-15). `rtol = 1e-6` leaves a 16× margin and still catches any wrong term
//!   (measured: at most 6e-8 in every part of every case, i.e. the storage rounding alone).
//! - Our f32 run (the training precision): single-precision rounding through two layers, the
//!   MTP head, softmax and the backward pass (measured at most 8e-5 forward, 5e-4 backward,
//!   7e-5 after AdamW). The test allows `rtol = 3e-3` for forward and backward and `1e-3` for
//!   the weights after AdamW.
//!
//! The errors achieved per case and quantity are in docs/torch-reference.md; `--nocapture`
//! prints them.

use autograd::{AdamW, AdamWConfig, Param};
use model::checkpoint::load_weights;
use model::safetensors::{read, HostTensor};
use model::{Model, ModelConfig};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tensor::{Backend, Cpu};

struct Golden {
    name: String,
    tensors: BTreeMap<String, HostTensor>,
    meta: BTreeMap<String, String>,
}

impl Golden {
    fn load(name: &str) -> Golden {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/golden/{name}.safetensors"));
        let (tensors, meta) =
            read(&path).unwrap_or_else(|e| panic!("{}: {e} (written by bench/make_golden.py)", path.display()));
        Golden { name: name.to_string(), tensors, meta }
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> T {
        let text = self.meta.get(key).unwrap_or_else(|| panic!("{}: no metadata {key:?}", self.name));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: metadata {key:?}: {e}", self.name))
    }

    fn tensor(&self, name: &str) -> &HostTensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("{}: no tensor {name:?}", self.name))
    }

    /// The tensors whose names start with `prefix`, with the prefix removed.
    fn group(&self, prefix: &str) -> BTreeMap<String, HostTensor> {
        self.tensors.iter().filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone()))).collect()
    }
}

#[derive(Clone, Copy)]
struct Tolerance {
    /// Forward and backward: logits, losses, gradients.
    grads: f64,
    /// The weights after the AdamW steps.
    optimizer: f64,
}

/// The largest relative error seen in each part of one case.
#[derive(Default, Debug)]
struct Achieved {
    forward: f64,
    backward: f64,
    optimizer: f64,
}

/// Checks `ours` against the reference values element by element and returns the largest
/// relative error (as the module doc defines it).
fn compare(case: &str, what: &str, ours: &[f64], reference: &[f32], rtol: f64) -> f64 {
    assert_eq!(
        ours.len(),
        reference.len(),
        "{case}: {what}: {} values, the reference has {}",
        ours.len(),
        reference.len()
    );
    let floor = 1e-3 * reference.iter().fold(0.0f64, |m, &r| m.max(f64::from(r).abs()));
    let mut worst = 0.0f64;
    for (i, (&a, &r)) in ours.iter().zip(reference).enumerate() {
        let r = f64::from(r);
        let err = (a - r).abs() / r.abs().max(floor).max(f64::MIN_POSITIVE);
        assert!(
            err <= rtol,
            "{case}: {what}[{i}]: ours {a:.9e}, reference {r:.9e} (relative error {err:.2e} > {rtol:.0e})"
        );
        worst = worst.max(err);
    }
    worst
}

fn scalar(g: &Golden, key: &str) -> f32 {
    g.meta::<f64>(key) as f32
}

fn values<B: Backend>(p: &Param<B>) -> Vec<f64> {
    p.value().to_f64_vec()
}

/// Runs one golden case on `backend` and returns the errors achieved.
fn check<B: Backend>(name: &str, backend: &B, tol: Tolerance) -> Achieved {
    let g = Golden::load(name);
    let case = format!("{name} ({})", backend.name());
    let cfg: ModelConfig = g.meta("config");
    let model = Model::new(&cfg, 0, backend).unwrap_or_else(|e| panic!("{case}: {e}"));
    let params = model.params();
    load_weights(&params, &g.group("param.")).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut decayed: Vec<&str> = params.iter().filter(|p| p.weight_decay()).map(|p| p.name()).collect();
    decayed.sort_unstable();
    assert_eq!(decayed, g.meta::<Vec<String>>("decayed"), "{case}: parameters under weight decay");

    let (batch, seq): (usize, usize) = (g.meta("batch"), g.meta("seq"));
    let (inputs, targets): (Vec<u32>, Vec<u32>) = (g.meta("inputs"), g.meta("targets"));
    let mut got = Achieved::default();
    let logits = model.logits(&inputs, batch, seq).value().to_f64_vec();
    got.forward = compare(&case, "logits", &logits, &g.tensor("logits").data, tol.grads);
    let out = model.loss(&inputs, &targets, batch, seq);
    let next2 = out.next2_token.expect("every golden case has the MTP head");
    for (what, ours) in [("loss", out.total.item()), ("loss_next", out.next_token), ("loss_next2", next2)] {
        got.forward = got.forward.max(compare(&case, what, &[ours], &[scalar(&g, what)], tol.grads));
    }
    out.total.backward();
    for p in &params {
        let grad = p.grad().unwrap_or_else(|| panic!("{case}: {} received no gradient", p.name()));
        let reference = &g.tensor(&format!("grad.{}", p.name())).data;
        got.backward =
            got.backward.max(compare(&case, &format!("grad.{}", p.name()), &grad.to_f64_vec(), reference, tol.grads));
    }

    #[derive(serde::Deserialize)]
    struct Hyper {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        steps: usize,
    }
    let h: Hyper = g.meta("optimizer");
    let step_losses: Vec<f64> = g.meta("step_losses");
    assert_eq!(step_losses.len(), h.steps, "{case}: one recorded loss per step");
    let mut opt = AdamW::new(AdamWConfig {
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weight_decay: h.weight_decay,
        groups: Vec::new(),
    });
    opt.step(&params, h.lr, 1.0); // the gradients above are step 1's
    for (step, &reference) in step_losses.iter().enumerate().skip(1) {
        params.iter().for_each(|p| p.zero_grad());
        let out = model.loss(&inputs, &targets, batch, seq);
        let what = format!("loss before step {}", step + 1);
        got.optimizer = got.optimizer.max(compare(&case, &what, &[out.total.item()], &[reference as f32], tol.grads));
        out.total.backward();
        opt.step(&params, h.lr, 1.0);
    }
    for p in &params {
        let reference = &g.tensor(&format!("step3.{}", p.name())).data;
        let what = format!("{} after {} AdamW steps", p.name(), h.steps);
        got.optimizer = got.optimizer.max(compare(&case, &what, &values(p), reference, tol.optimizer));
    }
    println!("{case}: largest relative error: {got:?}");
    got
}

const F64: Tolerance = Tolerance { grads: 1e-6, optimizer: 1e-6 };
const F32: Tolerance = Tolerance { grads: 3e-3, optimizer: 1e-3 };

fn both(name: &str) {
    check(name, &Cpu::<f64>::new(), F64);
    check(name, &Cpu::<f32>::new(), F32);
}

#[test]
fn baseline_matches_pytorch() {
    both("baseline");
}

#[test]
fn vwn_2_3_matches_pytorch() {
    both("vwn_2_3");
}

#[test]
fn vwn_2_8_matches_pytorch() {
    both("vwn_2_8");
}

/// Factorised embedding tied to the head, per-slot MTP norms, GELU, interleaved rotary
/// pairs, weight decay on the GHC scales, no GQA.
#[test]
fn vwn_2_8_alternative_switches_match_pytorch() {
    both("vwn_2_8_alt");
}

/// The comparison can fail: a weight nudged by 1e-4 moves the logits past the tolerance.
#[test]
#[should_panic(expected = "logits")]
fn a_perturbed_weight_is_caught() {
    let g = Golden::load("vwn_2_8");
    let backend = Cpu::<f64>::new();
    let model = Model::new(&g.meta::<ModelConfig>("config"), 0, &backend).unwrap();
    let mut weights = g.group("param.");
    weights.get_mut("blocks.1.ghc_ffn.w_alpha").unwrap().data[0] += 1e-4;
    load_weights(&model.params(), &weights).unwrap();
    let logits = model.logits(&g.meta::<Vec<u32>>("inputs"), g.meta("batch"), g.meta("seq")).value().to_f64_vec();
    compare("perturbed", "logits", &logits, &g.tensor("logits").data, F64.grads);
}
