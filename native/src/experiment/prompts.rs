//! `encore prompt-tune`: a prompt set learned for one task on an experiment's data with the
//! base bundle's foundation model frozen, added to the bundle's prompt sets, and measured on
//! the task's held-out cases against the same model without it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::tensor::Device;
use encore_core::Reranker;
use encore_core::data::split::{HeldOutEvent, Holdout};
use encore_core::metrics::RankingMetrics;
use encore_core::model::{NamedPromptSet, PromptPlacement};
use encore_core::weights::{load_model, validate_prompt_name};
use serde::Serialize;

use super::ExperimentConfig;
use super::paired;
use super::prepare::Prepared;
use super::report::print_metrics_row;
use crate::backend::Backend;
use crate::evaluation::{ranks_by, ranks_prompted};
use crate::io::write_atomic;
use crate::prompting::tune::TuneEpoch;
use crate::prompting::{
    PromptTask, PromptTuneConfig, TunedPrompt, examples, fine_tune_on_task, linear_head_on_task,
    top_layer_and_head_on_task, tune,
};

/// How a task is learned: a prompt set (the method the bundle ships), or one of the baselines
/// it is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaskMethod {
    /// A prompt set, the model frozen.
    Prompt,
    /// A linear map of the frozen model's user representation (measured only).
    LinearHead,
    /// The model's last layer (with its layer mix and final norm) trained with a new linear
    /// head, its embeddings and lower layers frozen (measured only).
    TopLayerAndHead,
    /// Every parameter of the model trained on the task (the bundle holds the tuned model).
    FineTune,
}

impl TaskMethod {
    /// What the printed report calls the result: `prompted`, `linear head`, `fine-tuned`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Prompt => "prompted",
            Self::LinearHead => "linear head",
            Self::TopLayerAndHead => "top layer + head",
            Self::FineTune => "fine-tuned",
        }
    }

    /// Parses `prompt`, `linear-head`, `top-layer-head` or `fine-tune`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "prompt" => Ok(Self::Prompt),
            "linear-head" => Ok(Self::LinearHead),
            "top-layer-head" => Ok(Self::TopLayerAndHead),
            "fine-tune" => Ok(Self::FineTune),
            _ => Err(format!(
                "unknown method {s:?} (prompt, linear-head, top-layer-head or fine-tune)"
            )),
        }
    }
}

/// What `encore prompt-tune` runs.
#[derive(Debug, Clone)]
pub struct PromptTuneRun {
    /// The experiment file (data, split, protocol, the base model's objectives).
    pub config: PathBuf,
    /// Replaces the file's holdout.
    pub holdout: Option<Holdout>,
    /// The base bundle (its foundation model stays frozen).
    pub base: PathBuf,
    /// The task.
    pub task: PromptTask,
    /// The prompt set's name (a prompt set of this name in the base bundle is replaced).
    pub name: String,
    /// How to tune.
    pub tune: PromptTuneConfig,
    /// What is learned.
    pub method: TaskMethod,
    /// Where the bundle with the new prompt set goes.
    pub out: PathBuf,
    /// The training backend.
    pub backend: Backend,
}

/// What a prompt-tune run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PromptTuneReport {
    /// The prompt set's name.
    pub name: String,
    /// The task, as given.
    pub task: String,
    /// How it was tuned (`temperature`/`normalize` from the experiment's objectives).
    pub tune: PromptTuneConfig,
    /// What was learned (a prompt set, or a baseline).
    pub method: TaskMethod,
    /// Training examples (windows) and request positions in them.
    pub windows: usize,
    /// Training request positions of the task.
    pub positions: usize,
    /// Per-epoch loss.
    pub epochs: Vec<crate::prompting::tune::TuneEpoch>,
    /// Held-out cases of the task.
    pub cases: usize,
    /// The base model without a prompt on those cases.
    pub base: RankingMetrics,
    /// The same model under the new prompt set (or the baseline's result).
    pub prompted: RankingMetrics,
    /// Most popular on those cases.
    pub most_popular: RankingMetrics,
    /// Mean per-case NDCG@10 difference prompted − base and its paired standard error.
    pub ndcg10_gain: (f64, f64),
    /// Parameters trained (the prompt set's, the head's, or the whole model's).
    pub prompt_parameters: usize,
    /// The prompt's parameters over the model's.
    pub parameter_share: f64,
    /// Bytes the prompt set adds to the bundle.
    pub bundle_bytes_added: usize,
    /// A served prompt set on the same cases with the history withheld (as for a new
    /// profile): the model without a prompt cannot rank those, most popular can.
    pub no_history: Option<NoHistoryReport>,
}

/// A prompt set ranking members as if they had no history, against most popular.
#[derive(Debug, Clone, Serialize)]
pub struct NoHistoryReport {
    /// The prompt set with no history (the request's context alone).
    pub prompted: RankingMetrics,
    /// Most popular on the same cases (nothing excluded, as nothing was watched).
    pub most_popular: RankingMetrics,
    /// Mean per-case NDCG@10 difference prompted − most popular and its paired standard error.
    pub ndcg10_gain: (f64, f64),
}

/// The held-out cases of `task`.
pub fn task_cases(
    prepared_cases: &[HeldOutEvent],
    catalog: &encore_core::Catalog,
    task: &PromptTask,
) -> Vec<HeldOutEvent> {
    prepared_cases
        .iter()
        .filter(|c| task.accepts_member(c.history.len()) && task.accepts_event(catalog, &c.target))
        .cloned()
        .collect()
}

/// A float tensor's values.
fn burn_values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    encore_core::model::host_values(t)
}

/// Every catalog item's score for each member: the `reranker`'s user representation through
/// `head` (`u·W + b`, burn's `Linear` with weight `[in, out]`) against its item vectors.
fn scores_through_head(
    reranker: &Reranker,
    head: &burn::nn::Linear,
    members: &[(&[encore_core::Event], encore_core::RerankRequest)],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let weight = burn_values(head.weight.val());
    let d = weight.len().isqrt();
    let bias = head
        .bias
        .as_ref()
        .map_or_else(|| vec![0.0; d], |b| burn_values(b.val()));
    let items = reranker.item_vectors()?;
    let users = reranker.user_representations(members)?;
    Ok(users
        .iter()
        .map(|u| {
            let mut h = bias.clone();
            for (i, ui) in u.iter().enumerate() {
                for (hj, w) in h.iter_mut().zip(&weight[i * d..(i + 1) * d]) {
                    *hj += ui * w;
                }
            }
            items
                .chunks(d)
                .map(|v| v.iter().zip(&h).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect())
}

/// Every catalog item's score for each member with `prompt` before the history
/// ([`PromptPlacement::BeforeHistory`]), computed by `model`'s training-side forward (no engine
/// serves that placement).
fn prefixed_scores(
    model: &encore_core::weights::LoadedModel,
    prompt: &encore_core::model::PromptSet,
    members: &[(&[encore_core::Event], encore_core::RerankRequest)],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let tokenizer = model.config.tokenizer();
    let seqs = members
        .iter()
        .map(|(history, request)| {
            tokenizer.serving_sequence(&model.items, history, &request.context(history))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let requests: Vec<Vec<usize>> = seqs.iter().map(|s| vec![s.len() - 1]).collect();
    let device = Device::flex();
    let batch = encore_core::tokenizer::TokenBatch::new(&seqs, &device);
    let tables = model.model.token_tables();
    let users = model
        .model
        .forward_prefixed_batch(&batch, &tables, &requests, prompt);
    let d = model.config.d_model;
    let scores = users
        .reshape([seqs.len(), d])
        .matmul(model.model.item_vectors().transpose());
    let n = model.items.len();
    Ok(burn_values(scores).chunks(n).map(<[f32]>::to_vec).collect())
}

/// Catalog scores per member (history, request) → one score per item, in the model's order.
type ScoreCatalog<'a> = dyn Fn(&[(&[encore_core::Event], encore_core::RerankRequest)]) -> anyhow::Result<Vec<Vec<f32>>>
    + 'a;

/// Runs `encore prompt-tune`.
pub fn prompt_tune(run: &PromptTuneRun) -> anyhow::Result<PromptTuneReport> {
    validate_prompt_name(&run.name).map_err(anyhow::Error::msg)?;
    let mut cfg = ExperimentConfig::read(&run.config)?;
    if let Some(h) = run.holdout {
        cfg.split.holdout = h;
    }
    let prepared = Prepared::new(&cfg, run.config.parent().unwrap_or(Path::new(".")))?;
    let catalog = &prepared.data.catalog;
    run.task.check(catalog).map_err(anyhow::Error::msg)?;
    let bytes =
        std::fs::read(&run.base).with_context(|| format!("cannot read {}", run.base.display()))?;
    let device = run.backend.training_device();
    let base = load_model(&bytes, &device)
        .with_context(|| format!("{} is not a valid bundle", run.base.display()))?;
    anyhow::ensure!(
        base.items.ids() == catalog.ids().as_slice(),
        "{} was trained on another catalog (its items differ from the data's)",
        run.base.display()
    );
    let tokenizer = base.config.tokenizer();
    let train = examples(&prepared.train_set, catalog, &tokenizer, &run.task)?;
    let positions: usize = train.iter().map(|e| e.positions.len()).sum();
    eprintln!(
        "task {:?}: {} windows, {positions} target positions",
        run.name,
        train.len()
    );
    let tune_cfg = PromptTuneConfig {
        temperature: cfg.training.objectives.temperature,
        normalize: cfg.training.objectives.normalize,
        ..run.tune.clone()
    };
    let log = |e: &TuneEpoch| {
        eprintln!(
            "epoch {}: loss {:.4} over {} requests in {:.1} s",
            e.epoch, e.loss, e.requests, e.seconds
        );
    };
    let cases = task_cases(&prepared.cases, catalog, &run.task);
    anyhow::ensure!(!cases.is_empty(), "the task has no held-out cases");
    let host = load_model(&bytes, &Device::flex())?;
    let base_reranker = Reranker::from_bytes(&bytes, &Device::flex())?;
    let rank_with = |reranker: &Reranker, prompt: Option<&str>| {
        ranks_prompted(
            reranker,
            catalog,
            &prepared.train_set,
            &cases,
            &prepared.protocol,
            prompt,
        )
    };
    let model_parameters: usize = host.model.num_params();
    let write = |bytes: &[u8]| -> anyhow::Result<()> {
        write_atomic(&run.out, bytes)
            .with_context(|| format!("cannot write {}", run.out.display()))?;
        println!("wrote {} ({} bytes)", run.out.display(), bytes.len());
        Ok(())
    };
    // The cases ranked by catalog scores computed outside the reranker (every method here
    // keeps the base's items in the base's order).
    let rank_by = |score: &ScoreCatalog| -> anyhow::Result<Vec<usize>> {
        let ranks = ranks_by(
            score,
            base_reranker.items(),
            catalog,
            &prepared.train_set,
            &cases,
            &prepared.protocol,
        )?;
        Ok(ranks.0)
    };
    let started = Instant::now();
    let ks = &prepared.protocol.ks;
    let mut no_history = None;
    let (epochs, tuned_ranks, parameters, bundle_bytes_added) = match run.method {
        TaskMethod::Prompt if tune_cfg.placement == PromptPlacement::BeforeHistory => {
            let TunedPrompt { prompt, epochs } =
                tune(&base.model, &train, &tune_cfg, &device, log)?;
            let parameters: usize = prompt.named_tensors().iter().map(|(_, _, v)| v.len()).sum();
            let ranks = rank_by(&|members| prefixed_scores(&host, &prompt, members))?;
            (epochs, ranks, parameters, 0)
        }
        TaskMethod::Prompt => {
            let TunedPrompt { prompt, epochs } =
                tune(&base.model, &train, &tune_cfg, &device, log)?;
            let parameters: usize = prompt.named_tensors().iter().map(|(_, _, v)| v.len()).sum();
            // The base bundle with the new prompt set among its own.
            let mut prompts: Vec<NamedPromptSet> = host
                .prompts
                .iter()
                .filter(|p| p.name != run.name)
                .cloned()
                .collect();
            let without = host.to_bundle(&prompts, host.quantization);
            prompts.push(NamedPromptSet {
                name: run.name.clone(),
                prompt,
            });
            let out = host.to_bundle(&prompts, host.quantization);
            write(&out)?;
            let reranker = Reranker::from_bytes(&out, &Device::flex())?;
            let ranks = rank_with(&reranker, Some(&run.name))?.0;
            // The same cases as new profiles: the history withheld, the prompt and the
            // request's context alone.
            let bare: Vec<HeldOutEvent> = cases
                .iter()
                .map(|c| HeldOutEvent {
                    history: Vec::new(),
                    ..c.clone()
                })
                .collect();
            let (alone, popular) = ranks_prompted(
                &reranker,
                catalog,
                &prepared.train_set,
                &bare,
                &prepared.protocol,
                Some(&run.name),
            )?;
            no_history = Some(NoHistoryReport {
                prompted: RankingMetrics::from_ranks(&alone, ks),
                most_popular: RankingMetrics::from_ranks(&popular, ks),
                ndcg10_gain: paired::paired_difference(
                    &paired::ndcg_per_case(&alone, 10),
                    &paired::ndcg_per_case(&popular, 10),
                ),
            });
            (
                epochs,
                ranks,
                parameters,
                out.len().saturating_sub(without.len()),
            )
        }
        TaskMethod::FineTune => {
            let (tuned, epochs) =
                fine_tune_on_task(base.model.clone(), &train, &tune_cfg, &device, log)?;
            // A ranker trained on the base model does not serve the tuned one.
            let tuned = encore_core::weights::LoadedModel {
                model: tuned,
                ranker: None,
                ..load_model(&bytes, &Device::flex())?
            };
            let out = tuned.to_bundle(&host.prompts, host.quantization);
            write(&out)?;
            let reranker = Reranker::from_bytes(&out, &Device::flex())?;
            let ranks = rank_with(&reranker, None)?.0;
            (epochs, ranks, model_parameters, 0)
        }
        TaskMethod::LinearHead => {
            let (head, epochs) = linear_head_on_task(&base.model, &train, &tune_cfg, &device, log)?;
            let d = host.config.d_model;
            let ranks = rank_by(&|members| scores_through_head(&base_reranker, &head, members))?;
            (epochs, ranks, d * d + d, 0)
        }
        TaskMethod::TopLayerAndHead => {
            let (tuned, epochs) =
                top_layer_and_head_on_task(base.model.clone(), &train, &tune_cfg, &device, log)?;
            let parameters = tuned.model.blocks.last().map_or(0, |b| b.num_params())
                + tuned.model.layer_mix.num_params()
                + tuned.model.norm.num_params()
                + tuned.head.num_params();
            let model = encore_core::weights::LoadedModel {
                model: tuned.model,
                ranker: None,
                ..load_model(&bytes, &Device::flex())?
            };
            let reranker =
                Reranker::from_bytes(&model.to_bundle(&[], host.quantization), &Device::flex())?;
            let ranks = rank_by(&|members| scores_through_head(&reranker, &tuned.head, members))?;
            (epochs, ranks, parameters, 0)
        }
    };
    let (base_ranks, pop_ranks) = rank_with(&base_reranker, None)?;
    let nd_base = paired::ndcg_per_case(&base_ranks, 10);
    let nd_tuned = paired::ndcg_per_case(&tuned_ranks, 10);
    let report = PromptTuneReport {
        name: run.name.clone(),
        task: format!("{:?}", run.task),
        tune: tune_cfg,
        method: run.method,
        windows: train.len(),
        positions,
        epochs,
        cases: cases.len(),
        base: RankingMetrics::from_ranks(&base_ranks, ks),
        prompted: RankingMetrics::from_ranks(&tuned_ranks, ks),
        most_popular: RankingMetrics::from_ranks(&pop_ranks, ks),
        ndcg10_gain: paired::paired_difference(&nd_tuned, &nd_base),
        prompt_parameters: parameters,
        parameter_share: parameters as f64 / model_parameters.max(1) as f64,
        bundle_bytes_added,
        no_history,
    };
    println!(
        "{} {:?} cases of the task; trained and scored in {:.1} s",
        cases.len(),
        cfg.split.holdout,
        started.elapsed().as_secs_f64()
    );
    print_metrics_row("base", &report.base);
    print_metrics_row(run.method.label(), &report.prompted);
    print_metrics_row("most popular", &report.most_popular);
    let (gain, se) = report.ndcg10_gain;
    println!(
        "NDCG@10 {} − base = {gain:+.4} ± {se:.4} (paired SE); {} parameters trained \
         ({:.3}% of the model's), {} bytes added to the bundle",
        run.method.label(),
        report.prompt_parameters,
        100.0 * report.parameter_share,
        report.bundle_bytes_added
    );
    if let Some(n) = &report.no_history {
        print_metrics_row("no history, prompted", &n.prompted);
        print_metrics_row("no history, most popular", &n.most_popular);
        let (gain, se) = n.ndcg10_gain;
        println!(
            "NDCG@10 with no history, prompted − most popular = {gain:+.4} ± {se:.4} (paired SE)"
        );
    }
    Ok(report)
}
