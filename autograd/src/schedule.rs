//! Learning-rate schedules, as functions of the 0-based step.

use std::f64::consts::PI;

#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    Constant,
    /// Linear warmup from 0 to the peak over `warmup` steps, then cosine decay to
    /// `min_ratio × peak` at `total` steps (held there after).
    WarmupCosine {
        warmup: u64,
        total: u64,
        min_ratio: f64,
    },
    /// Warmup-stable-decay: linear warmup, constant peak, then a linear decay to
    /// `min_ratio × peak` over the last `decay` steps before `total`.
    WarmupStableDecay {
        warmup: u64,
        total: u64,
        decay: u64,
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// Learning rate at `step` for peak rate `peak`.
    pub fn lr(&self, step: u64, peak: f64) -> f64 {
        let warm = |w: u64| if w > 0 && step < w { (step + 1) as f64 / w as f64 } else { 1.0 };
        let factor = match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::WarmupCosine { warmup, total, min_ratio } => {
                if step < warmup {
                    warm(warmup)
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let t = ((step - warmup) as f64 / span).min(1.0);
                    min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (PI * t).cos())
                }
            }
            LrSchedule::WarmupStableDecay { warmup, total, decay, min_ratio } => {
                let decay_start = total.saturating_sub(decay);
                if step < warmup {
                    warm(warmup)
                } else if step < decay_start {
                    1.0
                } else {
                    let t = ((step - decay_start) as f64 / decay.max(1) as f64).min(1.0);
                    1.0 - (1.0 - min_ratio) * t
                }
            }
        };
        peak * factor
    }
}
