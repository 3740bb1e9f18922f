//! Shapes, strides and zero-copy views.
//!
//! A [`Layout`] maps an n-d index to a linear offset into a storage buffer:
//! `offset + Σ index[i]·strides[i]`. Transpose, permute, slice, broadcast and (where
//! the memory allows) reshape only rewrite the layout; no data moves.

use std::fmt;

/// Panics with a message that names the op and the shapes involved.
#[track_caller]
pub fn shape_error(op: &str, detail: impl fmt::Display) -> ! {
    panic!("shape error in {op}: {detail}")
}

/// Shape, strides (in elements) and starting offset of a strided view.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}@{}", self.shape, self.strides, self.offset)
    }
}

/// Row-major strides of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// The NumPy broadcast of two shapes, or `None` when they are incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Normalises a possibly negative axis index.
#[track_caller]
pub fn normalize_axis(op: &str, axis: isize, rank: usize) -> usize {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    if a < 0 || a as usize >= rank {
        shape_error(op, format_args!("axis {axis} out of range for rank {rank}"));
    }
    a as usize
}

impl Layout {
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0 }
    }

    pub fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Self {
        assert_eq!(shape.len(), strides.len(), "layout: shape and strides differ in rank");
        Layout { shape, strides, offset }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the view covers `numel` consecutive elements in row-major order.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != expected {
                return false;
            }
            expected *= self.shape[i];
        }
        true
    }

    /// One past the largest storage index the view touches (0 for an empty view).
    pub fn storage_extent(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset + self.shape.iter().zip(&self.strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>() + 1
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: usize, b: usize) -> Self {
        let rank = self.rank();
        if a >= rank || b >= rank {
            shape_error("transpose", format_args!("axes ({a}, {b}) for shape {:?}", self.shape));
        }
        let mut l = self.clone();
        l.shape.swap(a, b);
        l.strides.swap(a, b);
        l
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Self {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank() || perm.iter().any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true))
        {
            shape_error("permute", format_args!("{perm:?} is not a permutation of the axes of {:?}", self.shape));
        }
        Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        }
    }

    /// The sub-range `start..start+len` of one axis.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        if axis >= self.rank() || start + len > self.shape[axis] {
            shape_error("narrow", format_args!("axis {axis} range {start}..{} of shape {:?}", start + len, self.shape));
        }
        let mut l = self.clone();
        l.offset += start * l.strides[axis];
        l.shape[axis] = len;
        l
    }

    /// Broadcasts to `shape` (NumPy rules) by giving new or size-1 axes a stride of 0.
    pub fn broadcast_to(&self, shape: &[usize]) -> Self {
        if shape.len() < self.rank() {
            shape_error("broadcast", format_args!("{:?} to {shape:?}", self.shape));
        }
        let extra = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for i in 0..self.rank() {
            let (src, dst) = (self.shape[i], shape[i + extra]);
            strides[i + extra] = if src == dst {
                self.strides[i]
            } else if src == 1 {
                0
            } else {
                shape_error("broadcast", format_args!("{:?} to {shape:?}", self.shape));
            };
        }
        Layout { shape: shape.to_vec(), strides, offset: self.offset }
    }

    /// Inserts an axis of size 1 at `axis`.
    pub fn unsqueeze(&self, axis: usize) -> Self {
        if axis > self.rank() {
            shape_error("unsqueeze", format_args!("axis {axis} for shape {:?}", self.shape));
        }
        let mut l = self.clone();
        let stride = if axis < l.rank() { l.strides[axis] * l.shape[axis] } else { 1 };
        l.shape.insert(axis, 1);
        l.strides.insert(axis, stride);
        l
    }

    /// Removes an axis of size 1.
    pub fn squeeze(&self, axis: usize) -> Self {
        if axis >= self.rank() || self.shape[axis] != 1 {
            shape_error("squeeze", format_args!("axis {axis} of shape {:?} is not of size 1", self.shape));
        }
        let mut l = self.clone();
        l.shape.remove(axis);
        l.strides.remove(axis);
        l
    }

    /// A view with `shape` over the same elements in row-major order, or `None` when the
    /// strides make that impossible without a copy (the caller then copies).
    pub fn reshape(&self, shape: &[usize]) -> Option<Self> {
        let numel: usize = shape.iter().product();
        if numel != self.numel() {
            shape_error(
                "reshape",
                format_args!("{:?} ({} elements) to {shape:?} ({numel} elements)", self.shape, self.numel()),
            );
        }
        if numel == 0 {
            // An empty view touches no element: any strides and offset describe it.
            return Some(Layout::contiguous(shape));
        }
        if self.is_contiguous() {
            return Some(Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: self.offset });
        }
        // Drop size-1 axes, then match groups of old axes to groups of new axes with equal
        // products; each old group must be internally contiguous to be re-split.
        let old: Vec<(usize, usize)> =
            self.shape.iter().zip(&self.strides).filter(|(&d, _)| d != 1).map(|(&d, &s)| (d, s)).collect();
        let mut strides = vec![0; shape.len()];
        let (mut oi, mut ni) = (0, 0);
        while ni < shape.len() {
            if shape[ni] == 1 {
                strides[ni] = 1;
                ni += 1;
                continue;
            }
            let (o_start, n_start) = (oi, ni);
            let (mut o_prod, mut n_prod) = (old[oi].0, shape[ni]);
            oi += 1;
            ni += 1;
            while o_prod != n_prod {
                if o_prod < n_prod {
                    o_prod *= old[oi].0;
                    oi += 1;
                } else {
                    n_prod *= shape[ni];
                    ni += 1;
                }
            }
            while ni < shape.len() && shape[ni] == 1 {
                ni += 1;
            }
            for k in o_start..oi - 1 {
                if old[k].1 != old[k + 1].0 * old[k + 1].1 {
                    return None;
                }
            }
            let mut stride = old[oi - 1].1;
            for k in (n_start..ni).rev() {
                strides[k] = stride;
                stride *= shape[k];
            }
        }
        Some(Layout { shape: shape.to_vec(), strides, offset: self.offset })
    }
}
