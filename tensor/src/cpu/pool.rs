//! Freed tensor buffers, kept for reuse by the next allocation of the same length.
//!
//! A training step allocates the same set of sizes every step, many of them tens to
//! hundreds of MiB (logits, their gradient, the wide VWN residual). glibc hands buffers
//! of 32 MiB or more to `mmap`, so without reuse each one costs a page fault and a page
//! clear per 4 KiB on first touch (about 0.5 ms per MiB here, `docs/bench-cpu.md`) every
//! step. Returning freed buffers to this pool and taking them back by exact length
//! removes that, on every platform and allocator.
//!
//! Bounds: only buffers of at least [`MIN_POOLED_BYTES`] are kept (malloc serves small
//! ones well), and the pool never holds more bytes than the largest live tensor memory
//! seen so far ([`super::peak_bytes`]), so it cannot grow past what the program has
//! already shown it needs.

use super::storage::peak_bytes;
use crate::element::Element;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Smaller buffers go straight back to the allocator.
pub const MIN_POOLED_BYTES: usize = 64 << 10;

/// Free buffers of one element type, by length.
#[derive(Debug)]
pub struct BufferPool<E> {
    inner: Mutex<Free<E>>,
}

#[derive(Debug)]
struct Free<E> {
    by_len: BTreeMap<usize, Vec<Vec<E>>>,
    bytes: usize,
}

impl<E> Free<E> {
    const fn empty() -> Self {
        Free { by_len: BTreeMap::new(), bytes: 0 }
    }
}

impl<E: Element> Default for BufferPool<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Element> BufferPool<E> {
    pub const fn new() -> Self {
        BufferPool { inner: Mutex::new(Free::empty()) }
    }

    /// A free buffer of exactly `len` elements' capacity, emptied, if the pool has one.
    fn take(&self, len: usize) -> Option<Vec<E>> {
        if len * size_of::<E>() < MIN_POOLED_BYTES {
            return None;
        }
        let mut free = self.inner.lock().expect("buffer pool lock");
        let mut v = free.by_len.get_mut(&len)?.pop()?;
        free.bytes -= len * size_of::<E>();
        v.clear();
        Some(v)
    }

    /// Keeps `v` for reuse, or frees it when it is small or the pool is full.
    fn put(&self, v: Vec<E>) {
        let bytes = v.capacity() * size_of::<E>();
        if bytes < MIN_POOLED_BYTES {
            return;
        }
        let mut free = self.inner.lock().expect("buffer pool lock");
        if free.bytes + bytes > peak_bytes() {
            return;
        }
        free.bytes += bytes;
        free.by_len.entry(v.capacity()).or_default().push(v);
    }

    /// Bytes held for reuse.
    fn held_bytes(&self) -> usize {
        self.inner.lock().expect("buffer pool lock").bytes
    }

    /// Frees every held buffer.
    fn clear(&self) {
        *self.inner.lock().expect("buffer pool lock") = Free::empty();
    }
}

/// An empty vector with room for `len` elements, reused when possible: for kernels that
/// write every element once (through `spare_capacity_mut` or `push`).
pub(crate) fn with_capacity<E: Element>(len: usize) -> Vec<E> {
    E::buffer_pool().take(len).unwrap_or_else(|| Vec::with_capacity(len))
}

/// `len` copies of `value`, in a reused buffer when possible.
pub(crate) fn filled<E: Element>(len: usize, value: E) -> Vec<E> {
    match E::buffer_pool().take(len) {
        Some(mut v) => {
            v.resize(len, value);
            v
        }
        None => vec![value; len],
    }
}

/// Returns a dropped storage's buffer to the pool.
pub(crate) fn recycle<E: Element>(v: Vec<E>) {
    E::buffer_pool().put(v)
}

/// Bytes of freed `E` buffers the pool holds for reuse (they count toward the process's
/// memory, not toward [`super::live_bytes`]).
pub fn pooled_bytes<E: Element>() -> usize {
    E::buffer_pool().held_bytes()
}

/// Releases every pooled `E` buffer to the allocator.
pub fn release_pooled<E: Element>() {
    E::buffer_pool().clear()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuStorage;

    /// A dropped storage's buffer comes back for the next allocation of its length, and
    /// only then. (Lengths unlikely to occur in other tests running concurrently.)
    #[test]
    fn reuses_by_exact_length() {
        let len = MIN_POOLED_BYTES / size_of::<f64>() + 17;
        let keep_peak_high = CpuStorage::new(vec![0.0f64; 4 * len]);
        let first = CpuStorage::new(filled::<f64>(len, 1.5));
        let ptr = first.as_slice().as_ptr();
        drop(first);
        let other = with_capacity::<f64>(len + 1);
        assert_ne!(other.as_ptr(), ptr, "a different length must not take the buffer");
        let again = filled::<f64>(len, 2.0);
        assert_eq!(again.as_ptr(), ptr, "the freed buffer is reused");
        assert!(again.iter().all(|&x| x == 2.0), "a reused buffer is refilled");
        drop(keep_peak_high);
    }

    /// Buffers below the threshold are not kept.
    #[test]
    fn small_buffers_go_to_the_allocator() {
        let len = MIN_POOLED_BYTES / size_of::<f64>() - 3;
        drop(CpuStorage::new(vec![0.0f64; len]));
        assert!(f64::buffer_pool().take(len).is_none());
    }
}
