//! `encore ranker`: train the contextual ranker on impressions with a foundation model's
//! features and measure it per task.

use std::path::PathBuf;

use clap::Args;

use super::parse_holdout;
use crate::experiment::{RankerRun, ranker};
use crate::ranking::RankerTrainConfig;

/// `encore ranker`.
#[derive(Debug, Args)]
pub struct RankerArgs {
    /// The foundation model's bundle, trained on the same experiment and holdout.
    #[arg(long)]
    pub base: PathBuf,
    /// Experiment file: the data and split.
    #[arg(long, default_value = "native/configs/synthetic.toml")]
    pub config: PathBuf,
    /// `validation` or `test`, replacing the file's holdout.
    #[arg(long, value_parser = parse_holdout)]
    pub holdout: Option<encore_core::data::split::Holdout>,
    /// Training impressions drawn from those generated from the training events.
    #[arg(long, default_value_t = 8000)]
    pub train_impressions: usize,
    /// Candidates kept per training impression (the engaged one and a sample of the others).
    #[arg(long, default_value_t = 20)]
    pub train_candidates: usize,
    /// Impressions per step.
    #[arg(long, default_value_t = 32)]
    pub batch_impressions: usize,
    /// Training passes.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs `encore ranker`.
pub fn run(a: &RankerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.train_candidates >= 2 && a.epochs > 0 && a.train_impressions > 0,
        "--train-candidates must be at least 2, --epochs and --train-impressions positive"
    );
    ranker(&RankerRun {
        config: a.config.clone(),
        holdout: a.holdout,
        base: a.base.clone(),
        train_impressions: a.train_impressions,
        train_candidates: a.train_candidates,
        batch_impressions: a.batch_impressions,
        train: RankerTrainConfig {
            epochs: a.epochs,
            learning_rate: a.learning_rate,
            alpha: None,
            seed: a.seed,
        },
    })
}
