//! Host buffers with a process-wide count of live buffers and bytes, so tests can assert
//! that a training loop does not leak.

use crate::element::Element;
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BUFFERS: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes currently held by CPU tensor storages.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Number of CPU tensor storages currently alive.
pub fn live_buffers() -> usize {
    LIVE_BUFFERS.load(Ordering::Relaxed)
}

/// Largest value `live_bytes` has reached since start or the last reset.
pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed)
}

/// Restarts peak tracking from the current live size.
pub fn reset_peak_bytes() {
    PEAK_BYTES.store(live_bytes(), Ordering::Relaxed);
}

/// A contiguous host buffer owned by one or more tensors (through `Arc`).
#[derive(Debug)]
pub struct CpuStorage<E: Element> {
    data: Vec<E>,
}

impl<E: Element> CpuStorage<E> {
    pub fn new(data: Vec<E>) -> Self {
        let bytes = data.len() * std::mem::size_of::<E>();
        let now = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
        LIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
        CpuStorage { data }
    }
    pub fn as_slice(&self) -> &[E] {
        &self.data
    }
    pub fn as_mut_slice(&mut self) -> &mut [E] {
        &mut self.data
    }
}

impl<E: Element> Drop for CpuStorage<E> {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.data.len() * std::mem::size_of::<E>(), Ordering::Relaxed);
        LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
        super::pool::recycle(std::mem::take(&mut self.data));
    }
}
