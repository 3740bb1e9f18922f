//! `pretrain --profile`: time per op kind and phase, allocations per step and peak RSS.
//!
//! Op times come from [`tensor::profile::Profiled`]; allocations from [`CountingAlloc`],
//! which a binary installs as its global allocator. The report covers the steps after a
//! short warm-up (first steps pay one-off costs: page faults on fresh buffers, lazily
//! built caches), and leaves evaluation and checkpointing out.

use model::trainer::{EvalMetrics, Observer, RunInfo, StepMetrics};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tensor::profile::{Phase, Profile, Profiled};
use tensor::Backend;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting allocations and bytes requested.
pub struct CountingAlloc;

// SAFETY: every call forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count(bytes: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// (allocations, bytes) since the program started.
fn allocation_counts() -> (u64, u64) {
    (ALLOCATIONS.load(Ordering::Relaxed), ALLOCATED_BYTES.load(Ordering::Relaxed))
}

/// Peak resident set size in bytes (Linux `VmHWM`), where the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An observer that forwards to `inner` and gathers the profile of the steps after
/// `warmup`; [`ProfileObserver::report`] formats it.
pub struct ProfileObserver<'a, B: Backend> {
    inner: &'a mut dyn Observer,
    backend: Profiled<B>,
    warmup: u64,
    steps_seen: u64,
    steps: u64,
    tokens: u64,
    seconds: f64,
    ops: Profile,
    allocations_at_start: (u64, u64),
    /// (elapsed seconds, tokens seen) after the previous step.
    last: (f64, u64),
}

impl<'a, B: Backend> ProfileObserver<'a, B> {
    pub fn new(inner: &'a mut dyn Observer, backend: Profiled<B>, warmup: u64) -> Self {
        ProfileObserver {
            inner,
            backend,
            warmup,
            steps_seen: 0,
            steps: 0,
            tokens: 0,
            seconds: 0.0,
            ops: Profile::default(),
            allocations_at_start: (0, 0),
            last: (0.0, 0),
        }
    }

    /// The table of time per (phase, op), per profiled step.
    pub fn report(&self) -> String {
        if self.steps == 0 {
            return format!("profile: no steps after the {} warm-up step(s); run more steps", self.warmup);
        }
        let n = self.steps as f64;
        let step_s = self.seconds / n;
        let in_ops: f64 =
            [Phase::Forward, Phase::Backward, Phase::Optimizer].iter().map(|&p| self.ops.seconds(Some(p))).sum::<f64>()
                / n;
        let (allocs, bytes) = allocation_counts();
        let mut out = format!(
            "profile over {} steps after {} warm-up: {:.1} ms/step, {:.0} tokens/s; in backend ops {:.1} ms \
             ({:.0}%), outside them (autograd, data, allocation) {:.1} ms\n",
            self.steps,
            self.warmup,
            step_s * 1e3,
            self.tokens as f64 / self.seconds,
            in_ops * 1e3,
            100.0 * in_ops / step_s,
            (step_s - in_ops) * 1e3,
        );
        out += &format!(
            "allocations per step (evaluations and checkpoints included): {:.0}, {:.1} MiB; peak RSS {}\n",
            (allocs - self.allocations_at_start.0) as f64 / n,
            (bytes - self.allocations_at_start.1) as f64 / n / (1 << 20) as f64,
            peak_rss_bytes().map_or("unknown".into(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64)),
        );
        out += &format!(
            "{:<10} {:<28} {:>10} {:>10} {:>7} {:>9}\n",
            "phase", "op", "calls/step", "ms/step", "share", "GFLOP/s"
        );
        for ((phase, op), t) in self.ops.sorted() {
            if matches!(phase, Phase::Eval | Phase::Checkpoint) {
                continue;
            }
            let gflops = if t.flops > 0.0 { format!("{:.1}", t.flops / t.seconds / 1e9) } else { String::new() };
            out += &format!(
                "{:<10} {:<28} {:>10.1} {:>10.2} {:>6.1}% {:>9}\n",
                phase.to_string(),
                op,
                t.calls as f64 / n,
                t.seconds / n * 1e3,
                100.0 * t.seconds / self.seconds,
                gflops
            );
        }
        out
    }
}

impl<B: Backend> Observer for ProfileObserver<'_, B> {
    fn started(&mut self, info: &RunInfo) {
        self.backend.take(); // model initialisation
        self.inner.started(info)
    }

    fn step(&mut self, m: &StepMetrics, total_steps: u64) -> bool {
        self.steps_seen += 1;
        // Ops of evaluation and checkpointing since the previous step carry their own
        // phase; everything else taken here belongs to this step.
        let ops = self.backend.take();
        if self.steps_seen == self.warmup {
            self.allocations_at_start = allocation_counts();
        } else if self.steps_seen > self.warmup {
            self.steps += 1;
            self.seconds += m.elapsed_s - self.last.0;
            self.tokens += m.tokens - self.last.1;
            for (key, t) in ops.ops {
                let total = self.ops.ops.entry(key).or_default();
                total.calls += t.calls;
                total.seconds += t.seconds;
                total.flops += t.flops;
            }
        }
        self.last = (m.elapsed_s, m.tokens);
        self.inner.step(m, total_steps)
    }

    fn evaluated(&mut self, m: &EvalMetrics) {
        self.inner.evaluated(m)
    }

    fn checkpointed(&mut self, dir: &Path) {
        self.inner.checkpointed(dir)
    }
}
