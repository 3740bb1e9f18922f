//! The forward pass over a batch of sequences: each contributes its new tokens (a whole
//! prompt, or one token while decoding), every linear layer runs once over all rows of
//! the batch, and attention reads each sequence's own cache.

use rayon::prelude::*;

use super::attention::{attend, Heads, KvCache, Rotation};
use super::weights::Llama;

/// New tokens of one sequence and its cache (which the pass extends by them).
pub struct Segment<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
}

impl Llama {
    /// A cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.n_layers, self.config.n_kv_heads, self.config.head_dim)
    }

    /// Runs the segments' tokens through the model, appending them to their caches, and
    /// returns the logits after each segment's last token (`segments.len()` rows of
    /// `vocab_size`). Panics on an empty segment, an id outside the vocabulary or a
    /// sequence longer than the context window: callers check those first.
    pub fn forward(&self, segments: &mut [Segment]) -> Vec<f32> {
        // On a pool thread, the pass's ~150 parallel loops start without waking a worker
        // and putting this thread to sleep each time (a quarter of decoding time on one
        // thread when called from outside the pool).
        rayon::scope(|_| self.forward_on_pool(segments))
    }

    fn forward_on_pool(&self, segments: &mut [Segment]) -> Vec<f32> {
        let c = &self.config;
        let (d, hd, kv_dim) = (c.d_model, c.head_dim, c.kv_dim());
        let q_dim = c.n_heads * hd;
        let qkv_dim = q_dim + 2 * kv_dim;
        let heads = Heads { n_heads: c.n_heads, n_kv_heads: c.n_kv_heads, head_dim: hd };
        // (segment, position) of every row, and the embeddings.
        let mut rows = Vec::new();
        for (s, seg) in segments.iter().enumerate() {
            assert!(!seg.tokens.is_empty(), "forward: segment {s} has no tokens");
            let end = seg.cache.len() + seg.tokens.len();
            assert!(
                end <= c.context_len,
                "forward: segment {s} reaches {end} tokens, past the context {}",
                c.context_len
            );
            rows.extend((seg.cache.len()..end).map(|pos| (s, pos)));
        }
        let n = rows.len();
        let mut x = vec![0.0; n * d];
        let ids = segments.iter().flat_map(|seg| seg.tokens.iter());
        for (row, &id) in x.chunks_exact_mut(d).zip(ids) {
            assert!((id as usize) < c.vocab_size, "forward: token id {id} outside the vocabulary of {}", c.vocab_size);
            self.embed.row_into(id as usize, row);
        }

        let rotations: Vec<Rotation> = rows.iter().map(|&(_, pos)| Rotation::new(pos, hd, c.rope_base)).collect();
        for (layer, block) in self.blocks.iter().enumerate() {
            let h = rms_norm(&x, &block.attn_norm, c.rms_eps);
            let mut qkv = block.qkv.matmul(&h, n);
            for (row, rotation) in qkv.chunks_exact_mut(qkv_dim).zip(&rotations) {
                rotation.apply(&mut row[..q_dim + kv_dim]);
            }
            let mut first = 0;
            for seg in segments.iter_mut() {
                let (mut keys, mut values) = (Vec::new(), Vec::new());
                for row in qkv[first * qkv_dim..].chunks_exact(qkv_dim).take(seg.tokens.len()) {
                    keys.extend_from_slice(&row[q_dim..q_dim + kv_dim]);
                    values.extend_from_slice(&row[q_dim + kv_dim..]);
                }
                seg.cache.push(layer, &keys, &values);
                first += seg.tokens.len();
            }
            let caches: Vec<&KvCache> = segments.iter().map(|seg| &*seg.cache).collect();
            let mut att = vec![0.0; n * q_dim];
            att.par_chunks_mut(hd).enumerate().for_each(|(i, out)| {
                let (row, head) = (i / c.n_heads, i % c.n_heads);
                let (s, pos) = rows[row];
                let q = &qkv[row * qkv_dim + head * hd..][..hd];
                attend(caches[s], layer, heads, head, pos, q, out);
            });
            add_into(&mut x, &block.attn_out.matmul(&att, n));

            let h = rms_norm(&x, &block.ffn_norm, c.rms_eps);
            let gate_up = block.gate_up.matmul(&h, n);
            let act: Vec<f32> = gate_up
                .chunks_exact(2 * c.d_ff)
                .flat_map(|row| {
                    let (gate, up) = row.split_at(c.d_ff);
                    gate.iter().zip(up).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                })
                .collect();
            add_into(&mut x, &block.down.matmul(&act, n));
        }

        let mut last = Vec::with_capacity(segments.len() * d);
        let mut end = 0;
        for seg in segments.iter_mut() {
            end += seg.tokens.len();
            last.extend_from_slice(&x[(end - 1) * d..end * d]);
            seg.cache.advance(seg.tokens.len());
        }
        let last = rms_norm(&last, &self.out_norm, c.rms_eps);
        self.output().matmul(&last, segments.len())
    }
}

/// RMSNorm of every row of `x` (rows of `weight.len()`), scaled by `weight`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(weight.len()) {
        let mean_sq = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / row.len() as f64;
        let inv = (1.0 / (mean_sq + eps as f64).sqrt()) as f32;
        out.extend(row.iter().zip(weight).map(|(&v, &w)| v * inv * w));
    }
    out
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
