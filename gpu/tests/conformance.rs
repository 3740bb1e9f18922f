//! The shared op conformance suite on the GPU backend (f32). Without an adapter these
//! tests fail with the reason; on machines without a GPU, Mesa's lavapipe (software
//! Vulkan) provides one: `apt-get install -y mesa-vulkan-drivers libvulkan1`.

mod gpu_f32 {
    tensor::conformance_tests!(gpu::GpuBackend::shared());
}
