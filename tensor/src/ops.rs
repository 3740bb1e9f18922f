//! Op descriptors shared by every backend.

/// Elementwise functions of one tensor. Scalar parameters travel as `f64` so the enum does
/// not depend on the element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Recip,
    Tanh,
    Sigmoid,
    Relu,
    Silu,
    /// GELU with the tanh approximation (GPT-2's `gelu_new`).
    GeluTanh,
    Square,
    Abs,
    AddScalar(f64),
    MulScalar(f64),
    PowScalar(f64),
    MaxScalar(f64),
}

impl UnaryOp {
    /// `f(x)` in f64: the reference every backend is tested against.
    pub fn eval(self, x: f64) -> f64 {
        use UnaryOp::*;
        match self {
            Neg => -x,
            Exp => x.exp(),
            Log => x.ln(),
            Sqrt => x.sqrt(),
            Rsqrt => 1.0 / x.sqrt(),
            Recip => 1.0 / x,
            Tanh => x.tanh(),
            Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Relu => x.max(0.0),
            Silu => x / (1.0 + (-x).exp()),
            GeluTanh => 0.5 * x * (1.0 + (GELU_C * (x + 0.044715 * x * x * x)).tanh()),
            Square => x * x,
            Abs => x.abs(),
            AddScalar(s) => x + s,
            MulScalar(s) => x * s,
            PowScalar(e) => x.powf(e),
            MaxScalar(s) => x.max(s),
        }
    }

    /// `f'(x)` in f64.
    pub fn derivative(self, x: f64) -> f64 {
        use UnaryOp::*;
        match self {
            Neg => -1.0,
            Exp => x.exp(),
            Log => 1.0 / x,
            Sqrt => 0.5 / x.sqrt(),
            Rsqrt => -0.5 / (x * x.sqrt()),
            Recip => -1.0 / (x * x),
            Tanh => 1.0 - x.tanh().powi(2),
            Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            }
            Relu => f64::from(x > 0.0),
            Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 + x * (1.0 - s))
            }
            GeluTanh => {
                let u = GELU_C * (x + 0.044715 * x * x * x);
                let t = u.tanh();
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x)
            }
            Square => 2.0 * x,
            Abs => x.signum() * f64::from(x != 0.0),
            AddScalar(_) => 1.0,
            MulScalar(s) => s,
            PowScalar(e) => e * x.powf(e - 1.0),
            MaxScalar(s) => f64::from(x > s),
        }
    }
}

/// √(2/π), the constant of the tanh GELU approximation.
pub const GELU_C: f64 = 0.797_884_560_802_865_4;

/// Elementwise functions of two tensors of one (broadcast) shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    /// Comparisons give 1.0 where true and 0.0 where false.
    Eq,
    Gt,
    Ge,
}

impl BinaryOp {
    pub fn eval(self, a: f64, b: f64) -> f64 {
        use BinaryOp::*;
        match self {
            Add => a + b,
            Sub => a - b,
            Mul => a * b,
            Div => a / b,
            Max => a.max(b),
            Min => a.min(b),
            Pow => a.powf(b),
            Eq => f64::from(a == b),
            Gt => f64::from(a > b),
            Ge => f64::from(a >= b),
        }
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

/// Hyper-parameters of one AdamW step (decoupled weight decay, bias-corrected moments).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// 1-based step count, for the bias corrections.
    pub step: u64,
    /// Multiplies the gradient before use (global-norm clipping, loss scaling).
    pub grad_scale: f64,
}

/// Hyper-parameters of one SGD step with momentum and L2 weight decay (added to the
/// gradient, as PyTorch's SGD does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub grad_scale: f64,
}
