//! Training the foundation model natively: batches, Adam, progress, checkpoints and resume.

mod checkpoint;
mod config;
pub mod model;

pub use checkpoint::Checkpoint;
pub use config::{LrSchedule, TrainConfig, model_config_with};
pub use model::{TrainingModel, TrainingModelConfig};

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, MultiGradientsParams};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use encore_core::data::split::MemberHistory;
use encore_core::metrics::RankingMetrics;
use encore_core::{Catalog, EventTokenizer, TokenBatch, TokenSequence};
use indicatif::{ProgressBar, ProgressStyle};
use model::{ItemFeatures, ObjectiveConfig, TrainingTargets};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, run_inline};

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

/// One worker's share of a batch.
struct Shard {
    batch: TokenBatch,
    targets: TrainingTargets,
    n_targets: f64,
}

/// The windows `chunk` (indices into `data.windows`) cut into `cfg.workers` shards, each with
/// its targets drawn from `rng` in order.
fn batch_shards(
    chunk: &[usize],
    cfg: &TrainConfig,
    data: &Prepared,
    model: &TrainingModel,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Vec<Shard> {
    chunk
        .chunks(chunk.len().div_ceil(cfg.workers.max(1)))
        .map(|part| {
            let seqs: Vec<TokenSequence> = part.iter().map(|&i| data.windows[i].clone()).collect();
            let n_targets = seqs
                .iter()
                .map(|s| s.target.iter().filter(|t| t.is_some()).count())
                .sum::<usize>() as f64;
            let batch = TokenBatch::new(&seqs, device);
            let targets =
                TrainingTargets::new(&seqs, &cfg.objectives, &data.item_share, rng, device)
                    .with_id_drops(model, rng, device);
            Shard {
                batch,
                targets,
                n_targets,
            }
        })
        .collect()
}

/// A shard's gradients, its loss parts `[total, next item, multi-token, auxiliary]` and its
/// target count. The objectives are means over the shard's targets; scaled by the shard's share
/// of an average batch's targets (`targets_per_batch`), every target weighs the same whatever
/// its batch (with length-sorted batches, a batch of short windows holds far fewer) and the
/// shards' gradients add up to the whole batch's.
fn shard_gradients(
    model: &TrainingModel,
    shard: Shard,
    features: Option<&ItemFeatures>,
    objectives: &ObjectiveConfig,
    targets_per_batch: f64,
) -> (GradientsParams, [f64; 4], f64) {
    let parts = model.loss(&shard.batch, &shard.targets, features, objectives);
    let share = shard.n_targets / targets_per_batch;
    let grads =
        GradientsParams::from_grads(parts.total.clone().mul_scalar(share).backward(), model);
    let values = [
        parts.total,
        parts.next_item,
        parts.multi_token,
        parts.auxiliary,
    ]
    .map(|t| f64::from(t.into_scalar::<f32>()));
    (grads, values, shard.n_targets)
}

/// A worker's copy of `model`: fresh autodiff leaves with the same parameter ids, so its
/// gradients add up with the other workers'. The copy goes through the inner backend
/// (`valid().train()`), not `Module::fork`: `fork` records a to-device node on every tracked
/// parameter that no backward ever consumes, and burn-autodiff's sweep of orphaned graphs at
/// every `backward()` grows with them (21% of a two-worker run's time by epoch 30).
fn worker_copy(model: &TrainingModel) -> TrainingModel {
    model.valid().train()
}

/// The training inputs derived from the data: windows, item shares, item features.
struct Prepared {
    windows: Vec<TokenSequence>,
    item_share: Vec<f32>,
    seen: Vec<bool>,
    reference_time: i64,
    total_tokens: usize,
}

fn prepare(
    histories: &[MemberHistory],
    catalog: &Catalog,
    tokenizer: &EventTokenizer,
) -> anyhow::Result<Prepared> {
    let items = catalog.vocabulary();
    let mut windows: Vec<TokenSequence> = Vec::new();
    let mut counts = vec![0f32; catalog.len()];
    let mut reference_time = i64::MIN;
    for h in histories {
        for e in &h.events {
            reference_time = reference_time.max(e.timestamp);
        }
        let full = tokenizer
            .training_sequence(items, &h.events)
            .with_context(|| format!("member {}", h.member))?;
        // Count each rolled event once, even where windows overlap.
        for t in full.target.iter().flatten() {
            counts[*t as usize] += 1.0;
        }
        let w = tokenizer.windows(full);
        windows.extend(w);
    }
    anyhow::ensure!(!windows.is_empty(), "no training events");
    let total: f32 = counts.iter().sum();
    let total_tokens = windows
        .iter()
        .map(|w| w.target.iter().filter(|t| t.is_some()).count())
        .sum();
    Ok(Prepared {
        windows,
        item_share: counts.iter().map(|c| c / total.max(1.0)).collect(),
        seen: counts.iter().map(|&c| c > 0.0).collect(),
        reference_time,
        total_tokens,
    })
}

/// One epoch's batches of window indices. Shuffled uniformly; with `by_length`, the shuffled
/// windows are stably sorted by length (so equal lengths stay in random order), cut into
/// batches, and the batches shuffled, so a batch pads to little more than its own windows.
fn epoch_batches(
    windows: &[TokenSequence],
    batch_size: usize,
    by_length: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.shuffle(rng);
    if !by_length {
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    }
    order.sort_by_key(|&i| std::cmp::Reverse(windows[i].len()));
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    batches.shuffle(rng);
    batches
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
    let tokenizer = config.model.tokenizer();
    let data = prepare(histories, catalog, &tokenizer)?;
    let owned_features = (config.item_encoder.is_some() || config.aux_heads.is_some())
        .then(|| ItemFeatures::new(catalog, &data.seen, data.reference_time, &device));
    let features = owned_features.as_ref();
    // The same features on the inner backend, for exports (see `export`).
    let export_features = owned_features
        .is_some()
        .then(|| ItemFeatures::new(catalog, &data.seen, data.reference_time, &backend.device()));

    let mut model = config.init(&device);
    let mut optim = AdamConfig::new().init();
    let mut epochs = Vec::new();
    if let (Some(path), true) = (checkpoints.path, checkpoints.resume)
        && path.exists()
    {
        let ck = Checkpoint::read(path)?;
        let same_run = TrainConfig {
            epochs: cfg.epochs,
            ..ck.train_config.clone()
        } == *cfg;
        anyhow::ensure!(
            same_run,
            "checkpoint {} was written with other training options; remove it or pass the same options (only --epochs may change)",
            path.display()
        );
        model = model.load_record(
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(ck.model_record.clone()))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        );
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(ck.optimizer.clone()))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        epochs = ck.epochs;
        eprintln!(
            "resuming from {} after epoch {}",
            path.display(),
            epochs.len()
        );
    }

    let windows = &data.windows;
    let steps_per_epoch = windows.len().div_ceil(cfg.batch_size);
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
    for epoch in epochs.len() + 1..=cfg.epochs {
        let bar = if monitor.show_progress {
            ProgressBar::new(steps_per_epoch as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", cfg.epochs));
        // Every random stream (shuffling, negatives, dropout, ID drops) restarts per epoch from
        // the seed, so a resumed run repeats exactly what an uninterrupted one does.
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
        device.seed(cfg.seed.wrapping_add(1000 + epoch as u64));
        let batches = epoch_batches(windows, cfg.batch_size, cfg.batch_by_length, &mut rng);
        let start = Instant::now();
        let mut sums = [0f64; 4];
        let mut weight = 0f64;
        // Without a terminal the bar is hidden: log a line every tenth of the epoch instead.
        let log_lines = monitor.show_progress && !std::io::stderr().is_terminal();
        let log_every = (steps_per_epoch / 10).max(1);
        for (step, chunk) in batches.iter().enumerate() {
            // The batch's shares, one per worker; their targets (negatives, ID drops) are drawn
            // here, in order, so the draws never depend on thread timing.
            let shards = batch_shards(chunk, cfg, &data, &model, &mut rng, &device);
            let backward = |model: &TrainingModel, shard: Shard| {
                shard_gradients(model, shard, features, &cfg.objectives, targets_per_batch)
            };
            let lr = scheduler.step();
            learning_rate = lr.base();
            let results = if shards.len() == 1 {
                let shard = shards.into_iter().next().expect("one shard");
                let (grads, values, n) = backward(&model, shard);
                model = optim.step(lr, model, grads);
                vec![(values, n)]
            } else {
                // Each worker differentiates its own copy, with burn's CPU ops kept on its
                // thread.
                let done: Vec<(GradientsParams, [f64; 4], f64)> = std::thread::scope(|scope| {
                    let handles: Vec<_> = shards
                        .into_iter()
                        .map(|shard| {
                            let copy = worker_copy(&model);
                            let backward = &backward;
                            scope.spawn(move || run_inline(|| backward(&copy, shard)))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("a training worker panicked"))
                        .collect()
                });
                let mut results = Vec::with_capacity(done.len());
                let mut grads = Vec::with_capacity(done.len());
                for (g, values, n) in done {
                    grads.push((g, device.clone()));
                    results.push((values, n));
                }
                model = optim.step_multi(lr, model, MultiGradientsParams { grads });
                results
            };
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
            let secs = start.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4}  {:.0} tok/s",
                sums[0] / weight,
                weight / secs.max(1e-9)
            ));
            bar.inc(1);
            if log_lines && (step + 1) % log_every == 0 {
                eprintln!(
                    "epoch {epoch}/{} step {}/{steps_per_epoch}: loss {:.4}, {:.0} tokens/s",
                    cfg.epochs,
                    step + 1,
                    sums[0] / weight,
                    weight / secs.max(1e-9)
                );
            }
        }
        bar.finish();
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
            let ck = Checkpoint {
                train_config: cfg.clone(),
                epochs: epochs.clone(),
                model_record: model
                    .clone()
                    .into_record()
                    .into_bytes()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?
                    .to_vec(),
                optimizer: optim
                    .into_bytes()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?
                    .to_vec(),
                weights,
            };
            ck.write(path)?;
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

    fn window(len: usize) -> TokenSequence {
        TokenSequence {
            prev_item: vec![0; len],
            ..TokenSequence::default()
        }
    }

    #[test]
    fn length_batches_cover_every_window_once_and_pad_little() {
        let lengths: Vec<usize> = (0..1000).map(|i| 1 + (i * 37) % 200).collect();
        let windows: Vec<TokenSequence> = lengths.iter().map(|&n| window(n)).collect();
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap())
                .sum()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let by_length = epoch_batches(&windows, 64, true, &mut rng);
        let uniform = epoch_batches(&windows, 64, false, &mut rng);
        for batches in [&by_length, &uniform] {
            let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..1000).collect::<Vec<_>>());
            assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 64));
        }
        let real: usize = lengths.iter().sum();
        // Sorted batches pad to within one batch's spread; uniform ones to ≈ the maximum.
        assert!(
            padded(&by_length) < real * 11 / 10,
            "{}",
            padded(&by_length)
        );
        assert!(padded(&uniform) > real * 3 / 2, "{}", padded(&uniform));
        // The same seed gives the same batches; the order of batches is shuffled.
        let again = epoch_batches(&windows, 64, true, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(again, by_length);
        let first_lengths: Vec<usize> = by_length.iter().map(|b| lengths[b[0]]).collect();
        assert!(first_lengths.windows(2).any(|w| w[0] < w[1]));
        assert!(first_lengths.windows(2).any(|w| w[0] > w[1]));
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

    /// The sum of two shards' gradients equals the whole batch's gradient (the basis of
    /// `workers > 1`): sampled negatives drawn per sequence, the genre and action heads.
    #[test]
    fn shard_gradients_add_up_to_the_whole_batch() {
        use encore_core::data::split::group_by_member;
        use encore_core::{SyntheticWorld, SyntheticWorldConfig};
        use model::objectives::EventWeights;
        let world = SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 40,
            titles: 50,
            days: 20,
            seed: 4,
            ..Default::default()
        });
        let histories = group_by_member(&world.events);
        let mut cfg = TrainConfig {
            model: FoundationModelConfig::new(0)
                .with_d_model(16)
                .with_d_ff(32)
                .with_max_len(24)
                .with_n_layers(1)
                .with_dropout(0.0),
            unknown_id_rate: 0.0,
            ..TrainConfig::default()
        };
        cfg.objectives.in_batch_negatives = 0;
        cfg.objectives.mtp_items = 1;
        // Time to next is a mean over the tokens whose next gap is known (not every target's),
        // which a split weighs slightly differently (7e-4 relative here), like length buckets.
        cfg.objectives.time_to_next_weight = 0.0;
        cfg.objectives.event_weights = EventWeights::EQUAL;
        let device = Backend::Cpu.training_device();
        let content_dim = world.catalog.items[0].content.as_ref().map_or(0, Vec::len);
        let config = cfg.model(world.catalog.len(), world.catalog.genres.len(), content_dim);
        let data = prepare(&histories, &world.catalog, &config.model.tokenizer()).unwrap();
        let features = ItemFeatures::new(&world.catalog, &data.seen, data.reference_time, &device);
        let model = config.init(&device);
        let chunk: Vec<usize> = (0..16).collect();
        let grads_of = |workers: usize| -> Vec<Vec<f32>> {
            let cfg = TrainConfig {
                workers,
                ..cfg.clone()
            };
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let shards = batch_shards(&chunk, &cfg, &data, &model, &mut rng, &device);
            assert_eq!(shards.len(), workers);
            let mut sum: Option<Vec<Vec<f32>>> = None;
            for shard in shards {
                let copy = worker_copy(&model);
                let (g, _, _) =
                    shard_gradients(&copy, shard, Some(&features), &cfg.objectives, 100.0);
                let got: Vec<Vec<f32>> = [copy.model.layer_mix.id, copy.model.norm.gamma.id]
                    .into_iter()
                    .map(|id| {
                        g.get::<1>(id)
                            .unwrap()
                            .into_data()
                            .try_to_vec::<f32>()
                            .unwrap()
                    })
                    .collect();
                sum = Some(match sum {
                    None => got,
                    Some(s) => s
                        .iter()
                        .zip(&got)
                        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x + y).collect())
                        .collect(),
                });
            }
            sum.unwrap()
        };
        let (whole, halves) = (grads_of(1), grads_of(2));
        for (w, h) in whole.iter().zip(&halves) {
            let scale = w.iter().map(|x| x.abs()).fold(0f32, f32::max);
            assert!(scale > 0.0);
            for (a, b) in w.iter().zip(h) {
                assert!((a - b).abs() <= 1e-4 * scale, "whole {a} vs shards {b}");
            }
        }
    }
}
