//! Index-select along an axis and its adjoint, index-add.

use super::elementwise::copy_into;
use super::pool;
use crate::element::Element;
use crate::layout::Layout;

fn check_ids(op: &str, ids: &[u32], size: usize) {
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= size) {
        panic!("{op}: index {bad} out of range for axis of size {size}");
    }
}

pub(crate) fn index_select<E: Element>(x: &[E], l: &Layout, axis: usize, ids: &[u32]) -> Vec<E> {
    check_ids("index_select", ids, l.shape()[axis]);
    let mut shape = l.shape().to_vec();
    shape[axis] = ids.len();
    let ol = Layout::contiguous(&shape);
    let mut out = pool::filled(ol.numel(), E::ZERO);
    if axis == 0 && l.is_contiguous() {
        // Embedding lookup: whole rows.
        let row = l.numel() / l.shape()[0].max(1);
        for (o, &i) in out.chunks_exact_mut(row.max(1)).zip(ids) {
            o.copy_from_slice(&x[l.offset() + i as usize * row..][..row]);
        }
        return out;
    }
    for (k, &i) in ids.iter().enumerate() {
        copy_into(&mut out, &ol.narrow(axis, k, 1), x, &l.narrow(axis, i as usize, 1));
    }
    out
}

pub(crate) fn index_add<E: Element>(src: &[E], l: &Layout, axis: usize, ids: &[u32], size: usize) -> Vec<E> {
    check_ids("index_add", ids, size);
    let mut shape = l.shape().to_vec();
    shape[axis] = size;
    let ol = Layout::contiguous(&shape);
    let mut out = pool::filled(ol.numel(), E::ZERO);
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let src = if l.is_contiguous() {
        std::borrow::Cow::Borrowed(&src[l.offset()..][..l.numel()])
    } else {
        let mut c = vec![E::ZERO; l.numel()];
        copy_into(&mut c, &Layout::contiguous(l.shape()), src, l);
        std::borrow::Cow::Owned(c)
    };
    for o in 0..outer {
        for (k, &i) in ids.iter().enumerate() {
            let s = &src[(o * ids.len() + k) * inner..][..inner];
            let d = &mut out[(o * size + i as usize) * inner..][..inner];
            for (d, &s) in d.iter_mut().zip(s) {
                *d += s;
            }
        }
    }
    out
}
