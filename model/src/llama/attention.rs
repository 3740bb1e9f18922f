//! Rotary position embedding on interleaved pairs, the key/value cache, and causal
//! grouped-query attention of new rows against the cache.

/// Rotates every head of `x` (`n_heads` heads of `head_dim`) for position `pos`, pairs
/// `(x[2i], x[2i+1])` by `pos · base^(-2i/head_dim)`. llama.cpp's converter permutes the
/// q/k weights of Hugging Face checkpoints so that this pairing (its "normal" RoPE)
/// reproduces their rotate-half convention.
pub fn rope(x: &mut [f32], head_dim: usize, pos: usize, base: f32) {
    let half = head_dim / 2;
    let (cos, sin): (Vec<f32>, Vec<f32>) = (0..half)
        .map(|i| {
            let angle = pos as f64 * (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
            (angle.cos() as f32, angle.sin() as f32)
        })
        .unzip();
    for head in x.chunks_exact_mut(head_dim) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos[i] - b * sin[i];
            pair[1] = a * sin[i] + b * cos[i];
        }
    }
}

/// Keys and values of one sequence, per layer: `len` rows of `kv_dim`.
#[derive(Clone, Debug)]
pub struct KvCache {
    len: usize,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        KvCache { len: 0, keys: vec![Vec::new(); n_layers], values: vec![Vec::new(); n_layers] }
    }

    /// Positions cached (in every layer, between forward passes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends rows of keys and values to `layer`.
    pub fn push(&mut self, layer: usize, keys: &[f32], values: &[f32]) {
        self.keys[layer].extend_from_slice(keys);
        self.values[layer].extend_from_slice(values);
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
    let kv_dim = heads.n_kv_heads * hd;
    let kv_head = head / (heads.n_heads / heads.n_kv_heads);
    let scale = 1.0 / (hd as f32).sqrt();
    let keys = &cache.keys[layer];
    let values = &cache.values[layer];
    let mut scores: Vec<f32> = (0..=pos)
        .map(|t| {
            let k = &keys[t * kv_dim + kv_head * hd..][..hd];
            q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale
        })
        .collect();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        total += *s;
    }
    out.fill(0.0);
    for (t, &p) in scores.iter().enumerate() {
        let v = &values[t * kv_dim + kv_head * hd..][..hd];
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
        rope(&mut x, hd, pos, base);
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
        rope(&mut y, 4, 0, 10_000.0);
        assert_eq!(y, [0.5, -2.0, 3.0, 4.0]);
        // Dot products depend only on the relative position (what RoPE is for).
        let (q, k) = (vec![0.3, -1.2, 0.7, 0.1], vec![-0.4, 0.9, 1.5, -0.6]);
        let dot_at = |pq: usize, pk: usize| {
            let (mut a, mut b) = (q.clone(), k.clone());
            rope(&mut a, 4, pq, 10_000.0);
            rope(&mut b, 4, pk, 10_000.0);
            a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        };
        assert!((dot_at(7, 2) - dot_at(15, 10)).abs() < 1e-5);
    }

    #[test]
    fn attention_matches_softmax_reference_with_grouped_heads() {
        let heads = Heads { n_heads: 4, n_kv_heads: 2, head_dim: 2 };
        let mut cache = KvCache::new(1);
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
