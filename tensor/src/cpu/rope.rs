//! Rotary position embedding on `[batch, seq, heads, head_dim]` views.

use super::pool;
use super::strided::Rows;
use crate::backend::RopeArgs;
use crate::element::Element;
use crate::layout::Layout;

pub(crate) fn rope<E: Element>(x: &[E], l: &Layout, cos: &[E], sin: &[E], args: RopeArgs) -> Vec<E> {
    let [_, seq, heads, dh] = <[usize; 4]>::try_from(l.shape()).expect("rope: rank 4 checked by the caller");
    let half = dh / 2;
    let mut out = pool::filled(l.numel(), E::ZERO);
    // Iterate rows of head_dim elements: one (batch, position, head) each.
    let rows = Layout::new(l.shape()[..3].to_vec(), l.strides()[..3].to_vec(), l.offset());
    let ds = l.strides()[3];
    let it = Rows::new([&rows]);
    let mut row_i = 0;
    it.for_each(0..it.count(), |_, [first]| {
        for j in 0..it.inner_len {
            let start = first + j * it.inner_strides[0];
            let pos = (row_i / heads) % seq + args.pos_offset;
            let o = &mut out[row_i * dh..(row_i + 1) * dh];
            for i in 0..half {
                let (c, s) = (cos[pos * half + i], sin[pos * half + i]);
                let s = if args.inverse { -s } else { s };
                let (a, b) = if args.interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                let (xa, xb) = (x[start + a * ds], x[start + b * ds]);
                o[a] = xa * c - xb * s;
                o[b] = xa * s + xb * c;
            }
            row_i += 1;
        }
    });
    out
}
