//! An experiment's TOML file: the `[data]`, `[split]`, `[training]` and `[run]` tables, with
//! `--set key.path=value` settings and command-line overrides on top.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use encore_core::data::split::Holdout;
use serde::{Deserialize, Serialize};

use super::DataSource;
use crate::backend::Backend;
use crate::training::TrainConfig;

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
            apply_set(&mut doc, set)?;
        }
        toml::Value::Table(doc)
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Applies one `key.path=value` setting to a parsed TOML document (the value is TOML, or a
/// bare string when it does not parse as TOML).
fn apply_set(doc: &mut toml::Table, set: &str) -> anyhow::Result<()> {
    let (key, value) = set
        .split_once('=')
        .with_context(|| format!("--set {set:?}: expected key.path=value"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .map(|mut t| t.remove("v").expect("parsed key"))
        .unwrap_or_else(|_| toml::Value::String(value.to_string()));
    let mut table = doc;
    let parts: Vec<&str> = key.trim().split('.').collect();
    for part in &parts[..parts.len() - 1] {
        table = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .with_context(|| format!("--set {set:?}: {part} is not a table"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
