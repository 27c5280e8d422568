//! Training the foundation model natively: Adam over length-sorted batches, data-parallel
//! workers, progress, evaluation, atomic checkpoints and resume.
//!
//! `config` is the `[training]` table, `data` tokenizes histories and batches an epoch,
//! `workers` runs one optimizer step over a batch's shards, `progress` shows an epoch,
//! `checkpoint` writes and resumes runs, `model` holds the training model and its objectives;
//! this module runs the epochs.

mod checkpoint;
mod config;
mod data;
pub mod model;
mod progress;
mod workers;

pub use checkpoint::Checkpoint;
pub use config::{LrSchedule, TrainConfig, model_config_with};
pub use model::{TrainingModel, TrainingModelConfig};

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::AdamConfig;
use encore_core::Catalog;
use encore_core::data::split::MemberHistory;
use encore_core::metrics::RankingMetrics;
use model::ItemFeatures;
use progress::EpochProgress;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use workers::{Shard, batch_shards, shard_gradients};

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
) -> Vec<u8> {
    let baked = model.valid().bake(features, normalize);
    encore_core::weights::save_model(
        &baked,
        &config.model.serving(),
        &catalog.ids(),
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
    mut monitor: Monitor<'_>,
) -> anyhow::Result<TrainedModel> {
    anyhow::ensure!(
        cfg.epochs > 0 && cfg.batch_size > 0 && cfg.workers > 0,
        "epochs, batch size and workers must be positive"
    );
    anyhow::ensure!(
        cfg.objectives.temperature > 0.0 && cfg.objectives.mtp_items >= 1,
        "objectives: temperature must be positive and mtp_items at least 1"
    );
    let device = backend.training_device();
    device.seed(cfg.seed);
    let content_dim = catalog
        .items
        .first()
        .and_then(|i| i.content.as_ref())
        .map_or(0, Vec::len);
    let config = cfg.model(catalog.len(), catalog.genres.len(), content_dim);
    let data = data::prepare(histories, catalog, &config.model.tokenizer())?;
    let owned_features = (config.item_encoder.is_some() || config.aux_heads.is_some())
        .then(|| ItemFeatures::new(catalog, &data.seen, data.reference_time, &device));
    let features = owned_features.as_ref();
    // The same features on the inner backend, for exports (see `export`).
    let export_features = owned_features
        .is_some()
        .then(|| ItemFeatures::new(catalog, &data.seen, data.reference_time, &backend.device()));

    let (mut model, mut optim) = (config.init(&device), AdamConfig::new().init());
    let mut epochs = Vec::new();
    if let (Some(path), true) = (checkpoints.path, checkpoints.resume)
        && path.exists()
    {
        (model, optim, epochs) = Checkpoint::resume(path, cfg, model, optim)?;
        eprintln!("resuming from {} after epoch {}", path.display(), epochs.len());
    }

    let steps_per_epoch = data.windows.len().div_ceil(cfg.batch_size);
    let targets_per_batch = data.total_tokens as f64 / steps_per_epoch as f64;
    let mut scheduler = cfg.lr_scheduler(steps_per_epoch * cfg.epochs)?;
    // A resumed run picks the schedule up where the finished epochs left it.
    for _ in 0..epochs.len() * steps_per_epoch {
        scheduler.step();
    }
    let mut learning_rate = cfg.learning_rate;
    let export_now = |model: &TrainingModel| {
        export(
            model,
            &config,
            catalog,
            export_features.as_ref(),
            cfg.objectives.normalize,
        )
    };
    let backward = |model: &TrainingModel, shard: Shard| {
        shard_gradients(model, shard, features, &cfg.objectives, targets_per_batch)
    };
    for epoch in epochs.len() + 1..=cfg.epochs {
        let progress = EpochProgress::new(monitor.show_progress, epoch, cfg.epochs, steps_per_epoch);
        // Every random stream (shuffling, negatives, dropout, ID drops) restarts per epoch from
        // the seed, so a resumed run repeats exactly what an uninterrupted one does.
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
        device.seed(cfg.seed.wrapping_add(1000 + epoch as u64));
        let batches = data::epoch_batches(&data.windows, cfg.batch_size, cfg.batch_by_length, &mut rng);
        let start = Instant::now();
        // Loss parts summed over targets, and the targets seen.
        let (mut sums, mut weight) = ([0f64; 4], 0f64);
        for (step, chunk) in batches.iter().enumerate() {
            // The batch's shares, one per worker; their targets (negatives, ID drops) are drawn
            // here, in order, so the draws never depend on thread timing.
            let shards = batch_shards(chunk, cfg, &data, &model, &mut rng, &device);
            let lr = scheduler.step();
            learning_rate = lr.base();
            let results;
            (model, results) = workers::step(model, &mut optim, lr, shards, &backward, &device);
            for (values, n_targets) in results {
                anyhow::ensure!(
                    values[0].is_finite(),
                    "loss became {} at epoch {epoch}",
                    values[0]
                );
                for (s, v) in sums.iter_mut().zip(values) {
                    *s += v * n_targets;
                }
                weight += n_targets;
            }
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            progress.update(step, sums[0] / weight, weight / secs);
        }
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
            loss: sums[0] / weight,
            next_item_loss: sums[1] / weight,
            multi_token_loss: sums[2] / weight,
            auxiliary_loss: sums[3] / weight,
            tokens: data.total_tokens,
            seconds,
            tokens_per_s: weight / seconds.max(1e-9),
            learning_rate,
            eval,
        });
        if let Some(path) = checkpoints.path {
            Checkpoint::of(cfg, &epochs, &model, &optim, weights)?.write(path)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use encore_core::FoundationModelConfig;

    /// `[training.model]` sets fields on top of the config's defaults and refuses unknown
    /// fields, wrong types and an item count; a checkpoint's binary form round-trips.
    #[test]
    fn the_model_table_is_the_model_config() {
        let cfg: TrainConfig = toml::from_str("[model]\nd_model = 32\nn_layers = 3\n").unwrap();
        assert_eq!(
            cfg.model,
            FoundationModelConfig::new(0)
                .with_d_model(32)
                .with_n_layers(3)
        );
        assert_eq!(TrainConfig::default().model, FoundationModelConfig::new(0));
        for (bad, says) in [
            ("[model]\nd_modle = 32\n", "unknown model field `d_modle`"),
            ("[model]\nd_model = \"wide\"\n", "d_model"),
            ("[model]\nn_items = 50\n", "n_items comes from the data"),
        ] {
            let e = toml::from_str::<TrainConfig>(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let bytes = postcard::to_allocvec(&cfg).unwrap();
        assert_eq!(postcard::from_bytes::<TrainConfig>(&bytes).unwrap(), cfg);
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
    }


    #[test]
    fn learning_rate_schedules_follow_their_formulas() {
        let rates = |schedule, warmup_steps, total| -> Vec<f64> {
            let cfg = TrainConfig {
                learning_rate: 1e-3,
                lr_schedule: schedule,
                warmup_steps,
                decay_fraction: 0.25,
                ..TrainConfig::default()
            };
            let mut s = cfg.lr_scheduler(total).unwrap();
            (0..total).map(|_| s.step().base()).collect()
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(
            rates(LrSchedule::Constant, 0, 5)
                .iter()
                .all(|&r| close(r, 1e-3))
        );
        // Cosine without warm-up: the peak at the first step, half way at the middle, ~0 at the end.
        let c = rates(LrSchedule::Cosine, 0, 101);
        assert!(close(c[0], 1e-3) && close(c[50], 5e-4), "{c:?}");
        assert!(c[100] < 1e-12 && c.windows(2).all(|w| w[1] < w[0]), "{c:?}");
        // Warm-up rises linearly to the peak, then the schedule takes over from it.
        let w = rates(LrSchedule::Cosine, 4, 14);
        for (i, expected) in [2.5e-4, 5e-4, 7.5e-4, 1e-3].iter().enumerate() {
            assert!(close(w[i], *expected), "step {i}: {}", w[i]);
        }
        assert!(close(w[4], 1e-3) && w[5] < w[4] && w[13] < 1e-12, "{w:?}");
        let cw = rates(LrSchedule::Constant, 3, 6);
        assert!(close(cw[0], 1e-3 / 3.0) && cw[2..].iter().all(|&r| close(r, 1e-3)));
        // Stable, then the last quarter (5 of 20 steps) falls linearly to 0.
        let sd = rates(LrSchedule::StableDecay, 0, 20);
        assert!(sd[..16].iter().all(|&r| close(r, 1e-3)), "{sd:?}");
        for (i, expected) in [7.5e-4, 5e-4, 2.5e-4, 0.0].iter().enumerate() {
            assert!(
                close(sd[16 + i], *expected),
                "step {}: {}",
                16 + i,
                sd[16 + i]
            );
        }
        // With warm-up: rise, stable, fall; the stable part is the same as the constant schedule's.
        let wsd = rates(LrSchedule::StableDecay, 2, 12);
        assert!(close(wsd[0], 5e-4) && close(wsd[1], 1e-3), "{wsd:?}");
        assert!(
            wsd[1..9].iter().all(|&r| close(r, 1e-3)) && close(wsd[11], 0.0),
            "{wsd:?}"
        );
        assert!(wsd[9..].windows(2).all(|w| w[1] < w[0]), "{wsd:?}");
        let out_of_range = TrainConfig {
            lr_schedule: LrSchedule::StableDecay,
            decay_fraction: 1.5,
            ..TrainConfig::default()
        };
        let err = out_of_range.lr_scheduler(10).err().expect("refused");
        assert!(err.to_string().contains("decay_fraction"), "{err}");
        // Out-of-range rates are refused by name.
        let bad = TrainConfig {
            learning_rate: 0.0,
            ..TrainConfig::default()
        };
        let err = bad.lr_scheduler(10).err().expect("a zero rate is refused");
        assert!(err.to_string().contains("learning_rate"), "{err}");
    }
}
