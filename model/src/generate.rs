//! Autoregressive generation with a KV cache.

use crate::transformer::Model;
use autograd::no_grad;
use tensor::sampling::{sample, SamplingParams};
use tensor::{Backend, Rng};

/// Continues `prompt` by up to `max_new` tokens, stopping early at `stop` (e.g. the
/// end-of-text id) or when the context is full. Returns only the new tokens.
pub fn generate<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    max_new: usize,
    params: &SamplingParams,
    rng: &mut Rng,
    stop: Option<u32>,
) -> Vec<u32> {
    assert!(!prompt.is_empty(), "generate needs at least one prompt token");
    let max_len = model.config.max_seq_len;
    let prompt = &prompt[prompt.len().saturating_sub(max_len)..];
    no_grad(|| {
        let mut caches = model.new_caches();
        let mut out = Vec::new();
        let mut feed = prompt.to_vec();
        while out.len() < max_new && caches[0].len() + feed.len() <= max_len {
            let logits = model.logits_cached(&feed, 1, feed.len(), &mut caches);
            let last: Vec<f32> =
                logits.value().narrow(0, feed.len() - 1, 1).to_f64_vec().iter().map(|&x| x as f32).collect();
            let next = sample(&last, params, rng);
            if Some(next) == stop {
                break;
            }
            out.push(next);
            feed = vec![next];
        }
        out
    })
}
