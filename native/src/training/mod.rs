//! Training the foundation model natively: batches, Adam, progress, checkpoints and resume.

mod checkpoint;

pub use checkpoint::Checkpoint;

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use encore_core::data::catalog::ItemVocabulary;
use encore_core::data::split::MemberHistory;
use encore_core::{
    EventTokenizer, FoundationModel, FoundationModelConfig, TokenBatch, TokenSequence,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;

/// Hyper-parameters of a training run (the model's item count comes from the data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed for initialisation, dropout and shuffling.
    pub seed: u64,
    /// Hidden width.
    pub d_model: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Transformer layers.
    pub n_layers: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Attention window (tokens).
    pub max_len: usize,
    /// Dropout rate.
    pub dropout: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 6,
            batch_size: 64,
            learning_rate: 2e-3,
            seed: 42,
            d_model: 64,
            n_heads: 2,
            n_layers: 2,
            d_ff: 256,
            max_len: 64,
            dropout: 0.1,
        }
    }
}

impl TrainConfig {
    /// The model config for a catalog of `n_items`.
    pub fn model(&self, n_items: usize) -> FoundationModelConfig {
        FoundationModelConfig::new(n_items)
            .with_d_model(self.d_model)
            .with_n_heads(self.n_heads)
            .with_n_layers(self.n_layers)
            .with_d_ff(self.d_ff)
            .with_max_len(self.max_len)
            .with_dropout(self.dropout)
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean next-item loss.
    pub loss: f64,
    /// Tokens with a target.
    pub tokens: usize,
    /// Wall time.
    pub seconds: f64,
}

/// The result of [`train`].
#[derive(Debug)]
pub struct TrainedModel {
    /// The trained model (on the training device).
    pub model: FoundationModel,
    /// Its shape.
    pub config: FoundationModelConfig,
    /// Per-epoch statistics (including epochs done before a resume).
    pub epochs: Vec<EpochStats>,
}

impl TrainedModel {
    /// The weight file of this model.
    pub fn weight_file(&self, items: &ItemVocabulary) -> Vec<u8> {
        encore_core::weights::save_model(&self.model, &self.config, items.ids())
    }
}

/// Where checkpoints go and whether to continue from one.
#[derive(Debug, Clone, Default)]
pub struct CheckpointPolicy<'a> {
    /// Written atomically after every epoch.
    pub path: Option<&'a Path>,
    /// Continue from `path` if it exists.
    pub resume: bool,
}

/// Trains a foundation model on members' histories.
pub fn train(
    histories: &[MemberHistory],
    items: &ItemVocabulary,
    cfg: &TrainConfig,
    backend: Backend,
    checkpoints: CheckpointPolicy<'_>,
    show_progress: bool,
) -> anyhow::Result<TrainedModel> {
    anyhow::ensure!(
        cfg.epochs > 0 && cfg.batch_size > 0,
        "epochs and batch size must be positive"
    );
    let device = backend.training_device();
    device.seed(cfg.seed);
    let config = cfg.model(items.len());
    let tokenizer = EventTokenizer::new(cfg.max_len);
    let mut windows: Vec<TokenSequence> = Vec::new();
    for h in histories {
        windows.extend(
            tokenizer
                .training_windows(items, &h.events)
                .with_context(|| format!("member {}", h.member))?,
        );
    }
    anyhow::ensure!(!windows.is_empty(), "no training events");
    let total_tokens: usize = windows
        .iter()
        .map(|w| w.target.iter().filter(|t| t.is_some()).count())
        .sum();

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

    let steps_per_epoch = windows.len().div_ceil(cfg.batch_size);
    for epoch in epochs.len() + 1..=cfg.epochs {
        let bar = if show_progress {
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
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.shuffle(&mut rng);
        let start = Instant::now();
        let (mut loss_sum, mut loss_weight) = (0.0f64, 0.0f64);
        for chunk in order.chunks(cfg.batch_size) {
            let seqs: Vec<TokenSequence> = chunk.iter().map(|&i| windows[i].clone()).collect();
            let n_targets = seqs
                .iter()
                .map(|s| s.target.iter().filter(|t| t.is_some()).count())
                .sum::<usize>() as f64;
            let batch = TokenBatch::new(&seqs, &device);
            let loss = model.next_item_loss(&batch);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
            let value = f64::from(loss.into_scalar::<f32>());
            anyhow::ensure!(value.is_finite(), "loss became {value} at epoch {epoch}");
            loss_sum += value * n_targets;
            loss_weight += n_targets;
            let secs = start.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4}  {:.0} tok/s",
                loss_sum / loss_weight,
                loss_weight / secs.max(1e-9)
            ));
            bar.inc(1);
        }
        bar.finish();
        epochs.push(EpochStats {
            epoch,
            loss: loss_sum / loss_weight,
            tokens: total_tokens,
            seconds: start.elapsed().as_secs_f64(),
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
                weights: encore_core::weights::save_model(&model, &config, items.ids()),
            };
            ck.write(path)?;
        }
    }
    Ok(TrainedModel {
        model,
        config,
        epochs,
    })
}
