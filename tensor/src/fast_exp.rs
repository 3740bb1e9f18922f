//! A branch-free `f32` exponential that the compiler vectorises inside loops.
//!
//! `f32::exp` is a call into the C library, one element at a time; softmax, cross-entropy
//! over the vocabulary and attention spend most of their time there. This version is
//! straight-line arithmetic (selects, no branches or calls), so a loop over a slice
//! becomes SIMD code, and it stays within 2 ulp of the correctly rounded result.
//!
//! Method: `x = n·ln 2 + r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2` (Cody–Waite
//! split of ln 2 so `r` is exact), `e^r` by its degree-7 Taylor polynomial (truncation
//! error below 3e-9 relative), and `2^n` assembled in exponent bits. Results below
//! the normal range (`x < −87.33`) flush to zero, as on GPUs.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` is exact for the `|n| ≤ 128` that occur.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Adding 1.5·2²³ rounds to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// Largest `x` with a finite `e^x`; smallest with a normal one.
const MAX_X: f32 = 88.722_83;
const MIN_X: f32 = -87.336_55;

/// `e^x` for `f32`, within 2 ulp; `e^x` below `f32::MIN_POSITIVE` is 0.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let clamped = x.clamp(MIN_X, MAX_X);
    let t = clamped * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + c;
    }
    // 2ⁿ from n held in t's low mantissa bits (two's complement around ROUND), as two
    // factors so that n = 128 (x near MAX_X) still fits the exponent field.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let half = n_bits >> 1;
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let y = p * pow2(half) * pow2(n_bits - half);
    // Beyond the range the clamped value's result is wrong: saturate explicitly.
    let y = if x > MAX_X { f32::INFINITY } else { y };
    let y = if x < MIN_X { 0.0 } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two positive finite floats.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn within_two_ulp_of_the_correctly_rounded_exponential() {
        let mut worst = (0, 0.0f32);
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = MIN_X + (MAX_X - MIN_X) * i as f32 / steps as f32;
            let want = (x as f64).exp() as f32;
            let e = ulps(exp_f32(x), want);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exact_at_zero_and_saturates_outside_the_range() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(MAX_X), (MAX_X as f64).exp() as f32);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
