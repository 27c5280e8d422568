//! An epoch's progress as training runs: a bar with loss and throughput on a terminal, a log
//! line every tenth of the epoch otherwise.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

/// Shows one epoch's progress.
pub(super) struct EpochProgress {
    bar: ProgressBar,
    /// Print a log line every `log_every` steps (a bar is hidden without a terminal).
    log_lines: bool,
    log_every: usize,
    epoch: usize,
    epochs: usize,
    steps: usize,
}

impl EpochProgress {
    /// Progress of `epoch` of `epochs`, `steps` steps long; nothing is shown unless `show`.
    pub(super) fn new(show: bool, epoch: usize, epochs: usize, steps: usize) -> Self {
        let bar = if show {
            ProgressBar::new(steps as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        Self {
            bar,
            log_lines: show && !std::io::stderr().is_terminal(),
            log_every: (steps / 10).max(1),
            epoch,
            epochs,
            steps,
        }
    }

    /// After step `step` (0-based): the mean loss so far and the target tokens per second.
    pub(super) fn update(&self, step: usize, loss: f64, tokens_per_s: f64) {
        self.bar
            .set_message(format!("loss {loss:.4}  {tokens_per_s:.0} tok/s"));
        self.bar.inc(1);
        if self.log_lines && (step + 1) % self.log_every == 0 {
            eprintln!(
                "epoch {}/{} step {}/{}: loss {loss:.4}, {tokens_per_s:.0} tokens/s",
                self.epoch,
                self.epochs,
                step + 1,
                self.steps
            );
        }
    }

    /// Ends the bar.
    pub(super) fn finish(&self) {
        self.bar.finish();
    }
}
