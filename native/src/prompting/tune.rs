//! Learning one prompt set with the foundation model frozen: Adam on the prompt's vectors
//! alone, full-softmax next-item cross-entropy at the task's request positions, each position
//! run as serving runs it (history, prompt, request token; see
//! [`encore_core::FoundationModel::forward_prompted_batch`]).

use std::time::Instant;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use encore_core::data::split::MemberHistory;
use encore_core::model::{PromptForm, PromptPlacement, PromptSet, PromptSetConfig, l2_normalize};
use encore_core::tokenizer::{EventTokenizer, TokenBatch, TokenSequence};
use encore_core::{Catalog, FoundationModel};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::PromptTask;

/// How a prompt is tuned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptTuneConfig {
    /// Where the prompt's vectors enter the model.
    pub form: PromptForm,
    /// Vectors in the prompt (`P`, 1 to 16).
    pub length: usize,
    /// Where the prompt sits (bundles serve [`PromptPlacement::BeforeRequest`] only).
    pub placement: PromptPlacement,
    /// Passes over the task's windows.
    pub epochs: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Request positions drawn per window and step (at most; fewer when the window has fewer
    /// task targets).
    pub requests_per_window: usize,
    /// Scores are divided by it in the loss (the foundation model's training temperature).
    pub temperature: f64,
    /// L2-normalise the user representation in the loss (as the foundation model trained).
    pub normalize: bool,
    /// Seed of the initial vectors and the sampling.
    pub seed: u64,
}

impl Default for PromptTuneConfig {
    fn default() -> Self {
        Self {
            form: PromptForm::Deep,
            length: 4,
            placement: PromptPlacement::BeforeRequest,
            epochs: 4,
            batch_size: 32,
            learning_rate: 1e-2,
            requests_per_window: 8,
            temperature: 1.0,
            normalize: false,
            seed: 7,
        }
    }
}

/// One training window and the positions whose targets are the task's.
#[derive(Debug, Clone)]
pub struct TuneExample {
    /// A window of a member's training tokens.
    pub window: TokenSequence,
    /// Positions in it whose target the task accepts (each is a request position: the
    /// history is the tokens before it).
    pub positions: Vec<usize>,
}

/// The task's training examples: every member's training windows (as the foundation model
/// trained on them) with the positions whose targets the task accepts; windows without any
/// are left out.
pub fn examples(
    train: &[MemberHistory],
    catalog: &Catalog,
    tokenizer: &EventTokenizer,
    task: &PromptTask,
) -> anyhow::Result<Vec<TuneExample>> {
    let mut out = Vec::new();
    for h in train {
        if !task.accepts_member(h.events.len()) {
            continue;
        }
        let windows = tokenizer
            .training_windows(catalog.vocabulary(), &h.events)
            .map_err(|e| anyhow::anyhow!("member {}: {e}", h.member))?;
        for window in windows {
            let positions: Vec<usize> = window
                .tokens
                .iter()
                .enumerate()
                .filter(|(_, t)| task.accepts_token(catalog, t))
                .map(|(i, _)| i)
                .collect();
            if !positions.is_empty() {
                out.push(TuneExample { window, positions });
            }
        }
    }
    Ok(out)
}

/// One epoch of [`tune`].
#[derive(Debug, Clone, Serialize)]
pub struct TuneEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's request positions.
    pub loss: f64,
    /// Request positions trained on.
    pub requests: usize,
    /// Wall time.
    pub seconds: f64,
}

/// The result of [`tune`].
#[derive(Debug)]
pub struct TunedPrompt {
    /// The learned vectors (on the inner backend, without gradients).
    pub prompt: PromptSet,
    /// Per-epoch loss and time.
    pub epochs: Vec<TuneEpoch>,
}

/// Learns a prompt set (at `cfg.placement`) for `examples` on the frozen `model` (loaded on `device`, an autodiff
/// device; its parameters get no gradient and stay as they are). `on_epoch` sees each epoch.
pub fn tune(
    model: &FoundationModel,
    examples: &[TuneExample],
    cfg: &PromptTuneConfig,
    device: &Device,
    on_epoch: impl FnMut(&TuneEpoch),
) -> anyhow::Result<TunedPrompt> {
    anyhow::ensure!(
        (1..=encore_core::model::MAX_PROMPT_LENGTH).contains(&cfg.length),
        "a prompt holds 1 to {} vectors, not {}",
        encore_core::model::MAX_PROMPT_LENGTH,
        cfg.length
    );
    device.seed(cfg.seed);
    let d = model.norm.gamma.val().dims()[0];
    let prompt = PromptSetConfig::new(cfg.form, d, model.blocks.len())
        .with_length(cfg.length)
        .init(device);
    let tables = model.token_tables();
    let items = model.item_vectors().transpose(); // [d, n_items]
    let (prompt, epochs) = train_on_task(
        prompt,
        examples,
        cfg,
        device,
        |prompt, batch, picked| {
            let users = match cfg.placement {
                PromptPlacement::BeforeRequest => {
                    model.forward_prompted_batch(batch, &tables, picked, Some(prompt))
                }
                PromptPlacement::BeforeHistory => {
                    model.forward_prefixed_batch(batch, &tables, picked, prompt)
                }
            };
            (users, items.clone())
        },
        on_epoch,
    )?;
    Ok(TunedPrompt {
        prompt: prompt.valid(),
        epochs,
    })
}

/// The full fine-tuning baseline: every parameter of `model` (loaded on the autodiff `device`)
/// trained on the task's targets as [`tune`] trains a prompt (same loss, steps and sampling;
/// `cfg`'s form and length unused). Returns the tuned model on the inner backend.
pub fn fine_tune_on_task(
    model: FoundationModel,
    examples: &[TuneExample],
    cfg: &PromptTuneConfig,
    device: &Device,
    on_epoch: impl FnMut(&TuneEpoch),
) -> anyhow::Result<(FoundationModel, Vec<TuneEpoch>)> {
    device.seed(cfg.seed);
    let model = model.set_require_grad(true);
    let (model, epochs) = train_on_task(
        model,
        examples,
        cfg,
        device,
        |m, batch, picked| {
            let users = m.forward_prompted_batch(batch, &m.token_tables(), picked, None);
            (users, m.item_vectors().transpose())
        },
        on_epoch,
    )?;
    Ok((model.valid().no_grad(), epochs))
}

/// The linear-head baseline: the frozen `model`'s user representation through a learned
/// `d × d` linear map (initialised to the identity) before scoring, trained on the task's
/// targets as [`tune`] trains a prompt. Returns the head on the inner backend.
pub fn linear_head_on_task(
    model: &FoundationModel,
    examples: &[TuneExample],
    cfg: &PromptTuneConfig,
    device: &Device,
    on_epoch: impl FnMut(&TuneEpoch),
) -> anyhow::Result<(Linear, Vec<TuneEpoch>)> {
    device.seed(cfg.seed);
    let d = model.norm.gamma.val().dims()[0];
    let mut head = LinearConfig::new(d, d).init(device);
    head.weight = Param::from_tensor(Tensor::<2>::eye(d, device));
    let tables = model.token_tables();
    let items = model.item_vectors().transpose();
    let (head, epochs) = train_on_task(
        head,
        examples,
        cfg,
        device,
        |head, batch, picked| {
            let users = model.forward_prompted_batch(batch, &tables, picked, None);
            (head.forward(users), items.clone())
        },
        on_epoch,
    )?;
    Ok((head.valid(), epochs))
}

/// The frozen-layers baseline's trainable parts: the foundation model with its embeddings and
/// every layer but the last frozen, and a new `d × d` head on its user representation.
#[derive(Module, Debug)]
pub struct TopLayerAndHead {
    /// The model; only its last layer, layer mix and final norm get gradients.
    pub model: FoundationModel,
    /// The new head (user representation `[.., d]` → `[.., d]`, scored against the items).
    pub head: Linear,
}

/// The frozen-layers baseline: the model's embeddings and all layers but the last frozen
/// (see [`crate::training::fine_tune::freeze`]), its last layer, layer mix and final norm
/// trained together with a new linear head (initialised to the identity), on the task's
/// targets as [`tune`] trains a prompt. Returns both on the inner backend.
pub fn top_layer_and_head_on_task(
    model: FoundationModel,
    examples: &[TuneExample],
    cfg: &PromptTuneConfig,
    device: &Device,
    on_epoch: impl FnMut(&TuneEpoch),
) -> anyhow::Result<(TopLayerAndHead, Vec<TuneEpoch>)> {
    device.seed(cfg.seed);
    let d = model.norm.gamma.val().dims()[0];
    let lower: Vec<String> = std::iter::once("embeddings".to_string())
        .chain((0..model.blocks.len().saturating_sub(1)).map(|l| format!("layers:{l}")))
        .collect();
    let model = crate::training::fine_tune::freeze(model.set_require_grad(true), &lower)?;
    let mut head = LinearConfig::new(d, d).init(device);
    head.weight = Param::from_tensor(Tensor::<2>::eye(d, device));
    let (parts, epochs) = train_on_task(
        TopLayerAndHead { model, head },
        examples,
        cfg,
        device,
        |p, batch, picked| {
            let users =
                p.model
                    .forward_prompted_batch(batch, &p.model.token_tables(), picked, None);
            (p.head.forward(users), p.model.item_vectors().transpose())
        },
        on_epoch,
    )?;
    let parts = parts.valid();
    Ok((
        TopLayerAndHead {
            model: parts.model.no_grad(),
            head: parts.head,
        },
        epochs,
    ))
}

/// The loop every task method shares: Adam on `module`'s trainable parameters, batches of
/// `cfg.batch_size` windows each with up to `cfg.requests_per_window` of its task positions,
/// full-softmax next-item cross-entropy of `forward(module, windows, positions)` =
/// (user representations `[batch, k, d]`, item vectors `[d, n_items]`).
fn train_on_task<M: Module>(
    mut module: M,
    examples: &[TuneExample],
    cfg: &PromptTuneConfig,
    device: &Device,
    forward: impl Fn(&M, &TokenBatch, &[Vec<usize>]) -> (Tensor<3>, Tensor<2>),
    mut on_epoch: impl FnMut(&TuneEpoch),
) -> anyhow::Result<(M, Vec<TuneEpoch>)> {
    anyhow::ensure!(!examples.is_empty(), "the task has no training targets");
    anyhow::ensure!(
        cfg.epochs > 0 && cfg.batch_size > 0 && cfg.requests_per_window > 0,
        "epochs, batch size and requests per window must be positive"
    );
    anyhow::ensure!(cfg.temperature > 0.0, "the temperature must be positive");
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut epochs = Vec::with_capacity(cfg.epochs);
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut requests) = (0f64, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let windows: Vec<TokenSequence> =
                chunk.iter().map(|&i| examples[i].window.clone()).collect();
            let picked: Vec<Vec<usize>> = chunk
                .iter()
                .map(|&i| draw(&examples[i].positions, cfg.requests_per_window, &mut rng))
                .collect();
            let k = picked.iter().map(Vec::len).max().unwrap_or(1);
            let (mut targets, mut mask) = (Vec::new(), Vec::new());
            for (w, list) in windows.iter().zip(&picked) {
                for j in 0..k {
                    let target = list.get(j).and_then(|&t| w.tokens[t].target);
                    targets.push(target.map_or(0, |t| i64::from(t.item)));
                    mask.push(if target.is_some() { 1f32 } else { 0.0 });
                }
            }
            let n = targets.len();
            let count: f32 = mask.iter().sum();
            let batch = TokenBatch::new(&windows, device);
            let (users, items) = forward(&module, &batch, &picked);
            let d = users.dims()[2];
            let users = users.reshape([n, d]);
            let users = if cfg.normalize {
                l2_normalize(users)
            } else {
                users
            };
            let logits = users.matmul(items).div_scalar(cfg.temperature);
            let log_p = activation::log_softmax(logits, 1);
            let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), device);
            let mask = Tensor::<1>::from_data(TensorData::new(mask, [n]), device);
            let picked_log_p = log_p.gather(1, targets).reshape([n]);
            let loss = picked_log_p
                .mul(mask)
                .sum()
                .neg()
                .div_scalar(count.max(1.0));
            let value = loss.clone().into_scalar::<f32>();
            anyhow::ensure!(value.is_finite(), "the loss is not finite at epoch {epoch}");
            let grads = GradientsParams::from_grads(loss.backward(), &module);
            module = optim.step(cfg.learning_rate, module, grads);
            loss_sum += f64::from(value) * f64::from(count);
            requests += count as usize;
        }
        let stats = TuneEpoch {
            epoch,
            loss: loss_sum / requests.max(1) as f64,
            requests,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&stats);
        epochs.push(stats);
    }
    Ok((module, epochs))
}

/// Up to `k` of `positions`, drawn without replacement.
fn draw(positions: &[usize], k: usize, rng: &mut impl Rng) -> Vec<usize> {
    if positions.len() <= k {
        return positions.to_vec();
    }
    positions.sample(rng, k).copied().collect()
}
