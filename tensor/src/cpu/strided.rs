//! Row-wise iteration over several strided views of one shape.
//!
//! The shape is coalesced (size-1 axes dropped, axes that are contiguous with respect to
//! each other in every view merged), then split into an innermost axis — a "row" — and
//! the outer axes. Kernels loop over rows and run a tight inner loop per row.

use crate::layout::Layout;
use std::ops::Range;

/// Outer-axis iteration state for `N` views of a common shape.
pub(crate) struct Rows<const N: usize> {
    outer_shape: Vec<usize>,
    outer_strides: [Vec<usize>; N],
    base: [usize; N],
    /// Length of the innermost (coalesced) axis.
    pub inner_len: usize,
    /// Stride of the innermost axis in each view.
    pub inner_strides: [usize; N],
}

impl<const N: usize> Rows<N> {
    pub fn new(layouts: [&Layout; N]) -> Self {
        let shape0 = layouts[0].shape();
        for l in &layouts[1..] {
            debug_assert_eq!(l.shape(), shape0, "strided iteration over different shapes");
        }
        let mut shape: Vec<usize> = Vec::new();
        let mut strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::new());
        for (ax, &d) in shape0.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let merge =
                !shape.is_empty() && (0..N).all(|j| *strides[j].last().unwrap() == layouts[j].strides()[ax] * d);
            if merge {
                *shape.last_mut().unwrap() *= d;
                for j in 0..N {
                    *strides[j].last_mut().unwrap() = layouts[j].strides()[ax];
                }
            } else {
                shape.push(d);
                for j in 0..N {
                    strides[j].push(layouts[j].strides()[ax]);
                }
            }
        }
        let empty = shape0.contains(&0);
        let inner_len = if empty { 0 } else { shape.pop().unwrap_or(1) };
        let inner_strides = std::array::from_fn(|j| strides[j].pop().unwrap_or(1));
        Rows {
            outer_shape: shape,
            outer_strides: strides,
            base: std::array::from_fn(|j| layouts[j].offset()),
            inner_len,
            inner_strides,
        }
    }

    /// Number of rows.
    pub fn count(&self) -> usize {
        if self.inner_len == 0 {
            0
        } else {
            self.outer_shape.iter().product()
        }
    }

    /// Calls `f(row, offsets)` for each row in `range`, where `offsets[j]` is the storage
    /// index of the row's first element in view `j`.
    pub fn for_each(&self, range: Range<usize>, mut f: impl FnMut(usize, [usize; N])) {
        if range.is_empty() {
            return;
        }
        let rank = self.outer_shape.len();
        let mut idx = vec![0; rank];
        let mut rem = range.start;
        for ax in (0..rank).rev() {
            idx[ax] = rem % self.outer_shape[ax];
            rem /= self.outer_shape[ax];
        }
        let mut off: [usize; N] = std::array::from_fn(|j| {
            self.base[j] + idx.iter().zip(&self.outer_strides[j]).map(|(i, s)| i * s).sum::<usize>()
        });
        for row in range {
            f(row, off);
            for ax in (0..rank).rev() {
                idx[ax] += 1;
                for (j, o) in off.iter_mut().enumerate() {
                    *o += self.outer_strides[j][ax];
                }
                if idx[ax] < self.outer_shape[ax] {
                    break;
                }
                for (j, o) in off.iter_mut().enumerate() {
                    *o -= self.outer_strides[j][ax] * idx[ax];
                }
                idx[ax] = 0;
            }
        }
    }
}

/// Elements per parallel task: below this, threading costs more than it saves.
pub(crate) const PAR_GRAIN: usize = 1 << 15;

/// Splits `rows` rows of `row_len` elements into ranges of roughly [`PAR_GRAIN`] elements.
pub(crate) fn row_chunks(rows: usize, row_len: usize) -> usize {
    (PAR_GRAIN / row_len.max(1)).clamp(1, rows.max(1))
}

/// A raw pointer that may cross threads; callers guarantee disjoint writes.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);

impl<T> SendPtr<T> {
    /// The pointer. Closures must call this rather than read `.0`, so that they capture
    /// the `Send` wrapper and not the bare pointer.
    pub fn get(self) -> *mut T {
        self.0
    }
}
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
