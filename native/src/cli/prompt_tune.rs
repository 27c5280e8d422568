//! `encore prompt-tune`: learn a prompt set for one task with the base model frozen.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use encore_core::model::{PromptForm, PromptPlacement};

use super::parse_holdout;
use crate::backend::Backend;
use crate::experiment::{PromptTuneRun, TaskMethod, prompt_tune};
use crate::io::write_atomic;
use crate::prompting::{PromptTask, PromptTuneConfig};

/// `encore prompt-tune`.
#[derive(Debug, Args)]
pub struct PromptTuneArgs {
    /// The base bundle; its foundation model stays frozen (its prompt sets are kept, one of
    /// the same name replaced).
    #[arg(long)]
    pub base: PathBuf,
    /// The task: `next`, `surface=NAME`, `genre=A|B`, `recent=YEARS`, `rating>=N`, `weekend`
    /// or `history<=N`.
    #[arg(long, value_parser = PromptTask::parse)]
    pub task: PromptTask,
    /// The prompt set's name (what a request selects); defaults to the task's (`kids` for
    /// `surface=kids`).
    #[arg(long)]
    pub name: Option<String>,
    /// Experiment file: the data, split and protocol (and the base model's loss settings).
    #[arg(long, default_value = "native/configs/synthetic.toml")]
    pub config: PathBuf,
    /// `validation` or `test`, replacing the file's holdout for the measurement.
    #[arg(long, value_parser = parse_holdout)]
    pub holdout: Option<encore_core::data::split::Holdout>,
    /// `input` (prompt tokens through every layer) or `deep` (per-layer keys and values).
    #[arg(long, value_parser = parse_form, default_value = "deep")]
    pub form: PromptForm,
    /// What is learned: `prompt` (a prompt set, the model frozen), or a baseline measured
    /// against it: `linear-head` (a linear map of the frozen model's user representation),
    /// `top-layer-head` (the last layer and a new linear head trained, the rest frozen) — both
    /// measured only, nothing written — or `fine-tune` (every parameter; the bundle holds the
    /// tuned model).
    #[arg(long, value_parser = TaskMethod::parse, default_value = "prompt")]
    pub method: TaskMethod,
    /// Where the prompt sits: `before-request` (between the history and the request token;
    /// what bundles serve) or `before-history` (a prefix the history sees: measured for
    /// comparison, nothing is written).
    #[arg(long, value_parser = parse_placement, default_value = "before-request")]
    pub placement: PromptPlacement,
    /// Vectors in the prompt (1 to 16).
    #[arg(long, default_value_t = PromptTuneConfig::default().length)]
    pub length: usize,
    /// Passes over the task's windows.
    #[arg(long, default_value_t = PromptTuneConfig::default().epochs)]
    pub epochs: usize,
    /// Windows per step.
    #[arg(long, default_value_t = PromptTuneConfig::default().batch_size)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = PromptTuneConfig::default().learning_rate)]
    pub learning_rate: f64,
    /// Request positions drawn per window and step.
    #[arg(long, default_value_t = PromptTuneConfig::default().requests_per_window)]
    pub requests_per_window: usize,
    /// Seed of the initial vectors and the sampling.
    #[arg(long, default_value_t = PromptTuneConfig::default().seed)]
    pub seed: u64,
    /// The bundle written: the base with the new prompt set.
    #[arg(long, default_value = "artifacts/prompted.encore")]
    pub out: PathBuf,
    /// Also write the measurement as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Backend to train on.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
}

/// Parses `input` or `deep`.
fn parse_form(s: &str) -> Result<PromptForm, String> {
    PromptForm::from_name(s).ok_or_else(|| format!("unknown prompt form {s:?} (input or deep)"))
}

/// Parses `before-request` or `before-history`.
fn parse_placement(s: &str) -> Result<PromptPlacement, String> {
    PromptPlacement::from_name(s)
        .ok_or_else(|| format!("unknown prompt placement {s:?} (before-request or before-history)"))
}

/// Runs `encore prompt-tune`.
pub fn run(a: &PromptTuneArgs) -> anyhow::Result<()> {
    let run = PromptTuneRun {
        config: a.config.clone(),
        holdout: a.holdout,
        base: a.base.clone(),
        name: a.name.clone().unwrap_or_else(|| a.task.default_name()),
        task: a.task.clone(),
        tune: PromptTuneConfig {
            form: a.form,
            length: a.length,
            placement: a.placement,
            epochs: a.epochs,
            batch_size: a.batch_size,
            learning_rate: a.learning_rate,
            requests_per_window: a.requests_per_window,
            seed: a.seed,
            ..PromptTuneConfig::default()
        },
        method: a.method,
        out: a.out.clone(),
        backend: a.backend,
    };
    let report = prompt_tune(&run)?;
    if let Some(path) = &a.report {
        let json = serde_json::to_vec_pretty(&report)?;
        write_atomic(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
