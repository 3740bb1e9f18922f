//! A weight matrix `[rows, cols]` (ggml: `ne = [cols, rows]`), kept in its file type
//! where that is a block quantisation, and its product with activation rows.

use rayon::prelude::*;

use super::kernels::dot_rows;
use super::quant::{dequantize, GgmlType};

/// Weight rows handled by one parallel task: big enough to amortise scheduling, small
/// enough that the 576-to-49,152-row matrices of SmolLM2 split evenly over the threads.
const ROWS_PER_TASK: usize = 32;

#[derive(Clone, Debug)]
enum Data {
    F32(Vec<f32>),
    /// Whole blocks of a quantised type, row after row.
    Blocks(GgmlType, Vec<u8>),
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
            GgmlType::Q4_1 | GgmlType::Q8_0 => Data::Blocks(ty, bytes.to_vec()),
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
                (Data::Blocks(ta, a), Data::Blocks(tb, b)) if ta == tb => a.extend_from_slice(b),
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

    /// Row `r` as f32: borrowed when stored as f32, otherwise dequantised into `buf`.
    pub fn row<'a>(&'a self, r: usize, buf: &'a mut [f32]) -> &'a [f32] {
        match &self.data {
            Data::F32(v) => &v[r * self.cols..(r + 1) * self.cols],
            Data::Blocks(ty, bytes) => {
                let n = ty.bytes_for(self.cols);
                dequantize(*ty, &bytes[r * n..(r + 1) * n], buf);
                buf
            }
        }
    }

    /// `x · Wᵀ` for `x` of `m` rows of `cols`: `m` rows of `rows` values.
    ///
    /// Each weight row is dequantised once per call and met by all `m` activation rows,
    /// so the work of dequantising is shared by a whole batch. Tasks split the weight
    /// rows, so every weight byte is read once per call whatever `m` is.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.cols, "matmul: {} activations for {m} rows of {}", x.len(), self.cols);
        // Transposed result: weight row r holds its product with every activation row.
        let mut yt = vec![0.0; self.rows * m];
        yt.par_chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(|(task, chunk)| {
            let mut buf = vec![0.0; self.cols];
            for (i, out) in chunk.chunks_mut(m).enumerate() {
                let w = self.row(task * ROWS_PER_TASK + i, &mut buf);
                dot_rows(w, x, out);
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
