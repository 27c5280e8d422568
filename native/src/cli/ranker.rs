//! `encore ranker`: train the contextual ranker on impressions with a foundation model's
//! features and measure it per task.

use std::path::PathBuf;

use clap::Args;

use super::parse_holdout;
use crate::experiment::{RankerRun, ranker};
use crate::ranking::RankerShape;
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
    /// Width of every feature's embedding (default 16).
    #[arg(long)]
    pub d_embed: Option<usize>,
    /// Hidden width of the MLP blocks (default 256).
    #[arg(long)]
    pub d_hidden: Option<usize>,
    /// DCN-V2 cross layers (default 2).
    #[arg(long)]
    pub n_cross: Option<usize>,
    /// Residual MLP blocks (default 2).
    #[arg(long)]
    pub n_mlp: Option<usize>,
    /// Also train one ranker of the same shape per task on that task's impressions alone.
    #[arg(long)]
    pub task_specific: bool,
    /// α per task, e.g. `search=0.5,home_row=1,more_like_this=1` (each one of 0, 0.25, 0.5,
    /// 0.75, 1; chosen on a validation run): compared against every fixed α and written into
    /// the bundle as each task's default.
    #[arg(long, value_parser = parse_task_alpha)]
    pub task_alpha: Option<TaskAlpha>,
    /// Write the base bundle with the trained ranker to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw the α curve (search: query relevance against HR@10) to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Home rows are the base model's top N titles for the member at the request's time
    /// (training and held-out impressions), instead of the most popular titles.
    #[arg(long, value_name = "N")]
    pub rows_from_model: Option<usize>,
}

/// `task=α` pairs.
#[derive(Debug, Clone)]
pub struct TaskAlpha(pub Vec<(String, f32)>);

/// Parses `search=0.5,home_row=1`.
fn parse_task_alpha(s: &str) -> Result<TaskAlpha, String> {
    let mut out = Vec::new();
    for pair in s.split(',') {
        let (task, alpha) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not task=alpha"))?;
        let alpha: f32 = alpha
            .trim()
            .parse()
            .map_err(|_| format!("alpha {alpha:?} of {task:?} is not a number"))?;
        if !crate::experiment::ALPHA_GRID.contains(&alpha) {
            return Err(format!(
                "alpha {alpha} of {task:?} is not one of {:?}",
                crate::experiment::ALPHA_GRID
            ));
        }
        out.push((task.trim().to_string(), alpha));
    }
    Ok(TaskAlpha(out))
}

/// Runs `encore ranker`.
pub fn run(a: &RankerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.train_candidates >= 2 && a.epochs > 0 && a.train_impressions > 0,
        "--train-candidates must be at least 2, --epochs and --train-impressions positive"
    );
    anyhow::ensure!(
        a.rows_from_model.is_none_or(|k| k >= 2),
        "--rows-from-model must be at least 2"
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
        shape: RankerShape {
            d_embed: a.d_embed,
            d_hidden: a.d_hidden,
            n_cross: a.n_cross,
            n_mlp: a.n_mlp,
        },
        task_specific: a.task_specific,
        task_alpha: a.task_alpha.clone().map(|t| t.0),
        out: a.out.clone(),
        plot: a.plot.clone(),
        rows_from_model: a.rows_from_model,
    })
}
