//! Per-dispatch parameter blocks: 32-bit words at fixed positions that each shader
//! documents, and the shape/stride helpers that fill them.

use crate::runtime::PARAM_WORDS;

/// Largest rank a strided view may have after coalescing (the shaders' `MAX_RANK`).
pub(crate) const MAX_RANK: usize = 6;

/// A usize that must fit the shaders' 32-bit indices.
#[track_caller]
pub(crate) fn word(x: usize, what: &str) -> u32 {
    u32::try_from(x).unwrap_or_else(|_| panic!("gpu: {what} = {x} does not fit 32-bit shader indexing"))
}

#[derive(Default)]
pub(crate) struct Params(Vec<u32>);

impl Params {
    pub fn new() -> Self {
        Params(Vec::with_capacity(PARAM_WORDS))
    }

    pub fn words(&self) -> &[u32] {
        &self.0
    }

    #[track_caller]
    pub fn set(&mut self, at: usize, v: usize) -> &mut Self {
        let w = word(v, "a shader parameter");
        self.set_word(at, w)
    }

    pub fn set_f32(&mut self, at: usize, v: f64) -> &mut Self {
        self.set_word(at, (v as f32).to_bits())
    }

    fn set_word(&mut self, at: usize, v: u32) -> &mut Self {
        if self.0.len() <= at {
            self.0.resize(at + 1, 0);
        }
        self.0[at] = v;
        self
    }

    /// Consecutive words from `at`.
    #[track_caller]
    pub fn list(&mut self, at: usize, values: &[usize]) -> &mut Self {
        for (i, &v) in values.iter().enumerate() {
            self.set(at + i, v);
        }
        self
    }

    /// A view block: `MAX_RANK` strides, then the offset.
    #[track_caller]
    pub fn view(&mut self, at: usize, strides: &[usize], offset: usize) -> &mut Self {
        assert!(strides.len() <= MAX_RANK, "gpu: view of rank {} over the shaders' {MAX_RANK}", strides.len());
        self.list(at, strides).set(at + MAX_RANK, offset)
    }
}

/// Merges axes of `shape` that are contiguous with respect to each other in every view
/// (and drops size-1 axes), so that kernels index as few axes as possible. Returns the
/// merged shape and each view's strides.
pub(crate) fn coalesce(shape: &[usize], views: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); views.len()];
    for (ax, &d) in shape.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let merge = !out_shape.is_empty()
            && views.iter().zip(&out_strides).all(|(v, s)| *s.last().expect("same rank") == v[ax] * d);
        if merge {
            *out_shape.last_mut().expect("nonempty") *= d;
            for (v, s) in views.iter().zip(out_strides.iter_mut()) {
                *s.last_mut().expect("nonempty") = v[ax];
            }
        } else {
            out_shape.push(d);
            for (v, s) in views.iter().zip(out_strides.iter_mut()) {
                s.push(v[ax]);
            }
        }
    }
    if out_shape.len() > MAX_RANK {
        panic!("gpu: a strided view of shape {shape:?} needs {} axes, the shaders index {MAX_RANK}", out_shape.len());
    }
    (out_shape, out_strides)
}

/// Workgroups for `n` items (threads or rows), as a 2-D grid within the per-dimension
/// limit; shaders recover the item as `wid.y · nwg.x + wid.x`.
pub(crate) fn grid(n: usize, per_group: usize, max_dim: u32) -> [u32; 3] {
    let groups = n.div_ceil(per_group);
    let x = groups.min(max_dim as usize);
    let y = if x == 0 { 0 } else { groups.div_ceil(x) };
    [word(x, "workgroups"), word(y, "workgroup rows"), 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_contiguous_axes_and_keeps_broadcast_ones() {
        // [2, 3, 4] contiguous and a [1, 3, 4]-broadcast view: the last two axes merge.
        let (s, v) = coalesce(&[2, 3, 4], &[&[12, 4, 1], &[0, 4, 1]]);
        assert_eq!(s, vec![2, 12]);
        assert_eq!(v, vec![vec![12, 1], vec![0, 1]]);
        // A transposed view blocks merging.
        let (s, v) = coalesce(&[3, 4], &[&[4, 1], &[1, 3]]);
        assert_eq!((s, v), (vec![3, 4], vec![vec![4, 1], vec![1, 3]]));
        // Size-1 axes vanish.
        assert_eq!(coalesce(&[1, 5, 1], &[&[5, 1, 1]]).0, vec![5]);
    }

    #[test]
    fn grid_stays_within_the_dimension_limit() {
        assert_eq!(grid(0, 256, 65535), [0, 0, 1]);
        assert_eq!(grid(256, 256, 65535), [1, 1, 1]);
        let g = grid(65536 * 256 + 1, 256, 65535);
        assert!(g[0] <= 65535 && g[0] as usize * g[1] as usize >= 65537);
    }
}
