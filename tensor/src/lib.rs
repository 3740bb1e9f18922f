//! Tensors for the VWN stack: an f32/f64 n-d array with zero-copy strided views, the
//! [`Backend`] trait that every device implements, and the CPU backend.
//!
//! ```
//! use tensor::{Cpu, Tensor};
//! let cpu = Cpu::<f32>::new();
//! let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], &cpu);
//! let b = a.matmul(&a.t());
//! assert_eq!(b.to_vec(), vec![5.0, 11.0, 11.0, 25.0]);
//! ```

pub mod backend;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod cpu;
pub mod element;
pub mod layout;
pub mod ops;
pub mod profile;
pub mod rng;
pub mod sampling;
mod tensor;

pub use backend::{AttentionShape, Backend, NormGrads, NormStats, RopeArgs};
pub use cpu::Cpu;
pub use element::Element;
pub use layout::Layout;
pub use ops::{AdamWStep, BinaryOp, ReduceOp, SgdStep, UnaryOp};
pub use rng::Rng;
pub use tensor::Tensor;
