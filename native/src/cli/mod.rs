//! `encore` subcommands: generate, convert-events, train, distill, export, rerank, eval,
//! embed, demo, bench, ablate, prompt-tune, impressions, ranker.

mod bench;
mod demo;
mod embed;
mod impressions;
mod prompt_tune;
mod ranker;
mod shards;
mod show;
mod steps;

pub use demo::{WEB_NEW_TITLES, web_bundle, write_web_assets};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use encore_core::{Catalog, Event, SyntheticWorld, SyntheticWorldConfig};

use crate::backend::{Backend, BackendPreference};
use crate::training::TrainConfig;

/// Encore: a streaming foundation model and reranker small enough to run on the device.
#[derive(Debug, Parser)]
#[command(name = "encore", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a synthetic world (catalog.json + events.csv, or Parquet event shards) to a
    /// directory.
    Generate(GenerateArgs),
    /// Convert a CSV or JSON Lines event log into Parquet shards in the order streamed training
    /// reads (members by id, each member's events in time order).
    ConvertEvents(shards::ConvertArgs),
    /// Train a foundation model; writes a checkpoint after every epoch.
    Train(TrainArgs),
    /// Train a smaller student from a trained teacher (an experiment file with a
    /// `[training.distill]` table, or `--teacher`).
    Distill(DistillArgs),
    /// Turn a checkpoint into a weight file (and, optionally, the web demo's assets).
    Export(ExportArgs),
    /// Rerank one member's pushed candidates and show before/after.
    Rerank(RerankArgs),
    /// HR/NDCG on each member's held-out last event, model vs most-popular.
    Eval(EvalArgs),
    /// Item vectors and member representations to Parquet and safetensors (optionally rotated
    /// into a previous model's space).
    Embed(embed::EmbedArgs),
    /// The whole pipeline on the embedded synthetic world: generate → train → export → rerank → eval.
    Demo(DemoArgs),
    /// Rerank latency of a weight file (p50/p99) on the chosen backends.
    Bench(bench::BenchArgs),
    /// An experiment as configured and once without each feature, plus the cold-start pair:
    /// one table (runs are resumable).
    Ablate(AblateArgs),
    /// Learn a prompt set for one task (surface, genre, …) with the base model frozen, add it
    /// to the bundle and measure it on the task's held-out cases.
    PromptTune(prompt_tune::PromptTuneArgs),
    /// Generate an impression log (searches, home rows, more-like-this pages) from a data
    /// set's events, for the contextual ranker.
    Impressions(impressions::ImpressionsArgs),
    /// Train the contextual ranker on impressions with a foundation model's features and
    /// measure it per task (search, home row, more like this).
    Ranker(ranker::RankerArgs),
}

/// Where events come from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// World directory (catalog.json + events.csv); the embedded synthetic world when absent.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed of the embedded synthetic world.
    #[arg(long, default_value_t = SyntheticWorldConfig::default().seed)]
    pub world_seed: u64,
    /// Members in the embedded synthetic world.
    #[arg(long, default_value_t = SyntheticWorldConfig::default().members)]
    pub members: usize,
    /// Titles in the embedded synthetic world.
    #[arg(long, default_value_t = SyntheticWorldConfig::default().titles)]
    pub titles: usize,
    /// Days simulated in the embedded synthetic world.
    #[arg(long, default_value_t = SyntheticWorldConfig::default().days)]
    pub days: u32,
    /// Titles each of the synthetic world's choices weighs (0: the whole catalog; e.g. 2000
    /// for a million-title world, see `SyntheticWorldConfig::choice_pool`).
    #[arg(long, default_value_t = 0)]
    pub choice_pool: usize,
}

impl DataArgs {
    /// The synthetic world config these arguments describe.
    pub fn synthetic(&self) -> SyntheticWorldConfig {
        SyntheticWorldConfig {
            seed: self.world_seed,
            members: self.members,
            titles: self.titles,
            days: self.days,
            choice_pool: self.choice_pool,
            ..Default::default()
        }
    }

    /// Loads the world from `--data`, or generates the synthetic one.
    pub fn load(&self) -> anyhow::Result<(Catalog, Vec<Event>)> {
        match &self.data {
            Some(dir) => Ok(crate::io::read_world(dir)?),
            None => {
                let w = SyntheticWorld::generate(&self.synthetic());
                Ok((w.catalog, w.events))
            }
        }
    }
}

/// `encore generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output directory.
    #[arg(long, default_value = "artifacts/world")]
    pub out: PathBuf,
    /// Write the events as Parquet shards (`OUT/events/part-*.parquet`) instead of
    /// `events.csv`, the synthetic world generated one member at a time, so a world of any
    /// size fits in the memory of one member's events.
    #[arg(long)]
    pub shards: bool,
    /// With `--shards`: rows per shard file.
    #[arg(long, default_value_t = crate::io::event_shards::SHARD_ROWS)]
    pub rows_per_shard: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// Training hyper-parameters on the command line.
#[derive(Debug, Clone, Args)]
pub struct TrainOptions {
    /// Passes over the data.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    pub learning_rate: f64,
    /// Training seed.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Hidden width.
    #[arg(long, default_value_t = TrainConfig::default().model.d_model)]
    pub d_model: usize,
    /// Transformer layers.
    #[arg(long, default_value_t = TrainConfig::default().model.n_layers)]
    pub n_layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = TrainConfig::default().model.n_heads)]
    pub n_heads: usize,
    /// Attention window in events.
    #[arg(long, default_value_t = TrainConfig::default().model.max_len)]
    pub max_len: usize,
    /// Backend to train on.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
}

impl TrainOptions {
    /// The training config.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.seed,
            model: TrainConfig::default()
                .model
                .with_d_model(self.d_model)
                .with_n_layers(self.n_layers)
                .with_n_heads(self.n_heads)
                .with_max_len(self.max_len)
                .with_d_ff(4 * self.d_model),
            ..TrainConfig::default()
        }
    }
}

/// `encore train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Experiment file (TOML: [data], [split], [training], [run]; see configs/). With it, the
    /// data and training options below are ignored: the file says everything.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub file: ConfigOverrides,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainOptions,
    /// Checkpoint path (written atomically after every epoch).
    #[arg(long, default_value = "artifacts/checkpoint.ckpt")]
    pub checkpoint: PathBuf,
    /// Continue from the checkpoint if it exists.
    #[arg(long)]
    pub resume: bool,
}

/// Values of an experiment file replaced from the command line (with `--config`).
#[derive(Debug, Clone, Args)]
pub struct ConfigOverrides {
    /// With --config: replace the file's number of epochs.
    #[arg(long, requires = "config")]
    pub config_epochs: Option<usize>,
    /// With --config: replace the file's output directory.
    #[arg(long, requires = "config")]
    pub out: Option<PathBuf>,
    /// With --config: set one value of the file, e.g. `--set training.objectives.mtp_items=1`
    /// (repeatable; values are TOML).
    #[arg(long = "set", requires = "config", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// With --config: `validation` or `test`, replacing the file's holdout.
    #[arg(long, requires = "config", value_parser = parse_holdout)]
    pub holdout: Option<encore_core::data::split::Holdout>,
}

/// Parses a holdout given on the command line: `test` or `validation`.
pub fn parse_holdout(s: &str) -> Result<encore_core::data::split::Holdout, String> {
    use encore_core::data::split::Holdout;
    match s {
        "test" => Ok(Holdout::Test),
        "validation" => Ok(Holdout::Validation),
        other => Err(format!("unknown holdout {other:?} (test or validation)")),
    }
}

impl ConfigOverrides {
    /// These overrides, continuing from checkpoints when `resume`.
    pub fn overrides(&self, resume: bool) -> crate::experiment::Overrides {
        crate::experiment::Overrides {
            epochs: self.config_epochs,
            out: self.out.clone(),
            holdout: self.holdout,
            resume,
            sets: self.sets.clone(),
        }
    }
}

/// `encore distill`.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// The student's experiment file (as for `train --config`: its `[training.model]` is the
    /// student's shape, `[training.distill]` names the teacher and the terms' weights).
    #[arg(long)]
    pub config: PathBuf,
    /// The teacher's weight file, replacing the file's `training.distill.teacher` (with the
    /// table's defaults when the file has none).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub file: ConfigOverrides,
    /// Continue from the run's checkpoint if it exists.
    #[arg(long)]
    pub resume: bool,
}

impl DistillArgs {
    /// The experiment's overrides, the teacher included; refuses a file without a teacher.
    pub fn overrides(&self) -> anyhow::Result<crate::experiment::Overrides> {
        let mut overrides = self.file.overrides(self.resume);
        if let Some(teacher) = &self.teacher {
            let path = toml::Value::String(teacher.display().to_string());
            overrides
                .sets
                .push(format!("training.distill.teacher={path}"));
        }
        let cfg = crate::experiment::ExperimentConfig::read_with(&self.config, &overrides.sets)?;
        anyhow::ensure!(
            cfg.training.distill.is_some(),
            "{} has no [training.distill] table: add one or give --teacher",
            self.config.display()
        );
        Ok(overrides)
    }
}

/// `encore ablate`.
#[derive(Debug, Args)]
pub struct AblateArgs {
    /// Experiment file (see `train --config`); every run uses its data, split and seed. The
    /// runs and the table go to `--out` (default: the file's `run.out` + `-ablation`).
    #[arg(long)]
    pub config: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub file: ConfigOverrides,
    /// Run only these variants (comma-separated: full, no-rollup, no-content, no-mtp, no-aux,
    /// no-context, id-only, cold-full, cold-id-only).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also run the cold-start pair (full and ID-only) with this share of titles withheld from
    /// training, reporting HR@10 on the cases whose target is withheld (0: skip).
    #[arg(long, default_value_t = 0.0)]
    pub cold_start: f64,
    /// Continue each run from its checkpoint (finished runs are only evaluated again).
    #[arg(long)]
    pub resume: bool,
}

/// `encore export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint to export.
    #[arg(long, default_value = "artifacts/checkpoint.ckpt")]
    pub checkpoint: PathBuf,
    /// Weight file to write.
    #[arg(long, default_value = "artifacts/model.encore")]
    pub out: PathBuf,
    /// Storage of the weight file's matrices: f32 (exact), f16 (half the size) or int8
    /// (per-row scales, about a quarter).
    #[arg(long, default_value = "f32", value_parser = bench::parse_quantization)]
    pub dtype: encore_core::weights::Quantization,
    /// Re-encode this existing weight file instead of a checkpoint (e.g. to int8).
    #[arg(long, conflicts_with = "checkpoint")]
    pub from_model: Option<PathBuf>,
    /// Also write the web demo's assets (model, catalog, sample members) into this directory.
    #[arg(long)]
    pub web_demo: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `encore rerank`.
#[derive(Debug, Args)]
pub struct RerankArgs {
    /// Weight file.
    #[arg(long, default_value = "artifacts/model.encore")]
    pub model: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Member whose history is used (default: the first member).
    #[arg(long)]
    pub member: Option<u32>,
    /// Surface of the request.
    #[arg(long, default_value = "home")]
    pub surface: String,
    /// Candidate item ids in the server's order (default: popular titles a server would push).
    #[arg(long, value_delimiter = ',')]
    pub candidates: Vec<u32>,
    /// Number of pushed candidates when none are given.
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// Backend to rerank on: `auto` times a warm rerank on wgpu and the CPU and keeps the faster.
    #[arg(long, value_enum, default_value_t = BackendPreference::Auto)]
    pub backend: BackendPreference,
}

/// `encore eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Weight file.
    #[arg(long, default_value = "artifacts/model.encore")]
    pub model: PathBuf,
    /// Experiment file (as for `encore train --config`): evaluate on its data, split and
    /// protocol (e.g. MovieLens full ranking) instead of the world's last events.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With --config: `validation` or `test`, replacing the file's holdout.
    #[arg(long, requires = "config", value_parser = parse_holdout)]
    pub holdout: Option<encore_core::data::split::Holdout>,
    /// With --config: other weight files scored on the same cases, each compared with the model
    /// case by case (paired difference of NDCG@10 and its standard error); with two, also the
    /// share of the gap from the first to the second that the model closes (repeatable).
    #[arg(long, requires = "config")]
    pub against: Vec<PathBuf>,
    /// With --config: withhold this share of titles as the cold-start experiment does (same
    /// seed) and also report the cases whose target is one of them, scored as baked into the
    /// file and, for a bundle with a content encoder, on the device with the titles pushed
    /// as metadata to a bundle without them.
    #[arg(long, requires = "config")]
    pub withhold_items: Option<f64>,
    /// With --withhold-items: also rank the pushed titles with this share (0–1) of the unknown
    /// vector in place of the unknown-ID gate's (an experiment on the content path; the bundle is
    /// unchanged).
    #[arg(long, requires = "withhold_items")]
    pub pushed_unknown_share: Option<f32>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Backend to score on.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
}

/// `encore demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the checkpoint, weight file and world.
    #[arg(long, default_value = "artifacts")]
    pub out: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainOptions,
    /// Also write the web demo's assets here.
    #[arg(long)]
    pub web_demo: Option<PathBuf>,
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Generate(a) => steps::generate(&a),
            Command::ConvertEvents(a) => shards::convert(&a),
            Command::Train(a) => match &a.config {
                Some(path) => crate::experiment::run(path, &a.file.overrides(a.resume)).map(|_| ()),
                None => steps::train(&a).map(|_| ()),
            },
            Command::Distill(a) => crate::experiment::run(&a.config, &a.overrides()?).map(|_| ()),
            Command::Export(a) => steps::export(&a),
            Command::Rerank(a) => steps::rerank(&a),
            Command::Eval(a) => steps::eval(&a),
            Command::Embed(a) => embed::run(&a),
            Command::Demo(a) => demo::run(&a),
            Command::Bench(a) => bench::run(&a),
            Command::PromptTune(a) => prompt_tune::run(&a),
            Command::Impressions(a) => impressions::run(&a),
            Command::Ranker(a) => ranker::run(&a),
            Command::Ablate(a) => crate::experiment::ablate(
                &a.config,
                &a.file.overrides(a.resume),
                &crate::experiment::AblationPlan {
                    only: a.only.clone(),
                    cold_start: a.cold_start,
                },
            )
            .map(|_| ()),
        }
    }
}
