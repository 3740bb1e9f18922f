//! Stable hashing and a tiny seeded generator.
//!
//! Cache keys, tokenizer fingerprints, the train/validation split and the
//! loader's shuffles must come out the same on every machine and every
//! version of every dependency, so they use these fixed algorithms rather
//! than `std`'s randomly keyed hasher or an external RNG crate.

/// FNV-1a, 64 bits: a streaming hash with a fixed definition.
#[derive(Clone, Debug)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Hashes a length prefix and then the bytes, so that concatenations
    /// of different pieces cannot collide ("ab"+"c" vs "a"+"bc").
    pub fn field(&mut self, data: &[u8]) -> &mut Self {
        self.u64(data.len() as u64).bytes(data)
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// The final value, passed through a mixer so that every output bit
    /// depends on every input bit (FNV's low bits alone are weak).
    pub fn finish(&self) -> u64 {
        mix64(self.0)
    }
}

/// Hashes one byte string.
pub fn stable_hash(data: &[u8]) -> u64 {
    StableHasher::new().bytes(data).finish()
}

/// The SplitMix64 finaliser: a bijective 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: a small, fast generator whose whole state is one `u64`.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// A uniform integer in `0..n` (Lemire's multiply-shift; the bias for
    /// `n` far below 2^64 is negligible for shuffling).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_values() {
        // FNV-1a 64 of "" and "a" (before mixing) are published constants.
        assert_eq!(StableHasher::new().0, 0xcbf29ce484222325);
        assert_eq!(StableHasher::new().bytes(b"a").0, 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn field_prefix_separates_concatenations() {
        let ab_c = StableHasher::new().field(b"ab").field(b"c").finish();
        let a_bc = StableHasher::new().field(b"a").field(b"bc").finish();
        assert_ne!(ab_c, a_bc);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        SplitMix64::new(7).shuffle(&mut a);
        SplitMix64::new(7).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
    }
}
