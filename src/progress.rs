//! A one-line progress display for training runs.

use model::trainer::{EvalMetrics, Observer, RunInfo, StepMetrics};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

/// Prints step, losses, throughput, MFU and ETA to stderr: redrawn in place on a
/// terminal, one line every `every` steps otherwise (logs, CI).
pub struct ProgressLine {
    tty: bool,
    every: u64,
    started: Instant,
    start_step: u64,
    /// Smoothed tokens/s (exponential moving average).
    rate: Option<f64>,
}

impl ProgressLine {
    pub fn new(every: u64) -> Self {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
            every: every.max(1),
            started: Instant::now(),
            start_step: 0,
            rate: None,
        }
    }
}

/// `12m05s` or `1h02m`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn bar(frac: f64, width: usize) -> String {
    let filled = ((frac.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

impl Observer for ProgressLine {
    fn started(&mut self, info: &RunInfo) {
        self.start_step = info.start_step;
        self.started = Instant::now();
        let p = &info.params;
        eprintln!("device: {}", info.device);
        eprintln!("{}", info.corpus_note);
        eprintln!(
            "parameters: {} total = backbone {} + embedding/LM head {} + GHC {} + reduce {} + MTP {}",
            p.total(),
            p.backbone,
            p.embedding,
            p.ghc,
            p.reduce,
            p.mtp
        );
        eprintln!(
            "steps {}..{} at {} tokens/step ({:.1} MFLOP/token fwd+bwd){}",
            info.start_step,
            info.total_steps,
            info.tokens_per_step,
            info.flops_per_token / 1e6,
            info.train_windows.map_or(String::new(), |w| format!(", {w} training windows per epoch"))
        );
    }

    fn step(&mut self, m: &StepMetrics, total: u64) -> bool {
        self.rate = Some(match self.rate {
            Some(r) => 0.9 * r + 0.1 * m.tokens_per_s,
            None => m.tokens_per_s,
        });
        let done = (m.step - self.start_step) as f64;
        let left = (total - m.step) as f64;
        let eta = self.started.elapsed().as_secs_f64() / done.max(1.0) * left;
        let next2 = m.loss_next2.map_or(String::new(), |l| format!(" / next-2 {l:.3}"));
        let line = format!(
            "[{:>5}/{total}] {} loss {:.4} (next {:.3}{next2}) lr {:.2e} | {:.0} tok/s | {:.0} GFLOP/s, MFU {:.0}% | ETA {}",
            m.step,
            bar(m.step as f64 / total as f64, 20),
            m.loss,
            m.loss_next,
            m.lr,
            self.rate.unwrap_or(0.0),
            m.gflops,
            100.0 * m.mfu,
            duration(eta)
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if m.step.is_multiple_of(self.every) || m.step == total {
            eprintln!("{line}");
        }
        true
    }

    fn evaluated(&mut self, e: &EvalMetrics) {
        let next2 = e.val_loss_next2.map_or(String::new(), |l| format!(", next-2 {l:.4}"));
        if self.tty {
            eprintln!();
        }
        eprintln!("  eval @ {}: val loss {:.4} (ppl {:.1}){next2}", e.step, e.val_loss, e.val_ppl);
    }

    fn checkpointed(&mut self, dir: &Path) {
        if self.tty {
            eprintln!();
        }
        eprintln!("  checkpoint → {}", dir.display());
    }
}
