//! Data-parallel training steps on one machine: a batch cut into one shard per worker, each
//! differentiated on its own copy of the model, the gradients summed before one optimizer step.

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::Device;
use encore_core::{TokenBatch, TokenSequence};
use rand_chacha::ChaCha8Rng;

use super::config::TrainConfig;
use super::data::TrainingData;
use super::distill::DistillConfig;
use super::model::{ItemFeatures, ObjectiveConfig, TrainingModel, TrainingTargets};
use crate::backend::run_inline;

/// One worker's share of a batch.
pub(super) struct Shard {
    batch: TokenBatch,
    targets: TrainingTargets,
    n_targets: f64,
}

/// The windows `chunk` (indices into `data.windows`) cut into `cfg.workers` shards, each with
/// its targets drawn from `rng` in order.
pub(super) fn batch_shards(
    chunk: &[usize],
    cfg: &TrainConfig,
    data: &TrainingData,
    model: &TrainingModel,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Vec<Shard> {
    chunk
        .chunks(chunk.len().div_ceil(cfg.workers.max(1)))
        .map(|part| {
            let seqs: Vec<TokenSequence> = part.iter().map(|&i| data.windows[i].clone()).collect();
            let n_targets = seqs.iter().map(TokenSequence::n_targets).sum::<usize>() as f64;
            let batch = TokenBatch::new(&seqs, device);
            let mut targets =
                TrainingTargets::new(&seqs, &cfg.objectives, &data.item_share, rng, device)
                    .with_id_drops(model, rng, device);
            targets.teacher = data
                .teacher
                .as_ref()
                .map(|t| t.targets(part, TokenBatch::padded_len(&seqs), device));
            Shard {
                batch,
                targets,
                n_targets,
            }
        })
        .collect()
}

/// A shard's gradients, its loss parts (see [`LossValues`]) and its target count. The
/// objectives are means over the shard's targets; scaled by the shard's share
/// of an average batch's targets (`targets_per_batch`), every target weighs the same whatever
/// its batch (with length-sorted batches, a batch of short windows holds far fewer) and the
/// shards' gradients add up to the whole batch's.
pub(super) fn shard_gradients(
    model: &TrainingModel,
    shard: Shard,
    features: Option<&ItemFeatures>,
    objectives: &ObjectiveConfig,
    distill: Option<&DistillConfig>,
    targets_per_batch: f64,
) -> (GradientsParams, LossValues, f64) {
    let parts = model.loss(&shard.batch, &shard.targets, features, objectives, distill);
    let share = shard.n_targets / targets_per_batch;
    let grads =
        GradientsParams::from_grads(parts.total.clone().mul_scalar(share).backward(), model);
    (grads, parts.values(), shard.n_targets)
}

/// A worker's copy of `model`: fresh autodiff leaves with the same parameter ids, so its
/// gradients add up with the other workers'. The copy goes through the inner backend
/// (`valid().train()`), not `Module::fork`: `fork` records a to-device node on every tracked
/// parameter that no backward ever consumes, and burn-autodiff's sweep of orphaned graphs at
/// every `backward()` grows with them (21% of a two-worker run's time by epoch 30).
pub(super) fn worker_copy(model: &TrainingModel) -> TrainingModel {
    model.valid().train()
}

/// A shard's loss parts as numbers, in the order of
/// [`LossParts::values`](super::model::LossParts::values): total, next item, multi-token,
/// auxiliary, teacher scores, alignment.
pub(super) type LossValues = [f64; 6];

/// Loss parts (see [`LossValues`]) summed over an epoch's targets (each shard's means
/// weighted by its target count), and the targets seen.
#[derive(Debug, Default)]
pub(super) struct LossSums {
    parts: LossValues,
    targets: f64,
}

impl LossSums {
    /// Adds one shard's loss parts (means over its `n_targets` targets); refuses a loss that is
    /// not finite.
    pub(super) fn add(&mut self, parts: LossValues, n_targets: f64) -> anyhow::Result<()> {
        anyhow::ensure!(parts[0].is_finite(), "loss became {}", parts[0]);
        for (sum, part) in self.parts.iter_mut().zip(parts) {
            *sum += part * n_targets;
        }
        self.targets += n_targets;
        Ok(())
    }

    /// The mean of part `i` per target so far.
    pub(super) fn mean(&self, i: usize) -> f64 {
        self.parts[i] / self.targets
    }

    /// Targets seen so far.
    pub(super) fn targets(&self) -> f64 {
        self.targets
    }
}

/// One optimizer step on a batch's `shards`: with one shard, its gradients on `model` itself;
/// with several, each worker differentiates its own copy on its own thread (burn's CPU ops kept
/// there) and burn's `MultiGradientsParams` sums the gradients before the step. Returns the
/// stepped model and each shard's loss parts and target count.
pub(super) fn step(
    model: TrainingModel,
    optim: &mut ModuleOptimizer,
    lr: ModuleLearningRate,
    shards: Vec<Shard>,
    backward: &(dyn Fn(&TrainingModel, Shard) -> (GradientsParams, LossValues, f64) + Sync),
    device: &Device,
) -> (TrainingModel, Vec<(LossValues, f64)>) {
    if shards.len() == 1 {
        let shard = shards.into_iter().next().expect("one shard");
        let (grads, values, n) = backward(&model, shard);
        return (optim.step(lr, model, grads), vec![(values, n)]);
    }
    let done: Vec<(GradientsParams, LossValues, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .into_iter()
            .map(|shard| {
                let copy = worker_copy(&model);
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
    (
        optim.step_multi(lr, model, MultiGradientsParams { grads }),
        results,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_sums_weigh_each_shard_by_its_targets_and_refuse_a_non_finite_loss() {
        let mut sums = LossSums::default();
        sums.add([2.0, 1.0, 0.5, 0.5, 0.0, 0.0], 30.0).unwrap();
        sums.add([4.0, 3.0, 0.5, 0.5, 0.0, 0.0], 10.0).unwrap();
        assert_eq!(sums.targets(), 40.0);
        assert_eq!((sums.mean(0), sums.mean(1), sums.mean(2)), (2.5, 1.5, 0.5));
        let e = sums
            .add([f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss became NaN"), "{e}");
        assert_eq!(sums.targets(), 40.0, "a refused shard adds nothing");
    }
    use crate::backend::Backend;
    use crate::training::data::prepare;
    use encore_core::FoundationModelConfig;
    use rand::SeedableRng;

    /// The sum of two shards' gradients equals the whole batch's gradient (the basis of
    /// `workers > 1`): sampled negatives drawn per sequence, the genre and action heads.
    #[test]
    fn shard_gradients_add_up_to_the_whole_batch() {
        use crate::training::model::objectives::EventWeights;
        use encore_core::data::split::group_by_member;
        use encore_core::{SyntheticWorld, SyntheticWorldConfig};
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
                    shard_gradients(&copy, shard, Some(&features), &cfg.objectives, None, 100.0);
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
