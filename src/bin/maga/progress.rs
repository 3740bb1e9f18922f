//! The stage progress line: batches, inputs, outputs, rejects, docs/s and tokens/s.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use data::maga::stage::Counts;
use vwn::progress::duration;

pub struct StageProgress {
    stage: &'static str,
    tty: bool,
    started: Instant,
}

impl StageProgress {
    pub fn new(stage: &'static str) -> Self {
        StageProgress { stage, tty: std::io::stderr().is_terminal(), started: Instant::now() }
    }

    fn line(&self, c: &Counts) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        // Rates count the inputs processed by this process, not those resumed over.
        let fresh = c.inputs - c.resumed_inputs;
        let resumed =
            if c.resumed_batches > 0 { format!(", {} batches resumed over", c.resumed_batches) } else { String::new() };
        format!(
            "[{}] {} batches{resumed} | {} in → {} out, {} rejected | {:.2} docs/s | {:.1} tok/s | {}",
            self.stage,
            c.batches,
            c.inputs,
            c.outputs,
            c.rejects,
            fresh as f64 / secs,
            c.tokens as f64 / secs,
            duration(secs)
        )
    }

    /// Redrawn in place on a terminal, one line per batch otherwise (logs, CI).
    pub fn update(&self, c: &Counts) {
        if self.tty {
            eprint!("\r\x1b[2K{}", self.line(c));
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{}", self.line(c));
        }
    }

    pub fn finish(&self, c: &Counts) {
        if self.tty {
            eprintln!();
        }
        eprintln!("{} done", self.line(c));
    }
}
