//! `encore train --config <toml>`: an experiment is data + split + training options + run
//! options, read from a TOML file (see `configs/`). It trains with evaluation every N epochs,
//! writes metrics as JSON lines, an SVG plot of the curves, an atomic checkpoint after every
//! epoch (resumable) and the exported weight file, and reports the final numbers next to the
//! most-popular baseline.

mod ablation;
mod data_source;
mod report;

pub use ablation::{AblationPlan, AblationRow, VARIANTS, ablate};
pub use data_source::{DataSource, Dataset};
pub use report::{MetricsLog, plot_curves};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use encore_core::Reranker;
use encore_core::data::movielens;
use encore_core::data::split::{
    HeldOutEvent, Holdout, LeaveOneOut, MemberHistory, group_by_member,
};
use encore_core::metrics::RankingMetrics;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::evaluation::{EvalProtocol, EvalReport, evaluate_with, ranks};
use crate::io::write_atomic;
use crate::training::{CheckpointPolicy, Monitor, TrainConfig, train};

/// The `[split]` table: the leave-one-out protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// `validation` (target = second-to-last item, for model selection) or `test` (last item).
    pub holdout: Holdout,
    /// Items before the target the model sees (and, with `exclude_history`, the ranking skips).
    pub history_window: usize,
    /// Skip the history window's items when ranking (default: on for MovieLens, off otherwise).
    pub exclude_history: Option<bool>,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            holdout: Holdout::Validation,
            history_window: 200,
            exclude_history: None,
        }
    }
}

/// The `[run]` table: where outputs go and how the run is watched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Output directory (relative to the working directory).
    pub out: PathBuf,
    /// Evaluate every this many epochs on the validation holdout (0: only after the last epoch).
    /// With the test holdout, only the final model is evaluated (see `test_curve_every`).
    pub eval_every: usize,
    /// With the test holdout: also evaluate on the test split every this many epochs (0: off),
    /// to time a fixed configuration to a quality (a time-to-quality benchmark). Never
    /// choose epochs or settings from this curve; that is what the validation holdout is for.
    pub test_curve_every: usize,
    /// Backend to train on.
    pub backend: Backend,
    /// Cold-start experiment: share of titles whose training events are all removed (0: none).
    pub withhold_items: f64,
    /// Seed choosing the withheld titles.
    pub withhold_seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/synthetic"),
            eval_every: 1,
            test_curve_every: 0,
            backend: Backend::Cpu,
            withhold_items: 0.0,
            withhold_seed: 1,
        }
    }
}

/// A whole experiment, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The data.
    pub data: DataSource,
    /// The evaluation split.
    pub split: SplitConfig,
    /// Model and optimisation.
    pub training: TrainConfig,
    /// Outputs and monitoring.
    pub run: RunConfig,
}

impl ExperimentConfig {
    /// Reads and validates a TOML experiment file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        Self::read_with(path, &[])
    }

    /// Reads a TOML experiment file with `key.path=value` settings applied on top (values are
    /// TOML: `training.objectives.mtp_items=1`, `training.content_embeddings=false`).
    pub fn read_with(path: &Path, sets: &[String]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for set in sets {
            let (key, value) = set
                .split_once('=')
                .with_context(|| format!("--set {set:?}: expected key.path=value"))?;
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .map(|mut t| t.remove("v").expect("parsed key"))
                .or_else(|_| Ok::<_, anyhow::Error>(toml::Value::String(value.to_string())))?;
            let mut table = &mut doc;
            let parts: Vec<&str> = key.trim().split('.').collect();
            for part in &parts[..parts.len() - 1] {
                table = table
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .with_context(|| format!("--set {set:?}: {part} is not a table"))?;
            }
            table.insert(parts[parts.len() - 1].to_string(), value);
        }
        toml::Value::Table(doc)
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Command-line overrides of an experiment file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replace `training.epochs`.
    pub epochs: Option<usize>,
    /// Replace `run.out`.
    pub out: Option<PathBuf>,
    /// Replace `split.holdout`.
    pub holdout: Option<Holdout>,
    /// Continue from the run's checkpoint.
    pub resume: bool,
    /// `key.path=value` settings applied on top of the file.
    pub sets: Vec<String>,
}

impl Overrides {
    /// Applies the epochs, output directory and holdout overrides to `cfg`.
    pub fn apply_to(&self, cfg: &mut ExperimentConfig) {
        if let Some(e) = self.epochs {
            cfg.training.epochs = e;
        }
        if let Some(o) = &self.out {
            cfg.run.out = o.clone();
        }
        if let Some(h) = self.holdout {
            cfg.split.holdout = h;
        }
    }
}

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
    /// Training wall time (s), all epochs of this process.
    pub train_seconds: f64,
    /// Mean target tokens per second over the epochs.
    pub tokens_per_s: f64,
    /// Size of the exported weight file.
    pub weight_file_bytes: usize,
}

/// The titles withheld for the cold-start experiment.
fn withheld_items(data: &Dataset, share: f64, seed: u64) -> HashSet<u32> {
    if share <= 0.0 {
        return HashSet::new();
    }
    let mut ids = data.catalog.ids();
    ids.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = ((ids.len() as f64) * share).round() as usize;
    ids.into_iter().take(n).collect()
}

/// Runs an experiment file.
pub fn run(path: &Path, overrides: &Overrides) -> anyhow::Result<ExperimentSummary> {
    let mut cfg = ExperimentConfig::read_with(path, &overrides.sets)?;
    overrides.apply_to(&mut cfg);
    let base = path.parent().unwrap_or(Path::new("."));
    run_config(&cfg, base, overrides.resume)
}

/// An experiment's data, split and protocol, ready for training or evaluation.
struct Prepared {
    data: Dataset,
    train_set: Vec<MemberHistory>,
    cases: Vec<HeldOutEvent>,
    withheld: HashSet<u32>,
    protocol: EvalProtocol,
}

impl Prepared {
    /// Loads the data (paths relative to `base`), splits it and withholds titles as `cfg` says.
    fn new(cfg: &ExperimentConfig, base: &Path) -> anyhow::Result<Self> {
        let data = cfg.data.load(base)?;
        if data.skipped_lines > 0 {
            eprintln!("skipped {} malformed lines", data.skipped_lines);
        }
        let histories = group_by_member(&data.events);
        let split = LeaveOneOut {
            holdout: cfg.split.holdout,
            history_window: cfg.split.history_window,
        };
        let (mut train_set, cases) = split.split(&histories);
        let withheld = withheld_items(&data, cfg.run.withhold_items, cfg.run.withhold_seed);
        if !withheld.is_empty() {
            for h in &mut train_set {
                h.events.retain(|e| !withheld.contains(&e.item));
            }
            train_set.retain(|h| !h.events.is_empty());
        }
        let mut data = data;
        if cfg.data.is_movielens() {
            // MovieLens titles arrive with their first rating: count the training events only,
            // so that held-out targets and withheld titles leave no trace in a title's age.
            movielens::set_arrival_times(
                &mut data.catalog,
                train_set.iter().flat_map(|h| &h.events),
            );
        }
        let mut protocol = if cfg.data.is_movielens() {
            EvalProtocol::leave_one_out()
        } else {
            EvalProtocol::synthetic()
        };
        if let Some(exclude) = cfg.split.exclude_history {
            protocol.exclude_history = exclude;
        }
        eprintln!(
            "{} titles, {} members, {} events; {} training members, {} {:?} cases{}",
            data.catalog.len(),
            histories.len(),
            data.events.len(),
            train_set.len(),
            cases.len(),
            cfg.split.holdout,
            if withheld.is_empty() {
                String::new()
            } else {
                format!(", {} titles withheld", withheld.len())
            }
        );
        Ok(Self {
            data,
            train_set,
            cases,
            withheld,
            protocol,
        })
    }

    /// Metrics on the cases whose target is a withheld title (cold start), if any.
    fn withheld_metrics(&self, reranker: &Reranker) -> anyhow::Result<Option<RankingMetrics>> {
        if self.withheld.is_empty() {
            return Ok(None);
        }
        let cold: Vec<HeldOutEvent> = self
            .cases
            .iter()
            .filter(|c| self.withheld.contains(&c.target.item))
            .cloned()
            .collect();
        let (m, _) = ranks(
            reranker,
            &self.data.catalog,
            &self.train_set,
            &cold,
            &self.protocol,
        )?;
        Ok(Some(RankingMetrics::from_ranks(&m, &self.protocol.ks)))
    }
}

/// `encore eval --config`: evaluates a weight file on an experiment's data, split and protocol.
pub fn evaluate_file(
    path: &Path,
    holdout: Option<Holdout>,
    weights: &[u8],
    backend: Backend,
) -> anyhow::Result<()> {
    let mut cfg = ExperimentConfig::read(path)?;
    if let Some(h) = holdout {
        cfg.split.holdout = h;
    }
    let prepared = Prepared::new(&cfg, path.parent().unwrap_or(Path::new(".")))?;
    let reranker = Reranker::from_bytes(weights, &backend.device())?;
    let started = Instant::now();
    let report = evaluate_with(
        &reranker,
        &prepared.data.catalog,
        &prepared.train_set,
        &prepared.cases,
        &prepared.protocol,
    )?;
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
    Ok(())
}

/// Runs an experiment; data paths are relative to `base`.
pub fn run_config(
    cfg: &ExperimentConfig,
    base: &Path,
    resume: bool,
) -> anyhow::Result<ExperimentSummary> {
    let out = &cfg.run.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let Prepared {
        data,
        train_set,
        cases,
        withheld,
        protocol,
    } = Prepared::new(cfg, base)?;

    let evaluate = |weights: &[u8]| -> anyhow::Result<RankingMetrics> {
        let reranker = Reranker::from_bytes(weights, &Backend::Cpu.device())?;
        Ok(evaluate_with(&reranker, &data.catalog, &train_set, &cases, &protocol)?.model)
    };
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
    let eval_every = match cfg.split.holdout {
        Holdout::Validation => cfg.run.eval_every,
        Holdout::Test => cfg.run.test_curve_every,
    };
    let checkpoint = out.join("checkpoint.ckpt");
    let started = Instant::now();
    let trained = train(
        &train_set,
        &data.catalog,
        &cfg.training,
        cfg.run.backend,
        CheckpointPolicy {
            path: Some(&checkpoint),
            resume,
        },
        Monitor {
            show_progress: true,
            eval_every,
            evaluate: Some(&evaluate),
            on_epoch: Some(&mut on_epoch),
        },
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    write_atomic(&out.join("model.encore"), &trained.weights)?;
    let reranker = Reranker::from_bytes(&trained.weights, &Backend::Cpu.device())?;
    let report = evaluate_with(&reranker, &data.catalog, &train_set, &cases, &protocol)?;
    let withheld_metrics = Prepared {
        data,
        train_set,
        cases: cases.clone(),
        withheld,
        protocol,
    }
    .withheld_metrics(&reranker)?;
    let epochs = &trained.epochs;
    let summary = ExperimentSummary {
        config: cfg.clone(),
        cases: cases.len(),
        report,
        withheld: withheld_metrics,
        train_seconds,
        tokens_per_s: epochs.iter().map(|e| e.tokens_per_s).sum::<f64>()
            / epochs.len().max(1) as f64,
        weight_file_bytes: trained.weights.len(),
    };
    write_atomic(
        &out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    print_summary(&summary);
    Ok(summary)
}

/// One metrics line: HR and NDCG at every K, and MRR.
fn print_metrics_row(name: &str, m: &RankingMetrics) {
    let mut line = format!("{name:<14}");
    for (k, (hr, nd)) in m.ks.iter().zip(m.hit_rate.iter().zip(&m.ndcg)) {
        line += &format!("  HR@{k} {hr:.4}  NDCG@{k} {nd:.4}");
    }
    println!("{line}  MRR {:.4}", m.mrr);
}

fn print_summary(s: &ExperimentSummary) {
    let row = print_metrics_row;
    println!(
        "{} cases ({:?} holdout); trained in {:.0} s at {:.0} tokens/s; weight file {} bytes",
        s.cases, s.config.split.holdout, s.train_seconds, s.tokens_per_s, s.weight_file_bytes
    );
    row("model", &s.report.model);
    row("most popular", &s.report.most_popular);
    if let Some(w) = &s.withheld {
        row("withheld only", w);
    }
}

/// Holdout parsing for the command line.
pub fn parse_holdout(s: &str) -> Result<Holdout, String> {
    match s {
        "test" => Ok(Holdout::Test),
        "validation" => Ok(Holdout::Validation),
        other => Err(format!("unknown holdout {other:?} (test or validation)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MovieLens title's arrival comes from the training events: one rated only as a
    /// held-out target, or withheld for cold start, gets no age from its own ratings.
    #[test]
    fn movielens_arrival_times_come_from_training_events_only() {
        let dir = std::env::temp_dir().join(format!("encore-arrival-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("movies.dat"),
            "1::A (1990)::Drama\n2::B (1991)::Drama\n3::C (1992)::Drama\n4::D (1993)::Drama\n",
        )
        .unwrap();
        // Member 1: 1, 2, 3 (validation target 2, test target 3); member 2: 1, 4, 1.
        std::fs::write(
            dir.join("ratings.dat"),
            "1::1::5::100\n1::2::5::200\n1::3::5::300\n2::1::4::110\n2::4::4::120\n2::1::3::400\n",
        )
        .unwrap();
        let mut cfg = ExperimentConfig {
            data: DataSource::Movielens1m {
                dir: dir.clone(),
                text_embeddings: false,
                skip_bad_lines: false,
            },
            ..Default::default()
        };
        let arrivals = |cfg: &ExperimentConfig| {
            let p = Prepared::new(cfg, Path::new(".")).unwrap();
            [1, 2, 3, 4].map(|id| p.data.catalog.get(id).unwrap().added_at)
        };
        // Validation: training keeps events at 100 and 110 (each member's last two held out).
        cfg.split.holdout = Holdout::Validation;
        assert_eq!(arrivals(&cfg), [100, 110, 110, 110]);
        // Test: the validation targets (200, 120) join training; title 3 is rated only at 300.
        cfg.split.holdout = Holdout::Test;
        assert_eq!(arrivals(&cfg), [100, 200, 200, 120]);
        // Withholding every title leaves no training event: all arrive at time 0.
        cfg.run.withhold_items = 1.0;
        assert_eq!(arrivals(&cfg), [0, 0, 0, 0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_example_config_parses_and_names_existing_data() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let cfg = ExperimentConfig::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
                if let DataSource::Movielens1m { dir: d, .. }
                | DataSource::Movielens100k { dir: d, .. } = &cfg.data
                {
                    assert!(
                        d.is_relative(),
                        "{}: data paths are relative to the file",
                        path.display()
                    );
                }
                n += 1;
            }
        }
        assert!(n >= 3, "found {n} configs");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_their_place() {
        let dir = std::env::temp_dir().join(format!("encore-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[training]\nepochs = 2\nlearning_rat = 0.1\n").unwrap();
        let err = format!("{:#}", ExperimentConfig::read(&path).unwrap_err());
        assert!(
            err.contains("bad.toml") && err.contains("learning_rat"),
            "{err}"
        );
        std::fs::write(&path, "[data]\nsource = \"movielens-2m\"\n").unwrap();
        let err = format!("{:#}", ExperimentConfig::read(&path).unwrap_err());
        assert!(err.contains("movielens-2m"), "{err}");
        std::fs::write(
            &path,
            "[split]\nholdout = \"test\"\n[run]\nbackend = \"wgpu\"\n",
        )
        .unwrap();
        let cfg = ExperimentConfig::read(&path).unwrap();
        assert_eq!(
            (cfg.split.holdout, cfg.run.backend),
            (Holdout::Test, Backend::Wgpu)
        );
        assert_eq!(cfg.training, TrainConfig::default());
        let sets = [
            "training.objectives.mtp_items=1".to_string(),
            "run.out=\"x/y\"".to_string(),
            "training.content_embeddings=false".to_string(),
        ];
        let cfg = ExperimentConfig::read_with(&path, &sets).unwrap();
        assert_eq!(cfg.training.objectives.mtp_items, 1);
        assert!(!cfg.training.content_embeddings);
        assert_eq!(cfg.run.out, PathBuf::from("x/y"));
        let err = format!(
            "{:#}",
            ExperimentConfig::read_with(&path, &["training.epoch=3".into()]).unwrap_err()
        );
        assert!(err.contains("epoch"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn withheld_titles_are_a_fixed_share_chosen_by_seed() {
        let data = DataSource::default().load(Path::new(".")).unwrap();
        let a = withheld_items(&data, 0.1, 1);
        assert_eq!(a.len(), data.catalog.len() / 10);
        assert_eq!(a, withheld_items(&data, 0.1, 1));
        assert_ne!(a, withheld_items(&data, 0.1, 2));
        assert!(withheld_items(&data, 0.0, 1).is_empty());
    }
}
