//! Data-parallel training steps: a batch cut into one shard per worker, each differentiated on
//! its own copy of the model on its own device, the gradients summed by burn's multi-device
//! optimizer step (`MultiGradientsParams`: each parameter's gradients are added up on one of
//! the devices, which also holds its optimizer state) before one update.

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

/// One worker's share of a batch, on that worker's device.
pub(super) struct Shard {
    /// The worker (index into the run's devices) that differentiates it.
    pub(super) worker: usize,
    batch: TokenBatch,
    targets: TrainingTargets,
    n_targets: f64,
}

/// The windows `chunk` (indices into `windows`: the run's windows in memory, or a streamed
/// chunk of them) cut into one shard per device of `devices` (fewer when the batch is
/// smaller), shard `i` on `devices[i]`, each with its targets drawn from `rng` in order. The
/// teacher's targets (distillation, in memory only) index `data`'s windows.
pub(super) fn batch_shards(
    chunk: &[usize],
    windows: &[TokenSequence],
    cfg: &TrainConfig,
    data: &TrainingData,
    model: &TrainingModel,
    rng: &mut ChaCha8Rng,
    devices: &[Device],
) -> Vec<Shard> {
    chunk
        .chunks(chunk.len().div_ceil(devices.len().max(1)))
        .enumerate()
        .map(|(worker, part)| {
            let device = &devices[worker];
            let seqs: Vec<TokenSequence> = part.iter().map(|&i| windows[i].clone()).collect();
            let n_targets = seqs.iter().map(TokenSequence::n_targets).sum::<usize>() as f64;
            let batch = TokenBatch::new(&seqs, device);
            let mut targets =
                TrainingTargets::new(&seqs, &cfg.objectives, &data.items, rng, device)
                    .with_id_drops(model, rng, device);
            targets.teacher = data
                .teacher
                .as_ref()
                .map(|t| t.targets(part, TokenBatch::padded_len(&seqs), device));
            Shard {
                worker,
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

/// A worker's copy of `model` on `device`: fresh autodiff leaves with the same parameter ids,
/// so its gradients add up with the other workers'. The copy goes through the inner backend
/// (`valid()`, moved there, `train()`), not `Module::fork`: `fork` records a to-device node on
/// every tracked parameter that no backward ever consumes, and burn-autodiff's sweep of
/// orphaned graphs at every `backward()` grows with them (21% of a two-worker run's time by
/// epoch 30).
pub(super) fn worker_copy(model: &TrainingModel, device: &Device) -> TrainingModel {
    model.valid().to_device(&device.clone().inner()).train()
}

/// `model` with every parameter on `device`. After a step on several devices each parameter
/// sits where burn's multi-device step summed its gradients; between steps the model lives
/// on the first device.
pub(super) fn gathered(model: TrainingModel, device: &Device) -> TrainingModel {
    model.valid().to_device(&device.clone().inner()).train()
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
/// with several, each worker differentiates its own copy on its shard's device of `devices`,
/// on its own thread (burn's CPU ops kept there), and burn's `MultiGradientsParams` sums the
/// gradients before the step. Returns the stepped model, on `devices[0]`, and each shard's loss
/// parts and target count.
pub(super) fn step(
    model: TrainingModel,
    optim: &mut ModuleOptimizer,
    lr: ModuleLearningRate,
    shards: Vec<Shard>,
    backward: &(dyn Fn(&TrainingModel, Shard) -> (GradientsParams, LossValues, f64) + Sync),
    devices: &[Device],
) -> (TrainingModel, Vec<(LossValues, f64)>) {
    if shards.len() == 1 {
        let shard = shards.into_iter().next().expect("one shard");
        let (grads, values, n) = backward(&model, shard);
        return (optim.step(lr, model, grads), vec![(values, n)]);
    }
    let done: Vec<(GradientsParams, LossValues, f64, Device)> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .into_iter()
            .map(|shard| {
                let device = devices[shard.worker].clone();
                let copy = worker_copy(&model, &device);
                scope.spawn(move || (run_inline(|| backward(&copy, shard)), device))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a training worker panicked"))
            .map(|((g, values, n), device)| (g, values, n, device))
            .collect()
    });
    let mut results = Vec::with_capacity(done.len());
    let mut grads = Vec::with_capacity(done.len());
    for (g, values, n, device) in done {
        grads.push((g, device));
        results.push((values, n));
    }
    let stepped = optim.step_multi(lr, model, MultiGradientsParams { grads });
    let stepped = if devices.iter().all(|d| d == &devices[0]) {
        stepped
    } else {
        gathered(stepped, &devices[0])
    };
    (stepped, results)
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

    /// A small world's training inputs: the run's config (no dropout, no ID drops, in-batch
    /// negatives off), its data, item features and a freshly drawn model, on the CPU.
    fn small_run() -> (
        TrainConfig,
        TrainingData,
        ItemFeatures,
        TrainingModel,
        Device,
    ) {
        small_run_on(Backend::Cpu.training_device())
    }

    /// [`small_run`] on `device`.
    fn small_run_on(
        device: Device,
    ) -> (
        TrainConfig,
        TrainingData,
        ItemFeatures,
        TrainingModel,
        Device,
    ) {
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
        let content_dim = world.catalog.items[0].content.as_ref().map_or(0, Vec::len);
        let config = cfg.model(world.catalog.len(), world.catalog.genres.len(), content_dim);
        let source = crate::training::data::WindowSource::Memory(&histories);
        let data = prepare(&source, &world.catalog, &config.model.tokenizer(), 64).unwrap();
        let features = ItemFeatures::new(&world.catalog, &data.seen, data.reference_time, &device);
        let model = config.init(&device);
        (cfg, data, features, model, device)
    }

    /// Every float parameter of `model`, in visiting order.
    fn parameters(model: &TrainingModel) -> Vec<Vec<f32>> {
        struct Collect(Vec<Vec<f32>>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(
                &mut self,
                param: &burn::module::Param<burn::tensor::Tensor<D>>,
            ) {
                let values = param
                    .val()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap();
                self.0.push(values);
            }
        }
        let mut collect = Collect(Vec::new());
        model.visit(&mut collect);
        collect.0
    }

    /// One optimizer step of `model` on the batch `chunk` of `data`, a share per device of
    /// `devices`; returns every parameter after the step.
    fn one_step(
        cfg: &TrainConfig,
        data: &TrainingData,
        features: &[ItemFeatures],
        model: &TrainingModel,
        chunk: &[usize],
        devices: &[Device],
    ) -> Vec<Vec<f32>> {
        use burn::optim::AdamConfig;
        let cfg = TrainConfig {
            workers: devices.len(),
            ..cfg.clone()
        };
        let start = worker_copy(model, &devices[0]);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let shards = batch_shards(chunk, &data.windows, &cfg, data, &start, &mut rng, devices);
        assert_eq!(shards.len(), devices.len());
        let whole: f64 = shards.iter().map(|s| s.n_targets).sum();
        let backward = |m: &TrainingModel, shard: Shard| {
            let features = &features[shard.worker];
            shard_gradients(m, shard, Some(features), &cfg.objectives, None, whole)
        };
        let mut optim = AdamConfig::new().init();
        let (stepped, losses) = step(start, &mut optim, 1e-2.into(), shards, &backward, devices);
        let targets: f64 = losses.iter().map(|(_, n)| n).sum();
        assert_eq!(targets, whole, "every target counted once");
        parameters(&stepped)
    }

    /// The largest absolute difference between two parameter lists of the same shapes.
    fn largest_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .flat_map(|(a, b)| {
                assert_eq!(a.len(), b.len());
                a.iter().zip(b)
            })
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    }

    /// One optimizer step with N workers, each on a share b of the batch, gives the model that
    /// one worker's step over the whole batch N·b gives (Adam, the run's objectives, burn's
    /// multi-device gradient sum), to 1e-5.
    #[test]
    fn one_step_on_several_workers_equals_one_step_on_the_whole_batch() {
        let (cfg, data, features, model, device) = small_run();
        let chunk: Vec<usize> = (0..24).collect();
        let step_with = |workers: usize| -> Vec<Vec<f32>> {
            let devices = vec![device.clone(); workers];
            let features = vec![features.clone(); workers];
            one_step(&cfg, &data, &features, &model, &chunk, &devices)
        };
        let before = parameters(&model);
        let one = step_with(1);
        let moved = one
            .iter()
            .zip(&before)
            .flat_map(|(a, b)| a.iter().zip(b))
            .filter(|(a, b)| a != b)
            .count();
        assert!(moved > 1000, "the step moved only {moved} parameters");
        for workers in [2, 3] {
            let worst = largest_difference(&one, &step_with(workers));
            assert!(
                worst <= 1e-5,
                "{workers} workers: largest difference {worst}"
            );
        }
    }

    /// The same on two distinct burn devices (two wgpu devices on one adapter: burn gives each
    /// its own client and memory, so gradients and parameters really move between them): the
    /// step on both equals the step on the first with the whole batch.
    #[test]
    fn one_step_on_two_wgpu_devices_equals_one_step_on_one() {
        use burn::tensor::DeviceKind;
        let first = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
        let second = Device::wgpu(DeviceKind::Cpu).autodiff();
        let (cfg, data, features, model, _) = small_run_on(first.clone());
        assert_ne!(first, second, "two burn devices");
        let moved = |d: &Device| {
            let f = &features;
            ItemFeatures {
                content: f.content.clone().map(|t| t.to_device(d)),
                genres: f.genres.clone().to_device(d),
                kind: f.kind.clone().to_device(d),
                language: f.language.clone().to_device(d),
                year: f.year.clone().to_device(d),
                age: f.age.clone().to_device(d),
                seen: f.seen.clone().to_device(d),
            }
        };
        let chunk: Vec<usize> = (0..24).collect();
        let one = one_step(
            &cfg,
            &data,
            &[moved(&first)],
            &model,
            &chunk,
            &[first.clone()],
        );
        let two = one_step(
            &cfg,
            &data,
            &[moved(&first), moved(&second)],
            &model,
            &chunk,
            &[first.clone(), second],
        );
        let worst = largest_difference(&one, &two);
        assert!(worst <= 1e-5, "largest difference {worst}");
    }

    /// The sum of two shards' gradients equals the whole batch's gradient (the basis of
    /// `workers > 1`): sampled negatives drawn per sequence, the genre and action heads.
    #[test]
    fn shard_gradients_add_up_to_the_whole_batch() {
        let (cfg, data, features, model, device) = small_run();
        let chunk: Vec<usize> = (0..16).collect();
        let grads_of = |workers: usize| -> Vec<Vec<f32>> {
            let cfg = TrainConfig {
                workers,
                ..cfg.clone()
            };
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let devices = vec![device.clone(); workers];
            let shards = batch_shards(
                &chunk,
                &data.windows,
                &cfg,
                &data,
                &model,
                &mut rng,
                &devices,
            );
            assert_eq!(shards.len(), workers);
            let mut sum: Option<Vec<Vec<f32>>> = None;
            for shard in shards {
                let copy = worker_copy(&model, &device);
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
