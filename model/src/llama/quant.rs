//! ggml tensor types the engine reads and their dequantisation to f32.
//!
//! Block layouts (little-endian), as ggml defines them:
//! - Q8_0: f16 scale `d`, 32 × i8 `q`; `w = d·q`.
//! - Q4_1: f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles; byte `j` holds element `j`
//!   in its low nibble and element `j + 16` in its high nibble; `w = d·q + m`.

/// The tensor types the engine supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_1,
    Q8_0,
}

impl GgmlType {
    /// The type with ggml id `id`, or `None` for one the engine does not read.
    pub fn from_id(id: u32) -> Option<Self> {
        match id {
            0 => Some(GgmlType::F32),
            1 => Some(GgmlType::F16),
            3 => Some(GgmlType::Q4_1),
            8 => Some(GgmlType::Q8_0),
            _ => None,
        }
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 => 1,
            GgmlType::Q4_1 | GgmlType::Q8_0 => 32,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 => 2,
            GgmlType::Q4_1 => 20,
            GgmlType::Q8_0 => 34,
        }
    }

    /// Bytes taken by `n` elements (`n` a multiple of the block length).
    pub fn bytes_for(self, n: usize) -> usize {
        n / self.block_len() * self.block_bytes()
    }
}

/// ggml's name for a type id, for error messages.
pub fn type_name(id: u32) -> String {
    const NAMES: [&str; 16] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K",
    ];
    NAMES.get(id as usize).map_or_else(|| format!("type {id}"), |n| n.to_string())
}

/// IEEE half precision to single precision, exactly (subnormals, infinities and NaN included).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from(h >> 10) & 0x1f;
    let mant = u32::from(h) & 0x3ff;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        // Subnormal: mant · 2^-24, exact in f32.
        (0, _) => {
            let v = mant as f32 * 2f32.powi(-24);
            return if sign == 0 { v } else { -v };
        }
        (0x1f, _) => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// Dequantises `bytes` (whole blocks of type `ty`) into `out`, which must hold exactly
/// the elements those blocks encode: the reference decoding, used at load time for F32
/// and F16 tensors (the products decode [`Packed`] blocks with SIMD, to the same bits).
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), ty.bytes_for(out.len()), "dequantize: {} bytes for {} elements", bytes.len(), out.len());
    match ty {
        GgmlType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        GgmlType::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(34)) {
                let o: &mut [f32; 32] = o.try_into().unwrap();
                let q: &[u8; 32] = b[2..].try_into().unwrap();
                let d = f16_at(b, 0);
                for j in 0..32 {
                    o[j] = d * f32::from(q[j] as i8);
                }
            }
        }
        GgmlType::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(20)) {
                let o: &mut [f32; 32] = o.try_into().unwrap();
                let q: &[u8; 16] = b[4..].try_into().unwrap();
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                for j in 0..16 {
                    o[j] = d * f32::from(q[j] & 0x0f) + m;
                    o[j + 16] = d * f32::from(q[j] >> 4) + m;
                }
            }
        }
    }
}

/// Block-quantised rows repacked for SIMD decoding: each block's f16 scale (and Q4_1
/// minimum) converted to `f32` once, at load, and kept apart from its quantised values,
/// so the inner loops broadcast a scale from memory instead of converting it per block.
/// A Q4_1 block takes 24 bytes instead of the file's 20, a Q8_0 block 36 instead of 34.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed {
    pub ty: GgmlType,
    /// Per block, in storage order.
    pub scales: Vec<f32>,
    /// Per block for Q4_1; empty for Q8_0.
    pub mins: Vec<f32>,
    /// [`Packed::quant_bytes`] per block: Q4_1 nibbles as in the file, Q8_0 `i8` values.
    pub quants: Vec<u8>,
}

/// A range of whole rows of a [`Packed`] matrix.
#[derive(Clone, Copy, Debug)]
pub struct BlockRows<'a> {
    pub ty: GgmlType,
    pub scales: &'a [f32],
    pub mins: &'a [f32],
    pub quants: &'a [u8],
}

impl Packed {
    /// Bytes of quantised values per block.
    pub fn quant_bytes(ty: GgmlType) -> usize {
        match ty {
            GgmlType::Q4_1 => 16,
            GgmlType::Q8_0 => 32,
            GgmlType::F32 | GgmlType::F16 => panic!("Packed: {ty:?} is not a block type"),
        }
    }

    /// Repacks whole Q4_1 or Q8_0 blocks.
    pub fn from_blocks(ty: GgmlType, bytes: &[u8]) -> Packed {
        let q = Packed::quant_bytes(ty);
        let blocks = bytes.len() / ty.block_bytes();
        assert_eq!(bytes.len(), blocks * ty.block_bytes(), "Packed: {} bytes are not whole {ty:?} blocks", bytes.len());
        let mut p =
            Packed { ty, scales: Vec::with_capacity(blocks), mins: Vec::new(), quants: Vec::with_capacity(blocks * q) };
        for b in bytes.chunks_exact(ty.block_bytes()) {
            p.scales.push(f16_at(b, 0));
            if ty == GgmlType::Q4_1 {
                p.mins.push(f16_at(b, 2));
            }
            p.quants.extend_from_slice(&b[b.len() - q..]);
        }
        p
    }

    /// The blocks of rows `rows` of a matrix whose rows hold `blocks_per_row` blocks.
    pub fn rows(&self, rows: std::ops::Range<usize>, blocks_per_row: usize) -> BlockRows<'_> {
        let blocks = rows.start * blocks_per_row..rows.end * blocks_per_row;
        let q = Packed::quant_bytes(self.ty);
        BlockRows {
            ty: self.ty,
            scales: &self.scales[blocks.clone()],
            mins: if self.mins.is_empty() { &[] } else { &self.mins[blocks.clone()] },
            quants: &self.quants[blocks.start * q..blocks.end * q],
        }
    }

    /// Appends `other`'s blocks (of the same type).
    pub fn extend(&mut self, other: &Packed) {
        assert_eq!(self.ty, other.ty, "Packed::extend: types differ");
        self.scales.extend_from_slice(&other.scales);
        self.mins.extend_from_slice(&other.mins);
        self.quants.extend_from_slice(&other.quants);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_covers_every_class() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95); // 1/3 rounded to f16
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x83ff), -1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn f16_tensor_dequantises() {
        let bytes = [0x00, 0x3c, 0x00, 0xb8, 0x00, 0x00];
        let mut out = [9.0; 3];
        dequantize(GgmlType::F16, &bytes, &mut out);
        assert_eq!(out, [1.0, -0.5, 0.0]);
    }

    #[test]
    fn q8_0_block_by_hand() {
        // d = 0.5 (f16 0x3800), q = -16..16.
        let mut block = vec![0x00, 0x38];
        block.extend((-16i8..16).map(|q| q as u8));
        let mut out = [0.0; 32];
        dequantize(GgmlType::Q8_0, &block, &mut out);
        let expected: Vec<f32> = (-16..16).map(|q| 0.5 * q as f32).collect();
        assert_eq!(out.to_vec(), expected);
    }

    #[test]
    fn q4_1_block_by_hand() {
        // d = 0.25 (0x3400), m = -1 (0xbc00); byte j = (15 - j) << 4 | j:
        // element j (low nibble) is j, element j + 16 (high nibble) is 15 - j.
        let mut block = vec![0x00, 0x34, 0x00, 0xbc];
        block.extend((0u8..16).map(|j| (15 - j) << 4 | j));
        let mut out = [0.0; 32];
        dequantize(GgmlType::Q4_1, &block, &mut out);
        for j in 0..16 {
            assert_eq!(out[j], 0.25 * j as f32 - 1.0, "element {j}");
            assert_eq!(out[j + 16], 0.25 * (15 - j) as f32 - 1.0, "element {}", j + 16);
        }
        // Two blocks in a row: the second block's elements follow the first's.
        let two = [block.clone(), block].concat();
        let mut out2 = [0.0; 64];
        dequantize(GgmlType::Q4_1, &two, &mut out2);
        assert_eq!(out2[..32], out2[32..]);
        assert_eq!(out2[..32], out);
    }

    #[test]
    fn packing_keeps_every_block_in_order() {
        // Two Q4_1 blocks: d = 0.25, m = -1, then d = 1, m = 0.5.
        let mut bytes = vec![0x00, 0x34, 0x00, 0xbc];
        bytes.extend(0u8..16);
        bytes.extend([0x00, 0x3c, 0x00, 0x38]);
        bytes.extend(16u8..32);
        let p = Packed::from_blocks(GgmlType::Q4_1, &bytes);
        assert_eq!((p.scales.clone(), p.mins.clone()), (vec![0.25, 1.0], vec![-1.0, 0.5]));
        assert_eq!(p.quants, (0u8..32).collect::<Vec<_>>());
        let mut q8 = vec![0x00, 0x38];
        q8.extend(0u8..32);
        let mut both = Packed::from_blocks(GgmlType::Q8_0, &q8);
        both.extend(&Packed::from_blocks(GgmlType::Q8_0, &q8));
        assert_eq!((both.scales, both.mins.len(), both.quants.len()), (vec![0.5, 0.5], 0, 64));
    }

    #[test]
    fn type_ids_and_sizes() {
        assert_eq!(GgmlType::from_id(3), Some(GgmlType::Q4_1));
        assert_eq!(GgmlType::from_id(2), None);
        assert_eq!(type_name(2), "Q4_0");
        assert_eq!(type_name(99), "type 99");
        assert_eq!(GgmlType::Q4_1.bytes_for(576), 18 * 20);
        assert_eq!(GgmlType::Q8_0.bytes_for(64), 68);
    }
}
