//! `encore train --config <toml>`: an experiment is data + split + training options + run
//! options, read from a TOML file (see `configs/`). It trains with evaluation every N epochs,
//! writes metrics as JSON lines, an SVG plot of the curves, an atomic checkpoint after every
//! epoch (resumable) and the exported weight file, and reports the final numbers next to the
//! most-popular baseline.
//!
//! `config` reads the file, `data_source` loads the data, `prepare` splits it, `report` logs
//! and prints the metrics, `ablation` runs the variants, `paired` compares models case by
//! case, `streamed` runs an experiment on Parquet event shards without loading them; this
//! module runs one experiment.

mod ablation;
mod config;
mod data_source;
pub mod paired;
mod prepare;
pub use prepare::PushedColdStart;
mod prompts;
pub use prompts::{PromptTuneReport, PromptTuneRun, TaskMethod, prompt_tune, task_cases};
mod ranker;
pub use ranker::{ALPHA_GRID, RankerRun, ranker};
mod report;
mod streamed;
pub use streamed::HeldOutShards;

pub use ablation::{AblationPlan, AblationRow, VARIANTS, ablate};
pub use config::{ExperimentConfig, Overrides, RunConfig, SplitConfig};
pub use data_source::{DataSource, Dataset, read_catalog};
pub use report::{MetricsLog, plot_curves};

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use encore_core::Reranker;
use encore_core::data::split::Holdout;
use encore_core::metrics::RankingMetrics;
use serde::Serialize;

use crate::backend::Backend;
use crate::evaluation::EvalReport;
use crate::io::write_atomic;
use crate::training::{CheckpointPolicy, Evaluator, Monitor, TrainedModel, train};
use prepare::Prepared;
use report::{print_metrics_row, print_summary};

/// What an experiment produced.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSummary {
    /// The configuration that ran (after overrides).
    pub config: ExperimentConfig,
    /// Held-out cases evaluated.
    pub cases: usize,
    /// Final model vs most-popular on all cases.
    pub report: EvalReport,
    /// Cold start: metrics on the cases whose target is a withheld title.
    pub withheld: Option<RankingMetrics>,
    /// Cold start on the device: the same cases ranked by the bundle without the withheld
    /// titles, which it receives as pushed candidates with metadata.
    pub withheld_pushed: Option<prepare::PushedColdStart>,
    /// Training wall time (s), all epochs of this process.
    pub train_seconds: f64,
    /// Mean target tokens per second over the epochs.
    pub tokens_per_s: f64,
    /// Size of the exported weight file.
    pub weight_file_bytes: usize,
    /// The process's peak resident memory when the summary was made (Linux; `None`
    /// elsewhere).
    #[serde(default)]
    pub peak_resident_bytes: Option<u64>,
}

/// Runs an experiment file.
pub fn run(path: &Path, overrides: &Overrides) -> anyhow::Result<ExperimentSummary> {
    let mut cfg = ExperimentConfig::read_with(path, &overrides.sets)?;
    overrides.apply_to(&mut cfg);
    let base = path.parent().unwrap_or(Path::new("."));
    run_config(&cfg, base, overrides.resume)
}

/// `encore eval --config`: evaluates a weight file on an experiment's data, split and protocol
/// (with `withhold_items`, that share of titles withheld as for the cold-start experiment: the
/// metrics on their cases are printed too, and for a bundle with a content encoder, the same
/// cases ranked on the device with those titles pushed as metadata; with
/// `pushed_unknown_share`, also with the unknown-ID gate replaced by that share of the unknown
/// vector, an experiment on the content path).
/// With `against` (named weight files), also each of them on the same cases, the paired
/// difference of NDCG@10 to each with its standard error and, for two, the share of the gap
/// from the first to the second that the model closes.
pub fn evaluate_file(
    path: &Path,
    holdout: Option<Holdout>,
    withhold_items: Option<f64>,
    pushed_unknown_share: Option<f32>,
    weights: &[u8],
    against: &[(String, Vec<u8>)],
    backend: Backend,
) -> anyhow::Result<()> {
    let mut cfg = ExperimentConfig::read(path)?;
    if let Some(h) = holdout {
        cfg.split.holdout = h;
    }
    if let Some(share) = withhold_items {
        cfg.run.withhold_items = share;
    }
    let prepared = Prepared::new(&cfg, path.parent().unwrap_or(Path::new(".")))?;
    let reranker = Reranker::from_bytes(weights, &backend.device())?;
    let started = Instant::now();
    let report = prepared.evaluate(&reranker)?;
    println!(
        "{} {:?} cases scored in {:.1} s",
        prepared.cases.len(),
        cfg.split.holdout,
        started.elapsed().as_secs_f64()
    );
    print_metrics_row("model", &report.model);
    print_metrics_row("most popular", &report.most_popular);
    if let Some(w) = prepared.withheld_metrics(&reranker)? {
        print_metrics_row("withheld only", &w);
    }
    if let Some(p) = prepared.withheld_on_device(weights, None)? {
        report::print_pushed(&p);
    }
    if let Some(share) = pushed_unknown_share
        && let Some(p) = prepared.withheld_on_device(weights, Some(share))?
    {
        println!(
            "with the unknown vector's share of a pushed title set to {share} (an experiment):"
        );
        report::print_pushed(&p);
    }
    if against.is_empty() {
        return Ok(());
    }
    let ndcg = |r: &Reranker| -> anyhow::Result<Vec<f64>> {
        Ok(paired::ndcg_per_case(&prepared.ranks(r)?, 10))
    };
    let ours = ndcg(&reranker)?;
    let (mean, se) = paired::mean_and_se(&ours);
    println!("NDCG@10 per case: model {mean:.4} ± {se:.4} (SE)");
    let mut others = Vec::with_capacity(against.len());
    for (name, bytes) in against {
        let other = Reranker::from_bytes(bytes, &backend.device())
            .with_context(|| format!("cannot load {name}"))?;
        let theirs = ndcg(&other)?;
        let (mean, se) = paired::mean_and_se(&theirs);
        let (diff, diff_se) = paired::paired_difference(&ours, &theirs);
        println!(
            "  {name}: {mean:.4} ± {se:.4}; model − it = {diff:+.4} ± {diff_se:.4} (paired SE)"
        );
        others.push(theirs);
    }
    if let [from, to] = others.as_slice() {
        let (share, se) = paired::gap_closed(&ours, from, to, 1000);
        println!(
            "  share of the gap from {} to {} the model closes: {:.1}% ± {:.1}% (bootstrap SE, 1,000 resamples)",
            against[0].0,
            against[1].0,
            100.0 * share,
            100.0 * se
        );
    }
    Ok(())
}

/// The training members' histories of an experiment file's data and split (the holdout
/// replaced when given): what a model trained on it saw.
pub fn training_histories(
    path: &Path,
    holdout: Option<Holdout>,
) -> anyhow::Result<Vec<encore_core::data::split::MemberHistory>> {
    let mut cfg = ExperimentConfig::read(path)?;
    if let Some(h) = holdout {
        cfg.split.holdout = h;
    }
    Ok(Prepared::new(&cfg, path.parent().unwrap_or(Path::new(".")))?.train_set)
}

/// Runs an experiment; data paths are relative to `base`.
pub fn run_config(
    cfg: &ExperimentConfig,
    base: &Path,
    resume: bool,
) -> anyhow::Result<ExperimentSummary> {
    cfg.training.check_model_shape()?;
    let out = &cfg.run.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    if let Some(shards) = cfg.data.shards(base) {
        return streamed::run_streamed(cfg, shards, resume);
    }
    let prepared = Prepared::new(cfg, base)?;
    let evaluate = |weights: &[u8]| -> anyhow::Result<RankingMetrics> {
        let reranker = Reranker::from_bytes(weights, &Backend::Cpu.device())?;
        Ok(prepared.evaluate(&reranker)?.model)
    };
    let (trained, train_seconds) =
        train_logged(cfg, resume, Some(&evaluate), |checkpoint, monitor| {
            train(
                &prepared.train_set,
                &prepared.data.catalog,
                &cfg.training,
                cfg.run.backend,
                checkpoint,
                monitor,
            )
        })?;
    let reranker = Reranker::from_bytes(&trained.weights, &Backend::Cpu.device())?;
    let report = prepared.evaluate(&reranker)?;
    let summary = ExperimentSummary {
        withheld: prepared.withheld_metrics(&reranker)?,
        withheld_pushed: prepared.withheld_on_device(&trained.weights, None)?,
        ..ExperimentSummary::of_run(cfg, &trained, train_seconds, prepared.cases.len(), report)
    };
    summary.write(out)?;
    Ok(summary)
}

/// Runs `train` with an experiment's checkpoint and monitor: an atomic checkpoint after every
/// epoch in `out/checkpoint.ckpt` (resumed with `resume`), `evaluate` every `eval_every`
/// epochs on validation (`test_curve_every` on test), each epoch appended to
/// `out/metrics.jsonl`, the curves redrawn to `out/curves.svg` and each evaluation printed;
/// then the weight file written to `out/model.encore`. Returns the trained model and the
/// training wall time in seconds.
fn train_logged(
    cfg: &ExperimentConfig,
    resume: bool,
    evaluate: Option<Evaluator<'_>>,
    train: impl FnOnce(CheckpointPolicy<'_>, Monitor<'_>) -> anyhow::Result<TrainedModel>,
) -> anyhow::Result<(TrainedModel, f64)> {
    let out = &cfg.run.out;
    let mut log = MetricsLog::open(&out.join("metrics.jsonl"), resume)?;
    let plot_path = out.join("curves.svg");
    let mut on_epoch = |e: &crate::training::EpochStats| -> anyhow::Result<()> {
        log.append(e)?;
        plot_curves(log.epochs(), &plot_path)?;
        if let Some(m) = &e.eval {
            eprintln!(
                "epoch {}: loss {:.4}  {:.0} tok/s  NDCG@10 {:.4}  HR@10 {:.4}",
                e.epoch,
                e.loss,
                e.tokens_per_s,
                m.ndcg_at(10),
                m.hr_at(10)
            );
        }
        Ok(())
    };
    let checkpoint = out.join("checkpoint.ckpt");
    let started = Instant::now();
    let trained = train(
        CheckpointPolicy {
            path: Some(&checkpoint),
            resume,
        },
        Monitor {
            show_progress: true,
            eval_every: match cfg.split.holdout {
                Holdout::Validation => cfg.run.eval_every,
                Holdout::Test => cfg.run.test_curve_every,
            },
            evaluate,
            on_epoch: Some(&mut on_epoch),
        },
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    write_atomic(&out.join("model.encore"), &trained.weights)?;
    Ok((trained, train_seconds))
}

impl ExperimentSummary {
    /// A finished run's summary with its evaluation on `cases` cases (`report`), without the
    /// cold-start parts: the configuration, training time, mean tokens/s, weight file size and
    /// peak memory.
    fn of_run(
        cfg: &ExperimentConfig,
        trained: &TrainedModel,
        train_seconds: f64,
        cases: usize,
        report: EvalReport,
    ) -> Self {
        let epochs = &trained.epochs;
        Self {
            config: cfg.clone(),
            cases,
            report,
            withheld: None,
            withheld_pushed: None,
            train_seconds,
            tokens_per_s: epochs.iter().map(|e| e.tokens_per_s).sum::<f64>()
                / epochs.len().max(1) as f64,
            weight_file_bytes: trained.weights.len(),
            peak_resident_bytes: report::peak_resident_bytes(),
        }
    }

    /// Writes the summary to `out/summary.json` (atomically) and prints it.
    fn write(&self, out: &Path) -> anyhow::Result<()> {
        write_atomic(&out.join("summary.json"), &serde_json::to_vec_pretty(self)?)?;
        print_summary(self);
        Ok(())
    }
}
