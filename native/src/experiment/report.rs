//! Training metrics as JSON lines, an SVG plot of the curves, and the printed summary.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::prelude::*;

use encore_core::metrics::RankingMetrics;

use super::ExperimentSummary;
use crate::training::EpochStats;

/// `metrics.jsonl`: one JSON object per epoch, appended and flushed as epochs finish.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    epochs: Vec<EpochStats>,
}

impl MetricsLog {
    /// Opens the log; `resume` keeps the epochs already logged, otherwise it starts empty.
    pub fn open(path: &Path, resume: bool) -> anyhow::Result<Self> {
        let mut epochs = Vec::new();
        if resume && path.exists() {
            let text = std::fs::read_to_string(path)?;
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                epochs.push(
                    serde_json::from_str(line)
                        .with_context(|| format!("{} line {}", path.display(), i + 1))?,
                );
            }
        } else {
            std::fs::write(path, b"")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            epochs,
        })
    }

    /// Appends one epoch (an epoch already logged, after a resume, replaces the later lines).
    pub fn append(&mut self, e: &EpochStats) -> anyhow::Result<()> {
        self.epochs.retain(|x| x.epoch < e.epoch);
        self.epochs.push(e.clone());
        let mut text = String::new();
        for x in &self.epochs {
            text += &serde_json::to_string(x)?;
            text.push('\n');
        }
        crate::io::write_atomic(&self.path, text.as_bytes())?;
        std::io::stderr().flush().ok();
        Ok(())
    }

    /// The epochs logged so far.
    pub fn epochs(&self) -> &[EpochStats] {
        &self.epochs
    }
}

/// Draws the loss curves (left) and the evaluation NDCG@10 / HR@10 (right) as an SVG file.
pub fn plot_curves(epochs: &[EpochStats], path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("svg.tmp");
    {
        let root = SVGBackend::new(&tmp, (1000, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(500);
        let n = epochs.len().max(2) as f64;
        let series = |f: fn(&EpochStats) -> f64| -> Vec<(f64, f64)> {
            epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
        };
        let losses = [
            ("total", series(|e| e.loss), BLUE),
            ("next item", series(|e| e.next_item_loss), RED),
            ("multi-token", series(|e| e.multi_token_loss), GREEN),
            ("auxiliary", series(|e| e.auxiliary_loss), MAGENTA),
            ("teacher scores", series(|e| e.teacher_scores_loss), CYAN),
            ("alignment", series(|e| e.alignment_loss), BLACK),
        ];
        let max_loss = losses
            .iter()
            .flat_map(|(_, s, _)| s.iter().map(|p| p.1))
            .fold(0f64, f64::max)
            .max(1e-3);
        let mut chart = ChartBuilder::on(&left)
            .caption("training loss", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(1f64..n, 0f64..max_loss * 1.05)?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        for (name, s, color) in losses {
            if s.iter().all(|p| p.1 == 0.0) {
                continue;
            }
            chart
                .draw_series(LineSeries::new(s, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;

        let evals: Vec<(f64, f64, f64)> = epochs
            .iter()
            .filter_map(|e| {
                e.eval.as_ref().and_then(|m| {
                    let k = m.ks.iter().position(|&k| k == 10)?;
                    Some((e.epoch as f64, m.ndcg[k], m.hit_rate[k]))
                })
            })
            .collect();
        let top = evals.iter().map(|e| e.2).fold(0f64, f64::max).max(0.05);
        let mut chart = ChartBuilder::on(&right)
            .caption("held-out ranking", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(1f64..n, 0f64..top * 1.1)?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        chart
            .draw_series(LineSeries::new(
                evals.iter().map(|e| (e.0, e.1)),
                RED.stroke_width(2),
            ))?
            .label("NDCG@10")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
        chart
            .draw_series(LineSeries::new(
                evals.iter().map(|e| (e.0, e.2)),
                BLUE.stroke_width(2),
            ))?
            .label("HR@10")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        root.present()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One metrics line: HR and NDCG at every K, and MRR.
pub fn print_metrics_row(name: &str, m: &RankingMetrics) {
    let mut line = format!("{name:<14}");
    for (k, (hr, nd)) in m.ks.iter().zip(m.hit_rate.iter().zip(&m.ndcg)) {
        line += &format!("  HR@{k} {hr:.4}  NDCG@{k} {nd:.4}");
    }
    println!("{line}  MRR {:.4}", m.mrr);
}

/// The summary of a finished experiment: cases, training time and throughput, file size,
/// and the model's metrics beside the most-popular baseline's.
pub fn print_summary(s: &ExperimentSummary) {
    let row = print_metrics_row;
    println!(
        "{} cases ({:?} holdout); trained in {:.0} s at {:.0} tokens/s; weight file {} bytes{}",
        s.cases,
        s.config.split.holdout,
        s.train_seconds,
        s.tokens_per_s,
        s.weight_file_bytes,
        s.peak_resident_bytes
            .map(|b| format!("; peak resident memory {:.0} MiB", b as f64 / 1048576.0))
            .unwrap_or_default()
    );
    row("model", &s.report.model);
    row("most popular", &s.report.most_popular);
    if let Some(w) = &s.withheld {
        row("withheld only", w);
    }
    if let Some(p) = &s.withheld_pushed {
        print_pushed(p);
    }
}

/// The cold-start cases ranked on the device with the withheld titles pushed as metadata.
pub fn print_pushed(p: &super::prepare::PushedColdStart) {
    print_metrics_row("all, pushed", &p.all_cases);
    print_metrics_row("withheld, pushed", &p.metrics);
    println!(
        "  (on a bundle without the {} withheld titles, each pushed with its metadata; {} cases \
         with a withheld target)",
        p.pushed_titles, p.cases
    );
}

/// The process's peak resident set size so far (`VmHWM` of `/proc/self/status`), where the
/// system reports it.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    /// The peak covers memory the process has touched: 64 MiB written, then freed, still
    /// counts.
    #[test]
    fn peak_resident_memory_counts_a_touched_buffer_after_it_is_freed() {
        let mut buffer = vec![0u8; 64 << 20];
        for page in buffer.chunks_mut(4096) {
            page[0] = 1;
        }
        assert_eq!(
            buffer
                .iter()
                .step_by(4096)
                .map(|&b| b as usize)
                .sum::<usize>(),
            16384
        );
        drop(buffer);
        let peak = super::peak_resident_bytes().expect("Linux reports VmHWM");
        assert!(peak >= 64 << 20, "peak {peak} bytes");
    }
}
