//! Training the foundation model natively: Adam over length-sorted batches, data-parallel
//! workers, progress, evaluation, atomic checkpoints and resume.
//!
//! `config` is the `[training]` table, `data` tokenizes histories and batches an epoch,
//! `workers` runs one optimizer step over a batch's shards, `progress` shows an epoch,
//! `checkpoint` writes and resumes runs, `model` holds the training model and its objectives,
//! `distill` the teacher a student learns from, `fine_tune` starts from a trained model with
//! parts frozen; this module runs the epochs.

mod checkpoint;
mod config;
mod data;
pub mod distill;
pub(crate) mod fine_tune;
pub mod model;
mod progress;
mod workers;

pub use checkpoint::Checkpoint;
pub use config::{LrSchedule, TrainConfig, model_config_with};
pub use model::{TrainingModel, TrainingModelConfig};

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
pub use data::MemberStream;
use data::{TrainingData, WindowSource};
use distill::Teacher;
use encore_core::Catalog;
use encore_core::data::split::MemberHistory;
use encore_core::metrics::RankingMetrics;
use model::ItemFeatures;
use progress::EpochProgress;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use workers::{LossSums, LossValues, Shard, batch_shards, shard_gradients};

use crate::backend::Backend;

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean total loss.
    pub loss: f64,
    /// Mean next-item loss.
    pub next_item_loss: f64,
    /// Mean multi-token loss (0 when off).
    pub multi_token_loss: f64,
    /// Mean weighted auxiliary loss (0 when off).
    pub auxiliary_loss: f64,
    /// Distillation: mean τ²·KL between the teacher's and the student's scores (0 when off).
    #[serde(default)]
    pub teacher_scores_loss: f64,
    /// Distillation: mean 1 − cos between the projected student state and the teacher's.
    #[serde(default)]
    pub alignment_loss: f64,
    /// Tokens with a target.
    pub tokens: usize,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
    /// Target tokens per second (forward + backward + optimizer).
    pub tokens_per_s: f64,
    /// Learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Evaluation after this epoch, when one was run.
    pub eval: Option<RankingMetrics>,
}

/// The result of [`train`].
#[derive(Debug)]
pub struct TrainedModel {
    /// The trained model (on the training device), with its training-only parts.
    pub model: TrainingModel,
    /// Its shape.
    pub config: TrainingModelConfig,
    /// Per-epoch statistics (including epochs done before a resume).
    pub epochs: Vec<EpochStats>,
    /// The exported weight file of the final model.
    pub weights: Vec<u8>,
    /// The item features the model trained with (when it has an item encoder or heads).
    pub features: Option<ItemFeatures>,
}

/// Where checkpoints go and whether to continue from one.
#[derive(Debug, Clone, Default)]
pub struct CheckpointPolicy<'a> {
    /// Written atomically after every epoch.
    pub path: Option<&'a Path>,
    /// Continue from `path` if it exists.
    pub resume: bool,
}

/// Evaluates an exported weight file (e.g. on validation cases).
pub type Evaluator<'a> = &'a dyn Fn(&[u8]) -> anyhow::Result<RankingMetrics>;

/// What the caller watches during training.
#[derive(Default)]
pub struct Monitor<'a> {
    /// Draw a progress bar with loss and throughput.
    pub show_progress: bool,
    /// Evaluate every this many epochs (and after the last one); 0 = never.
    pub eval_every: usize,
    /// The evaluation to run.
    pub evaluate: Option<Evaluator<'a>>,
    /// Called after every epoch (after its evaluation and checkpoint).
    pub on_epoch: Option<&'a mut dyn FnMut(&EpochStats) -> anyhow::Result<()>>,
}

/// The weight file of `model` baked on the inner backend (`features` must live there), so an
/// export records nothing on the tracked model's autodiff graph.
fn export(
    model: &TrainingModel,
    config: &TrainingModelConfig,
    catalog: &Catalog,
    features: Option<&ItemFeatures>,
    normalize: bool,
    reference_time: i64,
) -> Vec<u8> {
    let model = model.valid();
    // The item content encoder travels in the bundle, so that the device can embed titles
    // added to the catalog after this export from their metadata.
    let content_encoder = model
        .item_encoder
        .as_ref()
        .filter(|_| features.is_some())
        .map(|e| e.serving(&catalog.genres, normalize, reference_time));
    let baked = model.bake(features, normalize);
    encore_core::weights::save_bundle(
        &baked,
        &config.model.serving(),
        &catalog.ids(),
        content_encoder.as_ref(),
        encore_core::weights::Quantization::F32,
    )
}

/// Trains a foundation model on members' histories over `catalog`.
pub fn train(
    histories: &[MemberHistory],
    catalog: &Catalog,
    cfg: &TrainConfig,
    backend: Backend,
    checkpoints: CheckpointPolicy<'_>,
    monitor: Monitor<'_>,
) -> anyhow::Result<TrainedModel> {
    train_from(
        WindowSource::Memory(histories),
        catalog,
        cfg,
        backend,
        checkpoints,
        monitor,
    )
}

/// Trains a foundation model on a stream of members too large for memory, read once for its
/// statistics and then once per epoch. Memory holds the model, one chunk of about
/// `chunk_windows` windows (shuffled, length-sorted and batched within the chunk) and what the
/// stream itself holds. Distillation (whose teacher outputs are cached per window) is not
/// available on a stream.
pub fn train_streaming(
    members: &dyn MemberStream,
    chunk_windows: usize,
    catalog: &Catalog,
    cfg: &TrainConfig,
    backend: Backend,
    checkpoints: CheckpointPolicy<'_>,
    monitor: Monitor<'_>,
) -> anyhow::Result<TrainedModel> {
    anyhow::ensure!(chunk_windows > 0, "windows per chunk must be positive");
    anyhow::ensure!(
        cfg.distill.is_none(),
        "distillation caches its teacher's outputs for every window in memory: it is not \
         available when training from a stream of event shards"
    );
    train_from(
        WindowSource::Stream {
            members,
            chunk: chunk_windows,
        },
        catalog,
        cfg,
        backend,
        checkpoints,
        monitor,
    )
}

fn train_from(
    source: WindowSource<'_>,
    catalog: &Catalog,
    cfg: &TrainConfig,
    backend: Backend,
    checkpoints: CheckpointPolicy<'_>,
    mut monitor: Monitor<'_>,
) -> anyhow::Result<TrainedModel> {
    anyhow::ensure!(
        cfg.epochs > 0 && cfg.batch_size > 0 && cfg.workers > 0,
        "epochs, batch size and workers must be positive"
    );
    anyhow::ensure!(
        cfg.workers <= config::MAX_WORKERS,
        "training.workers is {}; at most {} are allowed",
        cfg.workers,
        config::MAX_WORKERS
    );
    anyhow::ensure!(
        cfg.objectives.temperature > 0.0 && cfg.objectives.mtp_items >= 1,
        "objectives: temperature must be positive and mtp_items at least 1"
    );
    // Refused now rather than when the finished run's weight file is read back.
    cfg.check_model_shape()?;
    let devices = backend.training_devices(cfg.workers)?;
    let device = devices[0].clone();
    device.seed(cfg.seed);
    let content_dim = catalog
        .items
        .first()
        .and_then(|i| i.content.as_ref())
        .map_or(0, Vec::len);
    let mut config = cfg.model(catalog.len(), catalog.genres.len(), content_dim);
    if cfg.init_from.is_some() {
        // The starting file's item vectors are already mixed with content.
        config.item_encoder = None;
    }
    let tokenizer = config.model.tokenizer();
    let mut data = data::prepare(&source, catalog, &tokenizer, cfg.batch_size)?;
    if let Some(d) = &cfg.distill {
        d.validate().map_err(anyhow::Error::msg)?;
    }
    // With both teacher terms off the run is a from-scratch run: the teacher is not read.
    let teacher = match &cfg.distill {
        Some(d) if d.scores_weight > 0.0 || d.align_weight > 0.0 => {
            let teacher = Teacher::load(d, catalog.vocabulary(), &config.model, &backend.device())?;
            if d.align_weight > 0.0 {
                config.align_to = Some(teacher.config().d_model);
            }
            Some(teacher)
        }
        _ => None,
    };
    let owned_features = (config.item_encoder.is_some() || config.aux_heads.is_some())
        .then(|| ItemFeatures::new(catalog, &data.seen, data.reference_time, &device));
    // Each worker's copy of the features, on its device.
    let worker_features: Vec<Option<ItemFeatures>> = devices
        .iter()
        .map(|d| match &owned_features {
            Some(_) if d != &device => Some(ItemFeatures::new(
                catalog,
                &data.seen,
                data.reference_time,
                d,
            )),
            f => f.clone(),
        })
        .collect();
    // The same features on the inner backend, for exports (see `export`).
    let export_features = owned_features.is_some().then(|| {
        ItemFeatures::new(
            catalog,
            &data.seen,
            data.reference_time,
            &device.clone().inner(),
        )
    });

    let (mut model, mut optim) = (config.init(&device), AdamConfig::new().init());
    if let Some(path) = &cfg.init_from {
        model.model = fine_tune::init_from(model.model, path, &config.model, catalog, &device)?;
    }
    if let (Some(teacher), Some(d)) = (&teacher, &cfg.distill) {
        teacher.check_student(model.model.num_params())?;
        let cache = teacher.cache(&data.windows, d, &backend.device());
        eprintln!(
            "teacher {}: {} tokens encoded and their top {} kept in {:.1} s (the forward alone \
             {:.1} s: {:.0} tokens/s)",
            d.teacher.display(),
            cache.tokens(),
            cache.k,
            cache.seconds,
            cache.forward_seconds,
            cache.tokens() as f64 / cache.forward_seconds.max(1e-9)
        );
        data.teacher = Some(cache);
    }
    let mut epochs = Vec::new();
    if let (Some(path), true) = (checkpoints.path, checkpoints.resume)
        && path.exists()
    {
        (model, optim, epochs) = Checkpoint::resume(path, cfg, model, optim)?;
        eprintln!(
            "resuming from {} after epoch {}",
            path.display(),
            epochs.len()
        );
    }
    model.model = fine_tune::freeze(model.model, &cfg.freeze)?;

    let steps_per_epoch = data.steps_per_epoch;
    let targets_per_batch = data.total_tokens as f64 / steps_per_epoch as f64;
    let mut scheduler = cfg.lr_scheduler(steps_per_epoch * cfg.epochs)?;
    // A resumed run picks the schedule up where the finished epochs left it.
    for _ in 0..epochs.len() * steps_per_epoch {
        scheduler.step();
    }
    let export_now = |model: &TrainingModel| {
        export(
            model,
            &config,
            catalog,
            export_features.as_ref(),
            cfg.objectives.normalize,
            data.reference_time,
        )
    };
    let backward = |model: &TrainingModel, shard: Shard| {
        let features = worker_features[shard.worker].as_ref();
        shard_gradients(
            model,
            shard,
            features,
            &cfg.objectives,
            cfg.distill.as_ref(),
            targets_per_batch,
        )
    };
    let mut steps = Steps {
        cfg,
        data: &data,
        devices: &devices,
        optim,
        scheduler,
        backward: &backward,
        learning_rate: cfg.learning_rate,
    };
    for epoch in epochs.len() + 1..=cfg.epochs {
        let progress =
            EpochProgress::new(monitor.show_progress, epoch, cfg.epochs, steps_per_epoch);
        // Every random stream (shuffling, negatives, dropout, ID drops) restarts per epoch from
        // the seed, so a resumed run repeats exactly what an uninterrupted one does.
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
        device.seed(cfg.seed.wrapping_add(1000 + epoch as u64));
        let start = Instant::now();
        let mut pass = EpochPass::new(start);
        match &source {
            WindowSource::Memory(_) => {
                let batches = data::epoch_batches(
                    &data.windows,
                    cfg.batch_size,
                    cfg.batch_by_length,
                    &mut rng,
                );
                model = steps
                    .run(
                        model,
                        &data.windows,
                        &batches,
                        &mut rng,
                        &progress,
                        &mut pass,
                    )
                    .with_context(|| format!("epoch {epoch}"))?;
            }
            WindowSource::Stream { members, chunk } => {
                for windows in data::stream_chunks(*members, *chunk, catalog, &tokenizer)? {
                    let windows = windows.with_context(|| format!("epoch {epoch}"))?;
                    let batches = data::epoch_batches(
                        &windows,
                        cfg.batch_size,
                        cfg.batch_by_length,
                        &mut rng,
                    );
                    model = steps
                        .run(model, &windows, &batches, &mut rng, &progress, &mut pass)
                        .with_context(|| format!("epoch {epoch}"))?;
                }
            }
        }
        let sums = pass.sums;
        progress.finish();
        let seconds = start.elapsed().as_secs_f64();
        let weights = export_now(&model);
        let due =
            monitor.eval_every > 0 && (epoch % monitor.eval_every == 0 || epoch == cfg.epochs);
        let eval = match (monitor.evaluate, due) {
            (Some(f), true) => Some(f(&weights)?),
            _ => None,
        };
        epochs.push(EpochStats {
            epoch,
            loss: sums.mean(0),
            next_item_loss: sums.mean(1),
            multi_token_loss: sums.mean(2),
            auxiliary_loss: sums.mean(3),
            teacher_scores_loss: sums.mean(4),
            alignment_loss: sums.mean(5),
            tokens: data.total_tokens,
            seconds,
            tokens_per_s: sums.targets() / seconds.max(1e-9),
            learning_rate: steps.learning_rate,
            eval,
        });
        if let Some(path) = checkpoints.path {
            Checkpoint::of(cfg, &epochs, &model, &steps.optim, weights)?.write(path)?;
        }
        if let Some(f) = monitor.on_epoch.as_mut() {
            f(epochs.last().expect("just pushed"))?;
        }
    }
    let weights = export_now(&model);
    Ok(TrainedModel {
        model,
        config,
        epochs,
        weights,
        features: owned_features.clone(),
    })
}

/// What every optimizer step of a run needs besides the model: the data, the optimizer and
/// its learning-rate schedule, and how a shard is differentiated.
struct Steps<'a> {
    cfg: &'a TrainConfig,
    data: &'a TrainingData,
    /// One device per worker; the model lives on the first between steps.
    devices: &'a [Device],
    optim: ModuleOptimizer,
    scheduler: ModuleLrScheduler,
    backward: &'a (dyn Fn(&TrainingModel, Shard) -> (GradientsParams, LossValues, f64) + Sync),
    /// The learning rate of the latest step.
    learning_rate: f64,
}

/// An epoch's progress across the windows it has passed through so far (one set in memory,
/// or a stream's chunks one after another).
struct EpochPass {
    start: Instant,
    step: usize,
    sums: LossSums,
}

impl EpochPass {
    fn new(start: Instant) -> Self {
        Self {
            start,
            step: 0,
            sums: LossSums::default(),
        }
    }
}

impl Steps<'_> {
    /// A step per batch of indices into `windows` in `batches`, their targets drawn from `rng`
    /// in order; the losses added to `pass`. Returns the model after the last step.
    fn run(
        &mut self,
        mut model: TrainingModel,
        windows: &[encore_core::TokenSequence],
        batches: &[Vec<usize>],
        rng: &mut ChaCha8Rng,
        progress: &EpochProgress,
        pass: &mut EpochPass,
    ) -> anyhow::Result<TrainingModel> {
        for chunk in batches {
            // The batch's shares, one per worker; their targets (negatives, ID drops) are drawn
            // here, in order, so the draws never depend on thread timing.
            let shards = batch_shards(
                chunk,
                windows,
                self.cfg,
                self.data,
                &model,
                rng,
                self.devices,
            );
            let lr = self.scheduler.step();
            self.learning_rate = lr.base();
            let results;
            (model, results) = workers::step(
                model,
                &mut self.optim,
                lr,
                shards,
                self.backward,
                self.devices,
            );
            for (values, n_targets) in results {
                pass.sums.add(values, n_targets)?;
            }
            let seconds = pass.start.elapsed().as_secs_f64().max(1e-9);
            progress.update(pass.step, pass.sums.mean(0), pass.sums.targets() / seconds);
            pass.step += 1;
        }
        Ok(model)
    }
}
