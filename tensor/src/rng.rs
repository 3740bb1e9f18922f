//! A small, fast, seedable generator whose whole state fits in four words, so a
//! checkpoint can store it and a resumed run continues the exact same stream.
//! (xoshiro256++, seeded through SplitMix64.) Also the seeded tensor initialisers.

use crate::backend::Backend;
use crate::element::Element;
use crate::tensor::Tensor;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn seed(seed: u64) -> Self {
        let mut x = seed;
        Rng { s: std::array::from_fn(|_| splitmix64(&mut x)) }
    }
    /// The full generator state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }
    pub fn from_state(s: [u64; 4]) -> Self {
        assert!(s != [0; 4], "Rng::from_state: the all-zero state is invalid for xoshiro256++");
        Rng { s }
    }
    /// An independent generator derived from this one (e.g. one per data worker).
    pub fn fork(&mut self) -> Self {
        Rng::seed(self.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform integer in `0..n` (Lemire's multiply-shift, unbiased).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

impl rand::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        (Rng::next_u64(self) >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        Rng::next_u64(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = Rng::next_u64(self).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

fn filled<B: Backend>(shape: &[usize], backend: &B, mut f: impl FnMut() -> f64) -> Tensor<B> {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| B::Elem::from_f64(f())).collect(), shape, backend)
}

impl<B: Backend> Tensor<B> {
    /// Normal(mean, std²) entries.
    pub fn randn(shape: &[usize], mean: f64, std: f64, rng: &mut Rng, backend: &B) -> Self {
        filled(shape, backend, || mean + std * rng.normal())
    }
    /// Uniform entries in `[low, high)`.
    pub fn rand_uniform(shape: &[usize], low: f64, high: f64, rng: &mut Rng, backend: &B) -> Self {
        filled(shape, backend, || low + (high - low) * rng.uniform())
    }
    /// Normal(mean, std²) entries redrawn until they fall in `[low, high]` (absolute
    /// bounds, as PyTorch's `trunc_normal_`).
    pub fn trunc_normal(shape: &[usize], mean: f64, std: f64, low: f64, high: f64, rng: &mut Rng, backend: &B) -> Self {
        assert!(
            low < high && low <= mean + 6.0 * std && high >= mean - 6.0 * std,
            "trunc_normal: empty or far interval [{low}, {high}]"
        );
        filled(shape, backend, || loop {
            let x = mean + std * rng.normal();
            if (low..=high).contains(&x) {
                break x;
            }
        })
    }
}
