//! The wgpu backend: [`GpuBackend`] implements [`tensor::Backend`] in `f32` with WGSL
//! kernels (`src/shaders/*.wgsl`) on Vulkan, Metal or DX12, so that autograd, the model
//! and the trainer run unchanged on a GPU.
//!
//! Work is recorded into one pending command encoder and submitted lazily: only
//! read-backs to the host (`to_vec`, `argmax`) wait for the device. Buffers come from a
//! size-bucketed pool and are reused across steps; pipelines are compiled once per
//! (shader, entry point, specialisation constants).

mod backend;
mod device;
mod params;
mod pool;
mod runtime;

pub use backend::GpuBackend;
pub use device::{list_adapters, GpuError, ADAPTER_ENV};
pub use runtime::GpuStorage;
