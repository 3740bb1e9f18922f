//! A weight matrix `[rows, cols]` (ggml: `ne = [cols, rows]`), kept in its file type
//! where that is a block quantisation, and its product with activation rows.

use rayon::prelude::*;

use super::kernels::{decode, products, Weights};
use super::quant::{dequantize, GgmlType, Packed};

/// Weight rows handled by one parallel task: big enough to amortise scheduling, small
/// enough that the 576-to-49,152-row matrices of SmolLM2 split evenly over the threads.
const ROWS_PER_TASK: usize = 32;

/// Activation rows up to which quantised weights are decoded inside the products
/// rather than into a buffer first.
const DECODE_IN_REGISTERS_MAX_ROWS: usize = 4;

thread_local! {
    /// Each thread's buffer of decoded weight rows (kept: allocating it per task cost a
    /// page-clearing `memset` of every decoded byte).
    static DECODED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Debug)]
enum Data {
    F32(Vec<f32>),
    /// Blocks of a quantised type, row after row.
    Blocks(Packed),
}

#[derive(Clone, Debug)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Data,
}

impl Matrix {
    /// A matrix from the raw bytes of a tensor of type `ty`; F32 and F16 become f32,
    /// block types stay as they are. `cols` must be a multiple of the block length and
    /// `bytes` exactly the size of the tensor (the loader checks both).
    pub fn from_bytes(ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Matrix {
        let data = match ty {
            GgmlType::F32 | GgmlType::F16 => {
                let mut v = vec![0.0; rows * cols];
                dequantize(ty, bytes, &mut v);
                Data::F32(v)
            }
            GgmlType::Q4_1 | GgmlType::Q8_0 => Data::Blocks(Packed::from_blocks(ty, bytes)),
        };
        Matrix { rows, cols, data }
    }

    pub fn from_f32(rows: usize, cols: usize, values: Vec<f32>) -> Matrix {
        assert_eq!(values.len(), rows * cols, "Matrix::from_f32: {} values for {rows}×{cols}", values.len());
        Matrix { rows, cols, data: Data::F32(values) }
    }

    /// The matrices' rows one after another (they must share the column count and type):
    /// one product then computes all of them, as with fused q/k/v projections.
    pub fn stack(parts: Vec<Matrix>) -> Matrix {
        let cols = parts[0].cols;
        let rows = parts.iter().map(|p| p.rows).sum();
        let mut data = parts[0].data.clone();
        for p in &parts[1..] {
            assert_eq!(p.cols, cols, "Matrix::stack: column counts differ");
            match (&mut data, &p.data) {
                (Data::F32(a), Data::F32(b)) => a.extend_from_slice(b),
                (Data::Blocks(a), Data::Blocks(b)) if a.ty == b.ty => a.extend(b),
                _ => panic!("Matrix::stack: types differ"),
            }
        }
        Matrix { rows, cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Rows `rows` as the kernels read them.
    fn weights(&self, rows: std::ops::Range<usize>) -> Weights<'_> {
        match &self.data {
            Data::F32(v) => Weights::F32(&v[rows.start * self.cols..rows.end * self.cols]),
            Data::Blocks(p) => Weights::Blocks(p.rows(rows, self.cols / 32)),
        }
    }

    /// Row `r` as f32 (an embedding lookup), in `out`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        decode(self.weights(r..r + 1), self.cols, out);
    }

    /// `x · Wᵀ` for `x` of `m` rows of `cols`: `m` rows of `rows` values.
    ///
    /// With a few activation rows (decoding), each weight is decoded in registers on its
    /// way into the products. With more (prompts), each task first decodes its weight
    /// rows into a buffer that all activation rows then share. Tasks split the weight
    /// rows, so every weight byte is read once per call whatever `m` is; both ways give
    /// the same bits (the kernels' decoding equals the buffer's).
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.cols, "matmul: {} activations for {m} rows of {}", x.len(), self.cols);
        // Transposed result: weight row r holds its product with every activation row.
        let mut yt = vec![0.0; self.rows * m];
        yt.par_chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(|(task, chunk)| {
            let first = task * ROWS_PER_TASK;
            let w = self.weights(first..first + chunk.len() / m);
            match w {
                Weights::Blocks(_) if m > DECODE_IN_REGISTERS_MAX_ROWS => DECODED.with_borrow_mut(|buf| {
                    buf.resize(chunk.len() / m * self.cols, 0.0);
                    decode(w, self.cols, buf);
                    products(Weights::F32(buf), x, self.cols, chunk);
                }),
                _ => products(w, x, self.cols, chunk),
            }
        });
        if m == 1 {
            return yt;
        }
        let mut y = vec![0.0; m * self.rows];
        for (r, col) in yt.chunks_exact(m).enumerate() {
            for (i, &v) in col.iter().enumerate() {
                y[i * self.rows + r] = v;
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_matches_naive_for_f32_and_blocks() {
        let mut rng = tensor::Rng::seed(11);
        let (rows, cols, m) = (70, 64, 5);
        // Q8_0 blocks with random scales and values, and the same matrix as f32.
        let mut bytes = Vec::new();
        for _ in 0..rows * cols / 32 {
            bytes.extend_from_slice(&[0x00, 0x30]); // d = 0.125
            bytes.extend((0..32).map(|_| (rng.below(255) as i16 - 127) as i8 as u8));
        }
        let q = Matrix::from_bytes(GgmlType::Q8_0, rows, cols, &bytes);
        let mut dense = vec![0.0; rows * cols];
        dequantize(GgmlType::Q8_0, &bytes, &mut dense);
        let stacked = Matrix::stack(vec![
            Matrix::from_f32(30, cols, dense[..30 * cols].to_vec()),
            Matrix::from_f32(40, cols, dense[30 * cols..].to_vec()),
        ]);
        let x: Vec<f32> = (0..m * cols).map(|_| rng.normal() as f32).collect();
        for mat in [&q, &stacked] {
            for rows_in in [1, m] {
                let y = mat.matmul(&x[..rows_in * cols], rows_in);
                for i in 0..rows_in {
                    for r in 0..rows {
                        let exact: f64 = (0..cols).map(|c| dense[r * cols + c] as f64 * x[i * cols + c] as f64).sum();
                        assert!((y[i * rows + r] as f64 - exact).abs() < 1e-3, "row {i} col {r}");
                    }
                }
            }
        }
    }
}
