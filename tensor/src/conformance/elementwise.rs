//! Elementwise ops: unary functions and their backward, scalar variants, broadcasting
//! binary ops and comparisons, `where_cond` / `masked_fill`.

use super::reference::{self as r, Arr};
use super::{any_view, check, close, close_with, ensure, shape, tol_elem, Dist, Gen, View, EXACT};
use crate::backend::Backend;
use crate::ops::UnaryOp::{self, *};
use crate::tensor::Tensor;
use proptest::prelude::*;

const UNARY_OPS: [UnaryOp; 13] = [Neg, Exp, Log, Sqrt, Rsqrt, Recip, Tanh, Sigmoid, Relu, Silu, GeluTanh, Square, Abs];

/// Ops that must stay finite and accurate for large `|x|`, and such inputs.
const SATURATING: [UnaryOp; 8] = [Neg, Tanh, Sigmoid, Relu, Silu, GeluTanh, Abs, Square];
const EXTREMES: &[f64] = &[-100.0, -30.0, -12.0, 12.0, 30.0, 100.0];

/// Calls the named `Tensor` method of `op` (so the method table is under test too).
fn apply<B: Backend>(op: UnaryOp, t: &Tensor<B>) -> Tensor<B> {
    match op {
        Neg => t.neg(),
        Exp => t.exp(),
        Log => t.log(),
        Sqrt => t.sqrt(),
        Rsqrt => t.rsqrt(),
        Recip => t.recip(),
        Tanh => t.tanh(),
        Sigmoid => t.sigmoid(),
        Relu => t.relu(),
        Silu => t.silu(),
        GeluTanh => t.gelu(),
        Square => t.square(),
        Abs => t.abs(),
        AddScalar(s) => t.add_scalar(s),
        MulScalar(s) => t.mul_scalar(s),
        PowScalar(e) => t.pow_scalar(e),
        MaxScalar(s) => t.max_scalar(s),
    }
}

/// Inputs inside the op's domain (and away from kinks only by chance, which is enough:
/// random values hit 0 or the scalar with probability 0).
fn domain(op: UnaryOp) -> Dist {
    match op {
        Log | Sqrt | Rsqrt | PowScalar(_) => Dist::Uniform(0.1, 3.0),
        Recip => Dist::Signed(0.2, 3.0),
        Exp => Dist::Uniform(-6.0, 6.0),
        _ => Dist::Normal(2.5),
    }
}

/// Shapes and views of an elementwise case.
fn case() -> impl Strategy<Value = (Vec<usize>, View, View, u64)> {
    (shape(0..=4, 1..=5), any_view(), any_view(), any::<u64>())
}

/// Every unary method forward against independent f64 formulas (not `UnaryOp::eval`,
/// which is itself checked against them).
pub fn unary<B: Backend>(b: &B) {
    check("unary", 1.0, case(), |(s, v, _, seed)| {
        let mut g = Gen::new(b, seed);
        for op in UNARY_OPS {
            let (x, xa) = g.input(&s, v, domain(op));
            let want = xa.map(|x| r::unary(op, x));
            close(&format!("{op:?}"), &apply(op, &x), &want, tol_elem::<B>())?;
            close(&format!("{op:?} via unary()"), &x.unary(op), &want, tol_elem::<B>())?;
            // Saturating functions stay exact far out (no overflow to NaN).
            if SATURATING.contains(&op) {
                let (x, xa) = g.input(&s, v, Dist::Choice(EXTREMES));
                close(&format!("{op:?} (large |x|)"), &apply(op, &x), &xa.map(|x| r::unary(op, x)), tol_elem::<B>())?;
            }
            // The shared f64 reference agrees with the independent formulas.
            for &x in &xa.data {
                let (e, w) = (op.eval(x), r::unary(op, x));
                ensure((e - w).abs() <= 1e-13 * (1.0 + w.abs()), || {
                    format!("UnaryOp::eval({op:?}, {x}) = {e}, expected {w}")
                })?;
            }
        }
        Ok(())
    });
}

/// The scalar variants (`add_scalar`, `mul_scalar`, `pow_scalar` on positive bases,
/// `max_scalar`) with scalars exactly representable in f32.
pub fn scalar_ops<B: Backend>(b: &B) {
    let scalars = prop::sample::select(vec![-2.5, -1.0, -0.25, 0.0, 0.5, 1.5, 3.0]);
    let exponents = prop::sample::select(vec![-2.0, -1.5, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]);
    check("scalar_ops", 1.0, (case(), scalars, exponents), |((s, v, _, seed), c, e)| {
        let mut g = Gen::new(b, seed);
        for op in [AddScalar(c), MulScalar(c), PowScalar(e), MaxScalar(c)] {
            let (x, xa) = g.input(&s, v, domain(op));
            close(&format!("{op:?}"), &apply(op, &x), &xa.map(|x| r::unary(op, x)), tol_elem::<B>())?;
        }
        Ok(())
    });
}

/// `unary_backward` against `dy · UnaryOp::derivative(x)`, both inputs strided; the
/// reference derivatives against central differences of the reference functions.
pub fn unary_backward<B: Backend>(b: &B) {
    let ops: Vec<UnaryOp> = UNARY_OPS
        .into_iter()
        .chain([AddScalar(-1.5), MulScalar(2.5), PowScalar(3.0), PowScalar(-0.5), PowScalar(1.5), MaxScalar(0.25)])
        .collect();
    check("unary_backward", 1.0, case(), |(s, vx, vg, seed)| {
        let mut g = Gen::new(b, seed);
        for (i, &op) in ops.iter().enumerate() {
            let extreme = i % 2 == 0 && SATURATING.contains(&op) && g.below(4) == 0;
            let (x, xa) = g.input(&s, vx, if extreme { Dist::Choice(EXTREMES) } else { domain(op) });
            let (dy, dya) = g.input(&s, vg, Dist::Normal(1.0));
            let want = xa.zip(&dya, |x, g| g * op.derivative(x));
            let scale = xa.zip(&dya, |x, g| (g * derivative_terms(op, x)).abs());
            close_with(&format!("{op:?}'"), &x.unary_backward(op, &dy), &want, &scale.data, tol_elem::<B>())?;
            for &x in &xa.data {
                let h = 1e-5 * (1.0 + x.abs());
                let kink = match op {
                    Relu | Abs => Some(0.0),
                    MaxScalar(s) => Some(s),
                    _ => None,
                };
                if kink.is_some_and(|k| (x - k).abs() < 2.0 * h) {
                    continue; // the difference quotient straddles the kink
                }
                let fd = (r::unary(op, x + h) - r::unary(op, x - h)) / (2.0 * h);
                let d = op.derivative(x);
                ensure((fd - d).abs() <= 1e-6 * (1.0 + d.abs()), || {
                    format!("UnaryOp::derivative({op:?}, {x}) = {d}, central difference {fd}")
                })?;
            }
        }
        Ok(())
    });
}

/// Size of the terms that cancel in `f'(x)` (zero where nothing cancels): GELU's
/// derivative subtracts terms of size `|x|·(1 + 3·0.044715·x²)` for large `|x|`.
fn derivative_terms(op: UnaryOp, x: f64) -> f64 {
    match op {
        GeluTanh => x.abs() * (1.0 + 0.134_145 * x * x),
        _ => 0.0,
    }
}

/// A shape that broadcasts to `s`: some leading axes dropped, some axes set to 1.
pub(crate) fn broadcastable<B: Backend>(g: &mut Gen<B>, s: &[usize]) -> Vec<usize> {
    let drop = if g.coin() { 0 } else { g.below(s.len() + 1) };
    s[drop..].iter().map(|&d| if g.below(3) == 0 { 1 } else { d }).collect()
}

type BinaryMethod<B> = fn(&Tensor<B>, &Tensor<B>) -> Tensor<B>;

/// A binary method, its f64 reference, and the distributions of its two operands.
type BinaryCase<B> = (&'static str, BinaryMethod<B>, fn(f64, f64) -> f64, Dist, Dist);

/// Every binary method with NumPy broadcasting (operand shapes with dropped and size-1
/// axes) on strided, transposed and expanded operands.
pub fn binary<B: Backend>(b: &B) {
    const TIES: &[f64] = &[-1.0, -0.5, 0.0, 0.5, 1.0];
    let ops: [BinaryCase<B>; 10] = [
        ("add", Tensor::add, |a, b| a + b, Dist::Normal(2.0), Dist::Normal(2.0)),
        ("sub", Tensor::sub, |a, b| a - b, Dist::Normal(2.0), Dist::Normal(2.0)),
        ("mul", Tensor::mul, |a, b| a * b, Dist::Normal(2.0), Dist::Normal(2.0)),
        ("div", Tensor::div, |a, b| a / b, Dist::Normal(2.0), Dist::Signed(0.25, 3.0)),
        ("maximum", Tensor::maximum, |a, b| if a > b { a } else { b }, Dist::Choice(TIES), Dist::Normal(1.0)),
        ("minimum", Tensor::minimum, |a, b| if a < b { a } else { b }, Dist::Normal(1.0), Dist::Choice(TIES)),
        ("pow", Tensor::pow, |a, b| (b * a.ln()).exp(), Dist::Uniform(0.2, 3.0), Dist::Uniform(-2.5, 2.5)),
        ("eq", Tensor::eq, |a, b| f64::from(a == b), Dist::Choice(TIES), Dist::Choice(TIES)),
        ("gt", Tensor::gt, |a, b| f64::from(a > b), Dist::Choice(TIES), Dist::Choice(TIES)),
        ("ge", Tensor::ge, |a, b| f64::from(a >= b), Dist::Choice(TIES), Dist::Choice(TIES)),
    ];
    check("binary", 1.0, case(), |(s, va, vb, seed)| {
        let mut g = Gen::new(b, seed);
        for &(name, method, f, da, db) in &ops {
            let (sa, sb) = (broadcastable(&mut g, &s), broadcastable(&mut g, &s));
            let (x, xa) = g.input(&sa, va, da);
            let (y, ya) = g.input(&sb, vb, db);
            let want = xa.zip(&ya, f);
            close(&format!("{name} {sa:?} {sb:?}"), &method(&x, &y), &want, tol_elem::<B>())?;
            // The other operand order broadcasts the same way.
            close(&format!("{name} {sb:?} {sa:?}"), &method(&y, &x), &ya.zip(&xa, f), tol_elem::<B>())?;
        }
        Ok(())
    });
}

/// `where_cond` with all three operands broadcast, and `masked_fill`.
pub fn where_cond<B: Backend>(b: &B) {
    const MASK: &[f64] = &[0.0, 1.0, -0.0, -2.0, 0.5, 0.0];
    check(
        "where_cond",
        1.0,
        (shape(0..=4, 1..=4), any_view(), any_view(), any_view(), any::<u64>()),
        |(s, vc, va, vb, seed)| {
            let mut g = Gen::new(b, seed);
            let (sc, sa, sb) = (broadcastable(&mut g, &s), broadcastable(&mut g, &s), broadcastable(&mut g, &s));
            let (c, ca) = g.input(&sc, vc, Dist::Choice(MASK));
            let (x, xa) = g.input(&sa, va, Dist::Normal(1.0));
            let (y, ya) = g.input(&sb, vb, Dist::Normal(1.0));
            let shape = r::broadcast_shape(&r::broadcast_shape(&sc, &sa).unwrap(), &sb).unwrap();
            let (cb, xb, yb) = (ca.broadcast_to(&shape), xa.broadcast_to(&shape), ya.broadcast_to(&shape));
            let want = Arr::from_fn(&shape, |i| if cb.at(i) != 0.0 { xb.at(i) } else { yb.at(i) });
            close(&format!("where {sc:?} {sa:?} {sb:?}"), &Tensor::where_cond(&c, &x, &y), &want, EXACT)?;

            let fill = -1.25;
            let want = xa.zip(&ca, |x, m| if m != 0.0 { fill } else { x });
            close(&format!("masked_fill {sa:?} by {sc:?}"), &x.masked_fill(&c, fill), &want, EXACT)
        },
    );
}
