//! The `[training]` table: a run's hyper-parameters, the model's shape as the one
//! [`FoundationModelConfig`], the learning-rate schedule, and the training model they describe.

use burn::optim::lr_scheduler::LrSchedulerConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use encore_core::FoundationModelConfig;
use serde::{Deserialize, Serialize};

use super::TrainingModelConfig;
use super::distill::DistillConfig;
use super::model::{AuxHeadsConfig, ItemEncoderConfig, ObjectiveConfig};

/// Hyper-parameters of a training run (the model's item count comes from the data). Every field
/// has a default, so a TOML `[training]` table names only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Adam learning rate (the peak one under a schedule).
    pub learning_rate: f64,
    /// How the learning rate moves over the run's steps.
    pub lr_schedule: LrSchedule,
    /// Steps of linear warm-up from `learning_rate / warmup_steps` to `learning_rate` (0: none).
    pub warmup_steps: usize,
    /// Share of the run's steps, at its end, over which `stable-decay` lowers the rate to 0.
    pub decay_fraction: f64,
    /// Seed for initialisation, dropout, negatives and shuffling.
    pub seed: u64,
    /// The foundation model's shape: the `[training.model]` table, any field of
    /// [`FoundationModelConfig`] (defaults documented there) but `n_items`, which comes from
    /// the data. The weight file stores the same config.
    #[serde(deserialize_with = "model_table")]
    pub model: FoundationModelConfig,
    /// Mix content embeddings (metadata and text vectors) into the item vectors.
    pub content_embeddings: bool,
    /// Share of items whose ID embedding is swapped for the unknown vector at each step.
    pub unknown_id_rate: f64,
    /// Batch windows of similar length together (batches in random order each epoch), so a
    /// batch pads little; `false` draws batches uniformly at random.
    pub batch_by_length: bool,
    /// Data-parallel workers (at most [`MAX_WORKERS`]): each takes a share of every batch
    /// (forward and backward on its own copy of the model, on its own device, on its own
    /// thread), and burn's multi-device optimizer step sums their gradients before one update.
    /// On the wgpu backend each worker has a discrete GPU (0…N−1; a run asking for more than
    /// the machine has stops); on the CPU backend, which burn gives one device, they are
    /// threads sharing it. 1 (the default) keeps a run bit-for-bit reproducible; with more,
    /// dropout masks depend on thread timing.
    pub workers: usize,
    /// The objectives.
    pub objectives: ObjectiveConfig,
    /// Distillation from a trained teacher (the `[training.distill]` table); `None`: none.
    pub distill: Option<DistillConfig>,
    /// Fine-tuning: start from this weight file's foundation model (same shape and catalog;
    /// relative to the working directory) instead of fresh weights. The file's item vectors
    /// already hold the content mix, so the run has no item encoder.
    pub init_from: Option<std::path::PathBuf>,
    /// Parts of the foundation model training leaves unchanged: `embeddings`, `layers:N`
    /// (0-based), `layer_mix`, `norm`.
    pub freeze: Vec<String>,
}

/// The most data-parallel workers a run may ask for.
pub const MAX_WORKERS: usize = 256;

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 6,
            batch_size: 64,
            learning_rate: 2e-3,
            lr_schedule: LrSchedule::Constant,
            warmup_steps: 0,
            decay_fraction: 0.2,
            seed: 42,
            model: FoundationModelConfig::new(0),
            content_embeddings: true,
            unknown_id_rate: 0.1,
            batch_by_length: true,
            workers: 1,
            objectives: ObjectiveConfig::default(),
            distill: None,
            init_from: None,
            freeze: Vec::new(),
        }
    }
}

/// The `[training.model]` table: the fields given, on top of [`FoundationModelConfig`]'s
/// defaults (see [`model_config_with`]; `n_items`, from the data, may only be 0). A binary
/// format (a checkpoint) stores the whole config and reads it back as it is.
fn model_table<'de, D>(deserializer: D) -> Result<FoundationModelConfig, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    if !deserializer.is_human_readable() {
        return FoundationModelConfig::deserialize(deserializer);
    }
    let given = toml::Table::deserialize(deserializer)?;
    if given
        .get("n_items")
        .is_some_and(|v| v.as_integer() != Some(0))
    {
        return Err(D::Error::custom(
            "model.n_items comes from the data's catalog: leave it out",
        ));
    }
    model_config_with(FoundationModelConfig::new(0), given).map_err(D::Error::custom)
}

/// `base` with the fields of `given` (names and TOML values as in [`FoundationModelConfig`])
/// set; an unknown field or a wrong type is an error naming it.
pub fn model_config_with(
    base: FoundationModelConfig,
    given: toml::Table,
) -> Result<FoundationModelConfig, String> {
    let mut table = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    for (key, value) in given {
        if !table.contains_key(&key) {
            let known: Vec<&String> = table.keys().collect();
            return Err(format!(
                "unknown model field `{key}`, expected one of {known:?}"
            ));
        }
        table.insert(key, value);
    }
    table.try_into().map_err(|e: toml::de::Error| e.to_string())
}

/// The learning rate's course over a run (after any warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `learning_rate` throughout.
    #[default]
    Constant,
    /// From `learning_rate` down to 0 along a half cosine that reaches 0 at the last step of
    /// `epochs` (so `--epochs` changes the whole course, not only where it stops).
    Cosine,
    /// `learning_rate` until the last `decay_fraction` of the run's steps, then linearly down
    /// to 0 at its last step ("warm-up, stable, decay"): a run with more `epochs` passes
    /// through the same states as a shorter one until its own decay begins.
    StableDecay,
}

impl TrainConfig {
    /// The learning-rate scheduler of a run of `total_steps` optimizer steps (burn's schedulers).
    pub fn lr_scheduler(&self, total_steps: usize) -> anyhow::Result<ModuleLrScheduler> {
        let lr = self.learning_rate;
        anyhow::ensure!(
            lr > 0.0 && lr <= 1.0,
            "learning_rate must lie in (0, 1], not {lr}"
        );
        let warmup = self.warmup_steps.min(total_steps.saturating_sub(1));
        let after_warmup = total_steps - warmup;
        let cosine = CosineAnnealingLrSchedulerConfig::new(lr, (after_warmup - 1).max(1));
        // Each phase of the course and the step it begins at (burn runs them in sequence).
        let mut phases: Vec<(LrSchedulerConfig, usize)> = Vec::new();
        if warmup > 0 {
            let rise = LinearLrSchedulerConfig::new(lr / warmup as f64, lr, (warmup - 1).max(1));
            phases.push((LrSchedulerConfig::Linear(rise), 0));
        }
        match self.lr_schedule {
            LrSchedule::Constant => phases.push((LrSchedulerConfig::Constant(lr), warmup)),
            LrSchedule::Cosine => phases.push((LrSchedulerConfig::Cosine(cosine), warmup)),
            LrSchedule::StableDecay => {
                anyhow::ensure!(
                    (0.0..=1.0).contains(&self.decay_fraction),
                    "decay_fraction must lie in [0, 1], not {}",
                    self.decay_fraction
                );
                let decay = ((total_steps as f64 * self.decay_fraction).round() as usize)
                    .clamp(1, after_warmup.max(1));
                let stable = after_warmup - decay.min(after_warmup);
                if stable > 0 {
                    phases.push((LrSchedulerConfig::Constant(lr), warmup));
                }
                // Linear from the peak to 0 at the run's last step.
                let fall = LinearLrSchedulerConfig::new(lr, 0.0, (decay - 1).max(1));
                phases.push((LrSchedulerConfig::Linear(fall), warmup + stable));
            }
        }
        let milestones = phases[1..].iter().map(|(_, start)| *start).collect();
        let configs = phases.into_iter().map(|(config, _)| config).collect();
        let scheduler = SequentialLrSchedulerConfig::new(configs, milestones).init();
        scheduler.map_err(|e| anyhow::anyhow!("learning-rate schedule: {e}"))
    }

    /// Refuses a model shape no weight file may hold (see
    /// [`encore_core::weights::validate_config`]) before any data is read; the item count,
    /// which comes from the data, is checked when the model is built.
    pub fn check_model_shape(&self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let shape = FoundationModelConfig {
            n_items: 1,
            ..self.model.clone()
        };
        encore_core::weights::validate_config(&shape)
            .context("training.model cannot be written to a weight file")?;
        Ok(())
    }

    /// The training model's config for `catalog` (`content_dim` is the width of its content
    /// vectors, 0 if none).
    pub fn model(
        &self,
        n_items: usize,
        n_genres: usize,
        content_dim: usize,
    ) -> TrainingModelConfig {
        let o = &self.objectives;
        let d_model = self.model.d_model;
        let model = FoundationModelConfig {
            n_items,
            ..self.model.clone()
        };
        TrainingModelConfig::new(model)
            .with_item_encoder(self.content_embeddings.then(|| {
                ItemEncoderConfig::new(d_model, n_genres.max(1))
                    .with_content_dim(content_dim)
                    .with_unknown_id_rate(self.unknown_id_rate)
            }))
            .with_aux_heads(o.any_aux().then(|| {
                AuxHeadsConfig::new(d_model, if o.genre_weight > 0.0 { n_genres } else { 0 })
                    .with_action(o.action_weight > 0.0)
                    .with_duration(o.duration_weight > 0.0)
                    .with_time_to_next(o.time_to_next_weight > 0.0)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
