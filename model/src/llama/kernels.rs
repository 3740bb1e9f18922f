//! The inner loop of every matrix product in the engine: one weight row against many
//! activation rows, with SIMD chosen at run time.
//!
//! The workspace compiles for baseline x86-64 (SSE2), so the loop is compiled again
//! inside functions that enable AVX-512 or AVX2+FMA and the best one the CPU has is
//! called. The loop keeps 16 independent partial sums per activation row (one 512-bit or
//! two 256-bit registers) and takes four activation rows per pass, so each weight load
//! feeds four fused multiply-adds.

/// Partial sums per activation row: the SIMD width the loop is written for.
const LANES: usize = 16;
/// Activation rows per pass over the weight row.
const ROWS: usize = 4;

/// `out[i] = w · xs[i·k .. (i+1)·k]` with `k = w.len()`.
pub fn dot_rows(w: &[f32], xs: &[f32], out: &mut [f32]) {
    assert_eq!(
        xs.len(),
        w.len() * out.len(),
        "dot_rows: {} activations for {} rows of {}",
        xs.len(),
        out.len(),
        w.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { dot_rows_avx512(w, xs, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { dot_rows_avx2(w, xs, out) };
        }
    }
    dot_rows_impl::<false>(w, xs, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_rows_avx512(w: &[f32], xs: &[f32], out: &mut [f32]) {
    dot_rows_impl::<true>(w, xs, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2(w: &[f32], xs: &[f32], out: &mut [f32]) {
    dot_rows_impl::<true>(w, xs, out)
}

/// `a·b + c`, fused where the caller was compiled with FMA (unfused `mul_add` would be a
/// slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn dot_rows_impl<const FMA: bool>(w: &[f32], xs: &[f32], out: &mut [f32]) {
    let k = w.len();
    let body = k - k % LANES;
    let done = out.len() - out.len() % ROWS;
    let groups = out.chunks_exact_mut(ROWS);
    for (g, outs) in groups.enumerate() {
        let x: [&[f32]; ROWS] = std::array::from_fn(|r| &xs[(g * ROWS + r) * k..(g * ROWS + r + 1) * k]);
        let mut acc = [[0f32; LANES]; ROWS];
        for c in (0..body).step_by(LANES) {
            let wc = &w[c..c + LANES];
            for r in 0..ROWS {
                let xc = &x[r][c..c + LANES];
                for l in 0..LANES {
                    acc[r][l] = madd::<FMA>(wc[l], xc[l], acc[r][l]);
                }
            }
        }
        for r in 0..ROWS {
            let tail: f32 = (body..k).map(|i| w[i] * x[r][i]).sum();
            outs[r] = acc[r].iter().sum::<f32>() + tail;
        }
    }
    for i in done..out.len() {
        let x = &xs[i * k..(i + 1) * k];
        let mut acc = [0f32; LANES];
        for c in (0..body).step_by(LANES) {
            for l in 0..LANES {
                acc[l] = madd::<FMA>(w[c + l], x[c + l], acc[l]);
            }
        }
        let tail: f32 = (body..k).map(|j| w[j] * x[j]).sum();
        out[i] = acc.iter().sum::<f32>() + tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_reference_for_every_row_count_and_tail() {
        let mut rng = tensor::Rng::seed(3);
        for (k, rows) in [(1, 1), (16, 4), (37, 5), (576, 9), (100, 3)] {
            let w: Vec<f32> = (0..k).map(|_| rng.normal() as f32).collect();
            let xs: Vec<f32> = (0..k * rows).map(|_| rng.normal() as f32).collect();
            let mut out = vec![0.0; rows];
            dot_rows(&w, &xs, &mut out);
            let mut portable = vec![0.0; rows];
            dot_rows_impl::<false>(&w, &xs, &mut portable);
            for r in 0..rows {
                let exact: f64 = (0..k).map(|i| w[i] as f64 * xs[r * k + i] as f64).sum();
                let tol = 1e-5 * (k as f64).sqrt() * 4.0;
                assert!((out[r] as f64 - exact).abs() < tol, "k {k} row {r}: {} vs {exact}", out[r]);
                assert!((portable[r] as f64 - exact).abs() < tol, "portable k {k} row {r}");
            }
        }
    }
}
