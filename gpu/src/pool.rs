//! Storage buffers bucketed by power-of-two size and reused across ops and steps.
//!
//! A buffer released while commands that use it are still being recorded goes to the
//! `dirty` list: kernels may write it (the encoder orders their work after the earlier
//! uses), but a host upload may not, because queue writes run before the pending
//! commands. At each submit the dirty buffers become clean.

use std::collections::HashMap;

/// Smallest bucket, in bytes.
const MIN_BYTES: u64 = 256;

/// The bucket (capacity in bytes) that holds `bytes`.
pub(crate) fn bucket(bytes: u64) -> u64 {
    bytes.max(MIN_BYTES).next_power_of_two()
}

#[derive(Default)]
pub(crate) struct Pool {
    clean: HashMap<u64, Vec<wgpu::Buffer>>,
    dirty: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Bytes held by live tensors plus both free lists.
    pub allocated: u64,
    pub peak_allocated: u64,
}

impl Pool {
    /// A buffer of `bucket` bytes; `for_upload` restricts the choice to clean buffers.
    pub fn take(&mut self, device: &wgpu::Device, bucket: u64, for_upload: bool) -> wgpu::Buffer {
        let reuse = if for_upload { None } else { self.dirty.get_mut(&bucket).and_then(Vec::pop) };
        if let Some(b) = reuse.or_else(|| self.clean.get_mut(&bucket).and_then(Vec::pop)) {
            return b;
        }
        self.allocated += bucket;
        self.peak_allocated = self.peak_allocated.max(self.allocated);
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor"),
            size: bucket,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn release(&mut self, bucket: u64, buffer: wgpu::Buffer) {
        self.dirty.entry(bucket).or_default().push(buffer);
    }

    /// After a submit: every released buffer may take host uploads again.
    pub fn submitted(&mut self) {
        for (bucket, mut list) in self.dirty.drain() {
            self.clean.entry(bucket).or_default().append(&mut list);
        }
    }

    /// Bytes sitting in the free lists.
    pub fn free_bytes(&self) -> u64 {
        self.clean.iter().chain(&self.dirty).map(|(b, l)| b * l.len() as u64).sum()
    }
}
