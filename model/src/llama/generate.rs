//! Batched generation: many sequences decoded together, each with its own prompt
//! length, sampling settings, seed and budget, each stopping on its own.

use data::llm::{FinishReason, Sampling};
use tensor::sampling::{sample, SamplingParams};
use tensor::Rng;

use super::attention::KvCache;
use super::forward::Segment;
use super::weights::Llama;

/// Prompt tokens per forward pass while prefilling: prompts are grouped up to this many
/// rows, which bounds the activations' memory whatever the batch.
const PREFILL_ROWS: usize = 512;

/// The new tokens of one sequence (without the stop token) and why it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
}

struct Sequence {
    cache: KvCache,
    rng: Rng,
    params: SamplingParams,
    max_tokens: usize,
    tokens: Vec<u32>,
    finish: Option<FinishReason>,
}

impl Sequence {
    /// Samples the next token from `logits` and records it or the end.
    fn accept(&mut self, logits: &[f32], stop: &[u32]) {
        let id = sample(logits, &self.params, &mut self.rng);
        if stop.contains(&id) {
            self.finish = Some(FinishReason::Stop);
            return;
        }
        self.tokens.push(id);
        if self.tokens.len() >= self.max_tokens {
            self.finish = Some(FinishReason::Length);
        }
    }
}

impl Llama {
    /// Continues every prompt until it samples a token in `stop` or reaches its
    /// `max_tokens`. Prompts must be non-empty and fit the context with their budget
    /// (the engine checks; this panics otherwise). A sequence's tokens depend only on its
    /// own prompt, settings and seed, not on what else is in the batch: every row's
    /// arithmetic is the same in any batch.
    pub fn generate(&self, prompts: &[(&[u32], &Sampling)], stop: &[u32]) -> Vec<Generation> {
        let vocab = self.config.vocab_size;
        let mut seqs: Vec<Sequence> = prompts
            .iter()
            .map(|&(prompt, s)| {
                let limit = self.config.context_len;
                assert!(!prompt.is_empty(), "generate: empty prompt");
                assert!(prompt.len() + s.max_tokens <= limit, "generate: prompt and budget exceed the context {limit}");
                Sequence {
                    cache: self.new_cache(),
                    rng: Rng::seed(s.seed),
                    params: SamplingParams { temperature: s.temperature as f64, top_k: s.top_k, top_p: s.top_p as f64 },
                    max_tokens: s.max_tokens,
                    tokens: Vec::new(),
                    finish: (s.max_tokens == 0).then_some(FinishReason::Length),
                }
            })
            .collect();

        // Prefill in groups of whole prompts of at most PREFILL_ROWS rows (a longer
        // prompt goes alone).
        let mut pending: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i].finish.is_none()).collect();
        while !pending.is_empty() {
            let mut rows = 0;
            let take = pending
                .iter()
                .take_while(|&&i| {
                    rows += prompts[i].0.len();
                    rows <= PREFILL_ROWS
                })
                .count()
                .max(1);
            let group: Vec<usize> = pending.drain(..take).collect();
            let mut segments: Vec<Segment> = seqs
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| group.contains(i))
                .map(|(i, s)| Segment { cache: &mut s.cache, tokens: prompts[i].0 })
                .collect();
            let logits = self.forward(&mut segments);
            for (&i, row) in group.iter().zip(logits.chunks_exact(vocab)) {
                seqs[i].accept(row, stop);
            }
        }

        // Decode: one token per live sequence per pass.
        loop {
            let live: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i].finish.is_none()).collect();
            if live.is_empty() {
                break;
            }
            let last: Vec<u32> =
                live.iter().map(|&i| *seqs[i].tokens.last().expect("live sequences have a token")).collect();
            let mut segments: Vec<Segment> = seqs
                .iter_mut()
                .filter(|s| s.finish.is_none())
                .zip(&last)
                .map(|(s, t)| Segment { cache: &mut s.cache, tokens: std::slice::from_ref(t) })
                .collect();
            let logits = self.forward(&mut segments);
            for (&i, row) in live.iter().zip(logits.chunks_exact(vocab)) {
                seqs[i].accept(row, stop);
            }
        }
        seqs.into_iter()
            .map(|s| Generation { tokens: s.tokens, finish: s.finish.expect("every sequence finished") })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_model::{tiny_llama, VOCAB};
    use super::*;
    use data::gguf::GgufFile;

    fn tiny() -> Llama {
        let bytes = tiny_llama();
        Llama::from_parts(&GgufFile::parse(&bytes).unwrap(), &bytes, std::path::Path::new("tiny.gguf")).unwrap()
    }

    #[test]
    fn batch_decodes_like_one_at_a_time() {
        let model = tiny();
        let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], (0..11).collect(), vec![63], vec![5, 9, 5, 9, 5, 9, 5]];
        let settings = [
            Sampling::greedy(12),
            Sampling { temperature: 0.9, top_k: 10, top_p: 0.9, max_tokens: 20, seed: 4 },
            Sampling::greedy(5),
            Sampling { temperature: 1.2, top_k: 0, top_p: 1.0, max_tokens: 15, seed: 9 },
        ];
        let batch: Vec<(&[u32], &Sampling)> = prompts.iter().map(Vec::as_slice).zip(&settings).collect();
        // Token 7 stops some sequences early, so the batch shrinks while others go on.
        let together = model.generate(&batch, &[7]);
        for (one, alone) in batch.iter().zip(&together) {
            assert_eq!(&model.generate(std::slice::from_ref(one), &[7])[0], alone);
        }
        assert!(together.iter().all(|g| g.tokens.iter().all(|&t| (t as usize) < VOCAB && t != 7)));
        let finishes: Vec<FinishReason> = together.iter().map(|g| g.finish).collect();
        for (g, s) in together.iter().zip(&settings) {
            assert!(g.tokens.len() <= s.max_tokens);
            assert_eq!(g.finish == FinishReason::Length, g.tokens.len() == s.max_tokens, "{finishes:?}");
        }
    }

    #[test]
    fn sampling_is_reproducible_from_the_seed() {
        let model = tiny();
        let prompt = [3u32, 1, 4, 1, 5];
        let run = |seed| {
            let s = Sampling { temperature: 1.5, top_k: 0, top_p: 1.0, max_tokens: 16, seed };
            model.generate(&[(&prompt, &s)], &[]).remove(0).tokens
        };
        assert_eq!(run(1), run(1));
        let distinct: std::collections::HashSet<Vec<u32>> = (0..4).map(run).collect();
        assert!(distinct.len() > 1, "four seeds gave one sequence");
    }
}
