//! The inner loop of every matrix product in the engine: a few weight rows against a few
//! activation rows at a time (a register tile), with SIMD chosen at run time.
//!
//! Every product is defined the same way whatever the tile, batch or instruction set:
//! sixteen partial sums, lane `l` accumulating the elements `l, l + 16, …` with fused
//! multiply-adds, added up by a fixed pairwise tree ([`Lanes::sum`]), then the elements
//! past the last multiple of 16 added one by one. So a row's result has the same bits
//! alone or in a batch, on one thread or many, and on AVX-512, AVX2 or the portable path.
//!
//! The tile is written once, generic over [`Lanes`] (one 512-bit register, two 256-bit
//! registers, or an array), and compiled inside functions that enable the instruction set
//! ([`isa`] picks the best one the CPU has, once). Intrinsics are used because the
//! compiler does not vectorise the portable loop: it keeps the sixteen sums in memory
//! and runs scalar fused multiply-adds (seen with `perf`, 15× slower).
//!
//! Quantised weights are decoded sixteen values at a time straight into registers
//! ([`Lanes::q4_1`], [`Lanes::q8_0`]) with the reference formula's rounding (`d·q + m`,
//! multiply and add unfused), so decoding inside the product or into a buffer first
//! gives the same values as [`super::quant::dequantize`].

use std::sync::OnceLock;

use super::quant::{BlockRows, GgmlType, Packed};

/// The instruction sets the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Portable,
    Avx2,
    Avx512,
}

/// The best [`Isa`] this CPU runs, detected on the first call.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            if fma && std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if fma && std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    })
}

/// Partial sums per product.
pub const LANES: usize = 16;

/// Sixteen `f32` lanes on one instruction set. The methods are `unsafe` because the
/// SIMD implementations need their target features, which the caller guarantees.
trait Lanes: Copy {
    unsafe fn zero() -> Self;
    /// Sixteen values from `p`.
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `d·q + m` for sixteen nibbles: the low (`HIGH = false`) or high nibbles of the
    /// sixteen bytes at `q`.
    unsafe fn q4_1<const HIGH: bool>(q: *const u8, d: f32, m: f32) -> Self;
    /// `d·q` for the sixteen `i8` at `q`.
    unsafe fn q8_0(q: *const u8, d: f32) -> Self;
    /// `a·b + acc`, rounded once.
    unsafe fn fma(a: Self, b: Self, acc: Self) -> Self;
    /// `((v0..8 + v8..16) → (v0..4 + v4..8) → (v0..2 + v2..4) → v0 + v1)`.
    unsafe fn sum(self) -> f32;
}

/// The portable lanes (and the reference the SIMD ones are tested against).
#[derive(Clone, Copy)]
struct Portable([f32; LANES]);

impl Lanes for Portable {
    unsafe fn zero() -> Self {
        Portable([0.0; LANES])
    }

    unsafe fn load(p: *const f32) -> Self {
        Portable(std::array::from_fn(|l| *p.add(l)))
    }

    unsafe fn store(self, p: *mut f32) {
        std::ptr::copy_nonoverlapping(self.0.as_ptr(), p, LANES);
    }

    unsafe fn q4_1<const HIGH: bool>(q: *const u8, d: f32, m: f32) -> Self {
        Portable(std::array::from_fn(|l| {
            let byte = *q.add(l);
            d * f32::from(if HIGH { byte >> 4 } else { byte & 0x0f }) + m
        }))
    }

    unsafe fn q8_0(q: *const u8, d: f32) -> Self {
        Portable(std::array::from_fn(|l| d * f32::from(*q.add(l) as i8)))
    }

    unsafe fn fma(a: Self, b: Self, acc: Self) -> Self {
        Portable(std::array::from_fn(|l| a.0[l].mul_add(b.0[l], acc.0[l])))
    }

    unsafe fn sum(self) -> f32 {
        let mut v = self.0;
        let mut half = LANES / 2;
        while half > 0 {
            for l in 0..half {
                v[l] += v[l + half];
            }
            half /= 2;
        }
        v[0]
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Lanes;

    /// The low or high nibbles of the sixteen bytes at `q`, one per byte.
    #[inline(always)]
    unsafe fn nibbles<const HIGH: bool>(q: *const u8) -> __m128i {
        let q = _mm_loadu_si128(q.cast());
        let q = if HIGH { _mm_srli_epi16::<4>(q) } else { q };
        _mm_and_si128(q, _mm_set1_epi8(0x0f))
    }

    /// The low eight bytes of `v` as f32: sign-extended (`SIGNED`) or zero-extended.
    #[inline(always)]
    unsafe fn widen<const SIGNED: bool>(v: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(if SIGNED { _mm256_cvtepi8_epi32(v) } else { _mm256_cvtepu8_epi32(v) })
    }

    /// The last step of [`Lanes::sum`] from eight lanes.
    #[inline(always)]
    unsafe fn sum8(v: __m256) -> f32 {
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)))
    }

    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    impl Lanes for Avx512 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(_mm512_setzero_ps())
        }

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(_mm512_loadu_ps(p))
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }

        #[inline(always)]
        unsafe fn q4_1<const HIGH: bool>(q: *const u8, d: f32, m: f32) -> Self {
            let q = nibbles::<HIGH>(q);
            let q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q));
            Avx512(_mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(d), q), _mm512_set1_ps(m)))
        }

        #[inline(always)]
        unsafe fn q8_0(q: *const u8, d: f32) -> Self {
            let q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q.cast())));
            Avx512(_mm512_mul_ps(_mm512_set1_ps(d), q))
        }

        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, acc: Self) -> Self {
            Avx512(_mm512_fmadd_ps(a.0, b.0, acc.0))
        }

        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            let lo = _mm512_castps512_ps256(self.0);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            sum8(_mm256_add_ps(lo, hi))
        }
    }

    /// Lanes 0–7 and 8–15.
    #[derive(Clone, Copy)]
    pub struct Avx2(__m256, __m256);

    impl Lanes for Avx2 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx2(_mm256_setzero_ps(), _mm256_setzero_ps())
        }

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0);
            _mm256_storeu_ps(p.add(8), self.1);
        }

        #[inline(always)]
        unsafe fn q4_1<const HIGH: bool>(q: *const u8, d: f32, m: f32) -> Self {
            let q = nibbles::<HIGH>(q);
            let (d, m) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
            let hi = _mm_srli_si128::<8>(q);
            Avx2(
                _mm256_add_ps(_mm256_mul_ps(d, widen::<false>(q)), m),
                _mm256_add_ps(_mm256_mul_ps(d, widen::<false>(hi)), m),
            )
        }

        #[inline(always)]
        unsafe fn q8_0(q: *const u8, d: f32) -> Self {
            let d = _mm256_set1_ps(d);
            let (lo, hi) = (_mm_loadl_epi64(q.cast()), _mm_loadl_epi64(q.add(8).cast()));
            Avx2(_mm256_mul_ps(d, widen::<true>(lo)), _mm256_mul_ps(d, widen::<true>(hi)))
        }

        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, acc: Self) -> Self {
            Avx2(_mm256_fmadd_ps(a.0, b.0, acc.0), _mm256_fmadd_ps(a.1, b.1, acc.1))
        }

        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            sum8(_mm256_add_ps(self.0, self.1))
        }
    }
}

/// Weight rows as the products read them.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    Blocks(BlockRows<'a>),
}

/// Where a tile reads its weights: sixteen at a time, decoded if quantised.
trait Source: Copy {
    /// Weights `c .. c + 16` of row `r` (`c` a multiple of 16).
    unsafe fn load<V: Lanes>(self, r: usize, c: usize) -> V;

    /// Weight `j` of row `r` (for the columns past the last multiple of 16).
    unsafe fn get(self, r: usize, j: usize) -> f32 {
        let chunk: Portable = self.load(r, j - j % LANES);
        chunk.0[j % LANES]
    }
}

#[derive(Clone, Copy)]
struct F32Rows {
    w: *const f32,
    k: usize,
}

impl Source for F32Rows {
    #[inline(always)]
    unsafe fn load<V: Lanes>(self, r: usize, c: usize) -> V {
        V::load(self.w.add(r * self.k + c))
    }

    unsafe fn get(self, r: usize, j: usize) -> f32 {
        *self.w.add(r * self.k + j)
    }
}

/// Q4_1 or Q8_0 rows of `blocks` blocks each: a chunk of sixteen is half a block.
#[derive(Clone, Copy)]
struct QuantRows<const Q4_1: bool> {
    scales: *const f32,
    mins: *const f32,
    quants: *const u8,
    blocks: usize,
}

impl<const Q4_1: bool> Source for QuantRows<Q4_1> {
    #[inline(always)]
    unsafe fn load<V: Lanes>(self, r: usize, c: usize) -> V {
        let b = r * self.blocks + c / 32;
        let d = *self.scales.add(b);
        match (Q4_1, c.is_multiple_of(32)) {
            (true, true) => V::q4_1::<false>(self.quants.add(16 * b), d, *self.mins.add(b)),
            (true, false) => V::q4_1::<true>(self.quants.add(16 * b), d, *self.mins.add(b)),
            (false, _) => V::q8_0(self.quants.add(32 * b + c % 32), d),
        }
    }
}

/// `out[r·m + i] = w_r · x_i` for the weight rows in `w` and the `m = xs.len() / k`
/// activation rows, all of length `k` (the layout [`super::matrix::Matrix`] gathers
/// results in: one weight row's products with every activation row together).
pub fn products(w: Weights, xs: &[f32], k: usize, out: &mut [f32]) {
    assert!(k > 0 && xs.len().is_multiple_of(k), "products: rows of {k} in {} activations", xs.len());
    let rows = out.len() / (xs.len() / k).max(1);
    // SAFETY: `checked` proves the weights hold `rows` rows of `k`.
    match checked(w, rows, k) {
        Checked::F32(s) => unsafe { products_on(s, rows, xs, k, out) },
        Checked::Q4_1(s) => unsafe { products_on(s, rows, xs, k, out) },
        Checked::Q8_0(s) => unsafe { products_on(s, rows, xs, k, out) },
    }
}

/// Decodes the weight rows in `w` (rows of `k`) into `out`, which holds exactly them.
pub fn decode(w: Weights, k: usize, out: &mut [f32]) {
    assert!(k > 0 && out.len().is_multiple_of(k), "decode: rows of {k} into {} values", out.len());
    let rows = out.len() / k;
    // SAFETY: `checked` proves the weights hold `rows` rows of `k`.
    match checked(w, rows, k) {
        Checked::F32(s) => unsafe { decode_on(s, rows, k, out) },
        Checked::Q4_1(s) => unsafe { decode_on(s, rows, k, out) },
        Checked::Q8_0(s) => unsafe { decode_on(s, rows, k, out) },
    }
}

enum Checked {
    F32(F32Rows),
    Q4_1(QuantRows<true>),
    Q8_0(QuantRows<false>),
}

/// The source for `w` once its sizes are checked against `rows` rows of `k`.
fn checked(w: Weights, rows: usize, k: usize) -> Checked {
    match w {
        Weights::F32(w) => {
            assert_eq!(w.len(), rows * k, "products: {} weights for {rows} rows of {k}", w.len());
            Checked::F32(F32Rows { w: w.as_ptr(), k })
        }
        Weights::Blocks(b) => {
            assert!(k.is_multiple_of(32), "products: rows of {k} are not whole blocks");
            let blocks = k / 32;
            let q4_1 = b.ty == GgmlType::Q4_1;
            assert!(
                b.scales.len() == rows * blocks
                    && b.quants.len() == b.scales.len() * Packed::quant_bytes(b.ty)
                    && b.mins.len() == if q4_1 { b.scales.len() } else { 0 },
                "products: {:?} blocks do not hold {rows} rows of {k}",
                b.ty
            );
            let (scales, mins, quants) = (b.scales.as_ptr(), b.mins.as_ptr(), b.quants.as_ptr());
            if q4_1 {
                Checked::Q4_1(QuantRows { scales, mins, quants, blocks })
            } else {
                Checked::Q8_0(QuantRows { scales, mins, quants, blocks })
            }
        }
    }
}

/// The tile shapes: 4 × 4 on AVX-512 (16 accumulators, 4 weight registers and 1
/// activation register of the 32), 2 × 2 register pairs on AVX2 (14 of 16).
unsafe fn products_on<S: Source>(w: S, rows: usize, xs: &[f32], k: usize, out: &mut [f32]) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => products_avx512(w, rows, xs, k, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => products_avx2(w, rows, xs, k, out),
        _ => products_with::<Portable, S, 2, 2>(w, rows, xs, k, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn products_avx512<S: Source>(w: S, rows: usize, xs: &[f32], k: usize, out: &mut [f32]) {
    products_with::<x86::Avx512, S, 4, 4>(w, rows, xs, k, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn products_avx2<S: Source>(w: S, rows: usize, xs: &[f32], k: usize, out: &mut [f32]) {
    products_with::<x86::Avx2, S, 2, 2>(w, rows, xs, k, out)
}

unsafe fn decode_on<S: Source>(w: S, rows: usize, k: usize, out: &mut [f32]) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => decode_avx512(w, rows, k, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => decode_avx2(w, rows, k, out),
        _ => decode_with::<Portable, S>(w, rows, k, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn decode_avx512<S: Source>(w: S, rows: usize, k: usize, out: &mut [f32]) {
    decode_with::<x86::Avx512, S>(w, rows, k, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn decode_avx2<S: Source>(w: S, rows: usize, k: usize, out: &mut [f32]) {
    decode_with::<x86::Avx2, S>(w, rows, k, out)
}

#[inline(always)]
unsafe fn decode_with<V: Lanes, S: Source>(w: S, rows: usize, k: usize, out: &mut [f32]) {
    let body = k - k % LANES;
    for r in 0..rows {
        let row = &mut out[r * k..(r + 1) * k];
        for c in (0..body).step_by(LANES) {
            w.load::<V>(r, c).store(row[c..c + LANES].as_mut_ptr());
        }
        for (j, o) in row.iter_mut().enumerate().skip(body) {
            *o = w.get(r, j);
        }
    }
}

/// Whole `R`-row groups of weights, then the remaining rows one at a time.
#[inline(always)]
unsafe fn products_with<V: Lanes, S: Source, const R: usize, const C: usize>(
    w: S,
    rows: usize,
    xs: &[f32],
    k: usize,
    out: &mut [f32],
) {
    let m = xs.len() / k;
    let mut r = 0;
    while r + R <= rows {
        weight_rows::<V, S, R, C>(w, r, xs, k, &mut out[r * m..(r + R) * m]);
        r += R;
    }
    for r in r..rows {
        weight_rows::<V, S, 1, C>(w, r, xs, k, &mut out[r * m..(r + 1) * m]);
    }
}

/// Weight rows `r0 .. r0 + R` against all activation rows, `C` at a time, then one at
/// a time.
#[inline(always)]
unsafe fn weight_rows<V: Lanes, S: Source, const R: usize, const C: usize>(
    w: S,
    r0: usize,
    xs: &[f32],
    k: usize,
    out: &mut [f32],
) {
    let m = xs.len() / k;
    let mut i = 0;
    while i + C <= m {
        let sums = tile::<V, S, R, C>(w, r0, xs[i * k..].as_ptr(), k);
        for (r, row) in sums.iter().enumerate() {
            out[r * m + i..r * m + i + C].copy_from_slice(row);
        }
        i += C;
    }
    for i in i..m {
        let sums = tile::<V, S, R, 1>(w, r0, xs[i * k..].as_ptr(), k);
        for (r, row) in sums.iter().enumerate() {
            out[r * m + i] = row[0];
        }
    }
}

/// The products of weight rows `r0 .. r0 + R` with the `C` rows at `x` (rows of `k`).
/// (Index loops: the tile is a grid of registers addressed by row and column.)
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile<V: Lanes, S: Source, const R: usize, const C: usize>(
    w: S,
    r0: usize,
    x: *const f32,
    k: usize,
) -> [[f32; C]; R] {
    let body = k - k % LANES;
    let mut acc = [[V::zero(); C]; R];
    let mut c = 0;
    while c < body {
        let wv: [V; R] = std::array::from_fn(|r| w.load(r0 + r, c));
        for i in 0..C {
            let xv = V::load(x.add(i * k + c));
            for r in 0..R {
                acc[r][i] = V::fma(wv[r], xv, acc[r][i]);
            }
        }
        c += LANES;
    }
    std::array::from_fn(|r| {
        std::array::from_fn(|i| {
            let tail: f32 = (body..k).map(|j| w.get(r0 + r, j) * *x.add(i * k + j)).sum();
            acc[r][i].sum() + tail
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llama::quant::dequantize;

    fn random(n: usize, rng: &mut tensor::Rng) -> Vec<f32> {
        (0..n).map(|_| rng.normal() as f32).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Random blocks of `ty` with finite f16 scales (exponent bits kept below infinity).
    fn random_blocks(ty: GgmlType, n: usize, rng: &mut tensor::Rng) -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..ty.bytes_for(n)).map(|_| rng.below(256) as u8).collect();
        for b in bytes.chunks_exact_mut(ty.block_bytes()) {
            b[1] &= 0x3b;
            b[3] &= 0xbb;
        }
        bytes
    }

    #[test]
    fn products_match_f64_for_every_shape_and_tail() {
        let mut rng = tensor::Rng::seed(3);
        for (k, rows, m) in [(1, 1, 1), (16, 4, 4), (37, 5, 5), (576, 9, 7), (100, 3, 1), (64, 1, 9)] {
            let w = random(k * rows, &mut rng);
            let xs = random(k * m, &mut rng);
            let mut out = vec![0.0; rows * m];
            products(Weights::F32(&w), &xs, k, &mut out);
            for r in 0..rows {
                for i in 0..m {
                    let exact: f64 = (0..k).map(|j| w[r * k + j] as f64 * xs[i * k + j] as f64).sum();
                    let tol = 1e-5 * (k as f64).sqrt() * 4.0;
                    assert!(
                        (out[r * m + i] as f64 - exact).abs() < tol,
                        "k {k} ({r}, {i}): {} vs {exact}",
                        out[r * m + i]
                    );
                }
            }
        }
    }

    #[test]
    fn every_path_tile_and_batch_gives_the_same_bits() {
        let mut rng = tensor::Rng::seed(4);
        let (k, rows, m) = (83, 7, 6);
        let w = random(k * rows, &mut rng);
        let xs = random(k * m, &mut rng);
        let mut dispatched = vec![0.0; rows * m];
        products(Weights::F32(&w), &xs, k, &mut dispatched);
        // The portable lanes with another tile shape.
        let mut portable = vec![0.0; rows * m];
        let source = F32Rows { w: w.as_ptr(), k };
        unsafe { products_with::<Portable, _, 3, 4>(source, rows, &xs, k, &mut portable) };
        assert_eq!(bits(&dispatched), bits(&portable));
        // Each activation row alone.
        for i in 0..m {
            let mut alone = vec![0.0; rows];
            products(Weights::F32(&w), &xs[i * k..(i + 1) * k], k, &mut alone);
            let column: Vec<f32> = (0..rows).map(|r| dispatched[r * m + i]).collect();
            assert_eq!(bits(&alone), bits(&column), "row {i}");
        }
    }

    #[test]
    fn quantised_rows_decode_and_multiply_like_the_reference_dequantisation() {
        let mut rng = tensor::Rng::seed(5);
        let (k, rows, m) = (96, 5, 6);
        for ty in [GgmlType::Q4_1, GgmlType::Q8_0] {
            let bytes = random_blocks(ty, rows * k, &mut rng);
            let mut reference = vec![0.0f32; rows * k];
            dequantize(ty, &bytes, &mut reference);
            assert!(reference.iter().all(|v| v.is_finite()));
            let packed = Packed::from_blocks(ty, &bytes);
            let blocks = Weights::Blocks(packed.rows(0..rows, k / 32));
            let mut decoded = vec![0.0; rows * k];
            decode(blocks, k, &mut decoded);
            assert_eq!(bits(&decoded), bits(&reference), "{ty:?} decode");
            let source = checked(blocks, rows, k);
            let mut portable = vec![0.0; rows * k];
            match source {
                Checked::Q4_1(s) => unsafe { decode_with::<Portable, _>(s, rows, k, &mut portable) },
                Checked::Q8_0(s) => unsafe { decode_with::<Portable, _>(s, rows, k, &mut portable) },
                Checked::F32(_) => unreachable!(),
            }
            assert_eq!(bits(&portable), bits(&reference), "{ty:?} portable decode");
            // Products straight from the blocks equal products with the decoded rows.
            let xs = random(k * m, &mut rng);
            let (mut fused, mut dense) = (vec![0.0; rows * m], vec![0.0; rows * m]);
            products(blocks, &xs, k, &mut fused);
            products(Weights::F32(&reference), &xs, k, &mut dense);
            assert_eq!(bits(&fused), bits(&dense), "{ty:?} products");
            // A range of rows reads only those rows.
            let mut last = vec![0.0; 2 * k];
            decode(Weights::Blocks(packed.rows(3..5, k / 32)), k, &mut last);
            assert_eq!(bits(&last), bits(&reference[3 * k..]));
        }
    }
}
