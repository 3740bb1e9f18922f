//! Reverse-mode automatic differentiation over any [`tensor::Backend`], with optimizers
//! and learning-rate schedules.
//!
//! ```
//! use autograd::{Param, Var};
//! use tensor::{Cpu, Tensor};
//! let cpu = Cpu::<f64>::new();
//! let w = Param::new("w", Tensor::from_f64(&[1.0, 2.0], &[2], &cpu), true);
//! let x = Var::constant(Tensor::from_f64(&[3.0, 4.0], &[2], &cpu));
//! w.var().mul(&x).sum_all().backward();
//! assert_eq!(w.grad().unwrap().to_f64_vec(), vec![3.0, 4.0]);
//! ```

mod gradcheck;
mod ops;
mod optim;
mod param;
mod schedule;
mod var;

pub use gradcheck::{check_gradients, check_param_gradients, GradCheckConfig};
pub use ops::Reduction;
pub use optim::{clip_scale, global_grad_norm, AdamState, AdamW, AdamWConfig, GroupRule, Sgd, SgdConfig};
pub use param::Param;
pub use schedule::LrSchedule;
pub use var::{is_grad_enabled, no_grad, Var};
