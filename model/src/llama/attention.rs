//! Rotary position embedding on interleaved pairs, the key/value cache, and causal
//! grouped-query attention of new rows against the cache.

use super::kernels::{products, Weights};

/// The rotation of one position: pair `i` of every head turns by `pos · base^(-2i/head_dim)`.
/// llama.cpp's converter permutes the q/k weights of Hugging Face checkpoints so that
/// rotating pairs `(x[2i], x[2i+1])` (its "normal" RoPE) reproduces their rotate-half
/// convention. Built once per row of a forward pass and applied in every layer.
pub struct Rotation {
    cos_sin: Vec<(f32, f32)>,
}

impl Rotation {
    pub fn new(pos: usize, head_dim: usize, base: f32) -> Rotation {
        let cos_sin = (0..head_dim / 2)
            .map(|i| {
                let angle = pos as f64 * (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
                (angle.cos() as f32, angle.sin() as f32)
            })
            .collect();
        Rotation { cos_sin }
    }

    /// Rotates every head of `x` (heads of `head_dim`).
    pub fn apply(&self, x: &mut [f32]) {
        for head in x.chunks_exact_mut(2 * self.cos_sin.len()) {
            for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(&self.cos_sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos - b * sin;
                pair[1] = a * sin + b * cos;
            }
        }
    }
}

/// Keys and values of one sequence, per layer and key/value head: `len` rows of
/// `head_dim` each, so a head's keys are one contiguous matrix for the score product.
#[derive(Clone, Debug)]
pub struct KvCache {
    len: usize,
    head_dim: usize,
    keys: Vec<Vec<Vec<f32>>>,
    values: Vec<Vec<Vec<f32>>>,
}

impl KvCache {
    pub fn new(n_layers: usize, n_kv_heads: usize, head_dim: usize) -> Self {
        let empty = vec![vec![Vec::new(); n_kv_heads]; n_layers];
        KvCache { len: 0, head_dim, keys: empty.clone(), values: empty }
    }

    /// Positions cached (in every layer, between forward passes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends rows of keys and values (rows of `n_kv_heads · head_dim`) to `layer`.
    pub fn push(&mut self, layer: usize, keys: &[f32], values: &[f32]) {
        let hd = self.head_dim;
        for (store, rows) in [(&mut self.keys[layer], keys), (&mut self.values[layer], values)] {
            for row in rows.chunks_exact(hd * store.len()) {
                for (head, part) in store.iter_mut().zip(row.chunks_exact(hd)) {
                    head.extend_from_slice(part);
                }
            }
        }
    }

    /// Marks `n` pushed positions as complete in all layers.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

/// Shapes of one attention computation.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Causal attention of one query head at position `pos` over the first `pos + 1` cached
/// rows of `layer` (query head `h` reads key/value head `h / (n_heads / n_kv_heads)`).
/// Writes `head_dim` values into `out`.
pub fn attend(cache: &KvCache, layer: usize, heads: Heads, head: usize, pos: usize, q: &[f32], out: &mut [f32]) {
    let hd = heads.head_dim;
    let kv_head = head / (heads.n_heads / heads.n_kv_heads);
    let keys = &cache.keys[layer][kv_head][..(pos + 1) * hd];
    let values = &cache.values[layer][kv_head][..(pos + 1) * hd];
    let mut scores = vec![0.0; pos + 1];
    products(Weights::F32(keys), q, hd, &mut scores);
    let scale = 1.0 / (hd as f32).sqrt();
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s * scale));
    let mut total = 0.0;
    for s in scores.iter_mut() {
        *s = (*s * scale - max).exp();
        total += *s;
    }
    out.fill(0.0);
    for (&p, v) in scores.iter().zip(values.chunks_exact(hd)) {
        let w = p / total;
        for (o, &x) in out.iter_mut().zip(v) {
            *o += w * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_interleaved_pairs_by_position_times_frequency() {
        let (hd, base, pos) = (8, 100.0, 3);
        // Two heads; each pair (x[2i], x[2i+1]) = (1, 0) turns into (cos θ_i, sin θ_i).
        let mut x: Vec<f32> = (0..2 * hd).map(|j| if j % 2 == 0 { 1.0 } else { 0.0 }).collect();
        Rotation::new(pos, hd, base).apply(&mut x);
        for head in x.chunks(hd) {
            for i in 0..hd / 2 {
                let theta = pos as f64 * (base as f64).powf(-2.0 * i as f64 / hd as f64);
                assert!((head[2 * i] as f64 - theta.cos()).abs() < 1e-6, "pair {i}");
                assert!((head[2 * i + 1] as f64 - theta.sin()).abs() < 1e-6, "pair {i}");
            }
        }
        // Pair 0 turns by exactly `pos` radians; position 0 is the identity.
        assert!((x[0] - 3f32.cos()).abs() < 1e-6);
        let mut y = vec![0.5, -2.0, 3.0, 4.0];
        Rotation::new(0, 4, 10_000.0).apply(&mut y);
        assert_eq!(y, [0.5, -2.0, 3.0, 4.0]);
        // Dot products depend only on the relative position (what RoPE is for).
        let (q, k) = (vec![0.3, -1.2, 0.7, 0.1], vec![-0.4, 0.9, 1.5, -0.6]);
        let dot_at = |pq: usize, pk: usize| {
            let (mut a, mut b) = (q.clone(), k.clone());
            Rotation::new(pq, 4, 10_000.0).apply(&mut a);
            Rotation::new(pk, 4, 10_000.0).apply(&mut b);
            a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        };
        assert!((dot_at(7, 2) - dot_at(15, 10)).abs() < 1e-5);
    }

    #[test]
    fn attention_matches_softmax_reference_with_grouped_heads() {
        let heads = Heads { n_heads: 4, n_kv_heads: 2, head_dim: 2 };
        let mut cache = KvCache::new(1, 2, 2);
        let keys = [1.0, 0.0, 0.0, 1.0, /* pos 1 */ 0.0, 2.0, 1.0, 1.0];
        let values = [1.0, 2.0, 3.0, 4.0, /* pos 1 */ 5.0, 6.0, 7.0, 8.0];
        cache.push(0, &keys, &values);
        cache.advance(2);
        let q = [1.0, 1.0];
        let mut out = [0.0; 2];
        // Head 3 reads kv head 1: keys (0, 1) and (1, 1), values (3, 4) and (7, 8).
        attend(&cache, 0, heads, 3, 1, &q, &mut out);
        let s = [1.0 / 2f32.sqrt(), 2.0 / 2f32.sqrt()];
        let p1 = s[1].exp() / (s[0].exp() + s[1].exp());
        assert!((out[0] - (3.0 * (1.0 - p1) + 7.0 * p1)).abs() < 1e-6);
        assert!((out[1] - (4.0 * (1.0 - p1) + 8.0 * p1)).abs() < 1e-6);
        // Position 0 sees only the first row.
        attend(&cache, 0, heads, 0, 0, &q, &mut out);
        assert_eq!(out, [1.0, 2.0]);
    }
}
