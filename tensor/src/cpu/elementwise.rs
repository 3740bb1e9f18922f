//! Elementwise maps over strided views, and strided copies.

use super::pool;
use super::strided::{row_chunks, Rows, SendPtr, PAR_GRAIN};
use crate::element::Element;
use crate::layout::Layout;
use crate::ops::{BinaryOp, UnaryOp, GELU_C};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// `out[i] = f(x_0[i], …, x_{N-1}[i])` over `N` views of one shape, written contiguously.
pub(crate) fn map<E: Element, const N: usize>(inputs: [(&[E], &Layout); N], f: impl Fn([E; N]) -> E + Sync) -> Vec<E> {
    let numel = inputs[0].1.numel();
    // Every element is written exactly once below, so the buffer starts uninitialised:
    // zeroing it first would be one more serial pass over the output.
    let mut out: Vec<E> = pool::with_capacity(numel);
    let dst = &mut out.spare_capacity_mut()[..numel];
    if inputs.iter().all(|(_, l)| l.is_contiguous()) {
        let ins: [&[E]; N] = std::array::from_fn(|j| &inputs[j].0[inputs[j].1.offset()..][..numel]);
        let run = |start: usize, o: &mut [MaybeUninit<E>]| {
            fill(o, std::array::from_fn(|j| &ins[j][start..start + o.len()]), &f);
        };
        if numel >= 2 * PAR_GRAIN {
            dst.par_chunks_mut(PAR_GRAIN).enumerate().for_each(|(c, o)| run(c * PAR_GRAIN, o));
        } else {
            run(0, dst);
        }
    } else {
        let rows = Rows::<N>::new(std::array::from_fn(|j| inputs[j].1));
        let (len, st) = (rows.inner_len, rows.inner_strides);
        let per = row_chunks(rows.count(), len);
        let run = |first_row: usize, o: &mut [MaybeUninit<E>]| {
            let n_rows = o.len() / len;
            rows.for_each(first_row..first_row + n_rows, |r, off| {
                let o = &mut o[(r - first_row) * len..][..len];
                if st.iter().all(|&s| s == 1) {
                    // Unit-stride rows (as with a broadcast row vector): the vectorisable loop.
                    fill(o, std::array::from_fn(|j| &inputs[j].0[off[j]..off[j] + len]), &f);
                } else {
                    for (i, o) in o.iter_mut().enumerate() {
                        o.write(f(std::array::from_fn(|j| inputs[j].0[off[j] + i * st[j]])));
                    }
                }
            });
        };
        if numel >= 2 * PAR_GRAIN && len > 0 {
            dst.par_chunks_mut(per * len).enumerate().for_each(|(c, o)| run(c * per, o));
        } else if len > 0 {
            run(0, dst);
        }
    }
    // SAFETY: both branches wrote all `numel` elements (rows of `len` tile the output).
    unsafe { out.set_len(numel) };
    out
}

/// `o[i] = f(ins[0][i], …)` for equally long slices: a loop the compiler vectorises.
#[inline(always)]
fn fill<E: Element, const N: usize>(o: &mut [MaybeUninit<E>], ins: [&[E]; N], f: &impl Fn([E; N]) -> E) {
    assert!(ins.iter().all(|x| x.len() == o.len()));
    for (i, o) in o.iter_mut().enumerate() {
        // SAFETY: every input slice has exactly `o.len()` elements (asserted above).
        o.write(f(std::array::from_fn(|j| unsafe { *ins[j].get_unchecked(i) })));
    }
}

/// `dst[view] = src[view]` for two views of one shape. Parallel when large; the
/// destination view must not overlap itself (no zero strides).
pub(crate) fn copy_into<E: Element>(dst: &mut [E], dl: &Layout, src: &[E], sl: &Layout) {
    let rows = Rows::new([dl, sl]);
    let (len, [ds, ss]) = (rows.inner_len, rows.inner_strides);
    let count = rows.count();
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let dst_len = dst.len();
    let run = |range: std::ops::Range<usize>| {
        rows.for_each(range, |_, [d, s]| {
            assert!(d + (len - 1) * ds < dst_len, "copy_into: destination view out of bounds");
            for i in 0..len {
                // SAFETY: bounds checked above; rows of a non-self-overlapping view are
                // disjoint, so parallel tasks never write the same element.
                unsafe { *dst_ptr.get().add(d + i * ds) = src[s + i * ss] };
            }
        });
    };
    if count * len >= 2 * PAR_GRAIN {
        let per = row_chunks(count, len);
        (0..count.div_ceil(per)).into_par_iter().for_each(|c| run(c * per..((c + 1) * per).min(count)));
    } else {
        run(0..count);
    }
}

fn sigmoid<E: Element>(x: E) -> E {
    E::ONE / (E::ONE + (-x).exp())
}

fn gelu_inner<E: Element>(x: E) -> E {
    E::from_f64(GELU_C) * (x + E::from_f64(0.044715) * x * x * x)
}

pub(crate) fn unary<E: Element>(op: UnaryOp, x: &[E], l: &Layout) -> Vec<E> {
    use UnaryOp::*;
    let half = E::from_f64(0.5);
    match op {
        Neg => map([(x, l)], |[x]| -x),
        Exp => map([(x, l)], |[x]| x.exp()),
        Log => map([(x, l)], |[x]| x.ln()),
        Sqrt => map([(x, l)], |[x]| x.sqrt()),
        Rsqrt => map([(x, l)], |[x]| E::ONE / x.sqrt()),
        Recip => map([(x, l)], |[x]| E::ONE / x),
        Tanh => map([(x, l)], |[x]| x.tanh()),
        Sigmoid => map([(x, l)], |[x]| sigmoid(x)),
        Relu => map([(x, l)], |[x]| x.max(E::ZERO)),
        Silu => map([(x, l)], |[x]| x * sigmoid(x)),
        GeluTanh => map([(x, l)], |[x]| half * x * (E::ONE + gelu_inner(x).tanh())),
        Square => map([(x, l)], |[x]| x * x),
        Abs => map([(x, l)], |[x]| x.abs()),
        AddScalar(s) => {
            let s = E::from_f64(s);
            map([(x, l)], |[x]| x + s)
        }
        MulScalar(s) => {
            let s = E::from_f64(s);
            map([(x, l)], |[x]| x * s)
        }
        PowScalar(e) => {
            let e = E::from_f64(e);
            map([(x, l)], |[x]| x.powf(e))
        }
        MaxScalar(s) => {
            let s = E::from_f64(s);
            map([(x, l)], |[x]| x.max(s))
        }
    }
}

pub(crate) fn unary_backward<E: Element>(op: UnaryOp, x: &[E], lx: &Layout, dy: &[E], ldy: &Layout) -> Vec<E> {
    use UnaryOp::*;
    let (one, half) = (E::ONE, E::from_f64(0.5));
    let ins = [(x, lx), (dy, ldy)];
    match op {
        Neg => map(ins, |[_, g]| -g),
        Exp => map(ins, |[x, g]| g * x.exp()),
        Log => map(ins, |[x, g]| g / x),
        Sqrt => map(ins, |[x, g]| g * half / x.sqrt()),
        Rsqrt => map(ins, |[x, g]| -g * half / (x * x.sqrt())),
        Recip => map(ins, |[x, g]| -g / (x * x)),
        Tanh => map(ins, |[x, g]| {
            let t = x.tanh();
            g * (one - t * t)
        }),
        Sigmoid => map(ins, |[x, g]| {
            let s = sigmoid(x);
            g * s * (one - s)
        }),
        Relu => map(ins, |[x, g]| if x > E::ZERO { g } else { E::ZERO }),
        Silu => map(ins, |[x, g]| {
            let s = sigmoid(x);
            g * s * (one + x * (one - s))
        }),
        GeluTanh => map(ins, |[x, g]| {
            let t = gelu_inner(x).tanh();
            let du = E::from_f64(GELU_C) * (one + E::from_f64(3.0 * 0.044715) * x * x);
            g * (half * (one + t) + half * x * (one - t * t) * du)
        }),
        Square => map(ins, |[x, g]| g * (x + x)),
        Abs => map(ins, |[x, g]| {
            if x > E::ZERO {
                g
            } else if x < E::ZERO {
                -g
            } else {
                E::ZERO
            }
        }),
        AddScalar(_) => map(ins, |[_, g]| g),
        MulScalar(s) => {
            let s = E::from_f64(s);
            map(ins, |[_, g]| g * s)
        }
        PowScalar(e) => {
            let (e, e1) = (E::from_f64(e), E::from_f64(e - 1.0));
            map(ins, |[x, g]| g * e * x.powf(e1))
        }
        MaxScalar(s) => {
            let s = E::from_f64(s);
            map(ins, |[x, g]| if x > s { g } else { E::ZERO })
        }
    }
}

pub(crate) fn binary<E: Element>(op: BinaryOp, a: &[E], la: &Layout, b: &[E], lb: &Layout) -> Vec<E> {
    use BinaryOp::*;
    let ins = [(a, la), (b, lb)];
    let flag = |c: bool| if c { E::ONE } else { E::ZERO };
    match op {
        Add => map(ins, |[a, b]| a + b),
        Sub => map(ins, |[a, b]| a - b),
        Mul => map(ins, |[a, b]| a * b),
        Div => map(ins, |[a, b]| a / b),
        Max => map(ins, |[a, b]| a.max(b)),
        Min => map(ins, |[a, b]| a.min(b)),
        Pow => map(ins, |[a, b]| a.powf(b)),
        Eq => map(ins, |[a, b]| flag(a == b)),
        Gt => map(ins, |[a, b]| flag(a > b)),
        Ge => map(ins, |[a, b]| flag(a >= b)),
    }
}
