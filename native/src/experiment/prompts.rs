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
use encore_core::model::NamedPromptSet;
use encore_core::weights::{BundleParts, load_model, save_bundle_with, validate_prompt_name};
use serde::Serialize;

use super::ExperimentConfig;
use super::paired;
use super::prepare::Prepared;
use super::report::print_metrics_row;
use crate::backend::Backend;
use crate::evaluation::ranks_prompted;
use crate::io::write_atomic;
use crate::prompting::{PromptTask, PromptTuneConfig, TunedPrompt, examples, tune};

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
    /// The same model under the new prompt set.
    pub prompted: RankingMetrics,
    /// Most popular on those cases.
    pub most_popular: RankingMetrics,
    /// Mean per-case NDCG@10 difference prompted − base and its paired standard error.
    pub ndcg10_gain: (f64, f64),
    /// Parameters of the prompt set, and their share of the foundation model's.
    pub prompt_parameters: usize,
    /// The prompt's parameters over the model's.
    pub parameter_share: f64,
    /// Bytes the prompt set adds to the bundle.
    pub bundle_bytes_added: usize,
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
    let TunedPrompt { prompt, epochs } = tune(&base.model, &train, &tune_cfg, &device, |e| {
        eprintln!(
            "epoch {}: loss {:.4} over {} requests in {:.1} s",
            e.epoch, e.loss, e.requests, e.seconds
        );
    })?;

    // The base bundle again on the host, with the new prompt set among its own.
    let host = load_model(&bytes, &Device::flex())?;
    let mut prompts: Vec<NamedPromptSet> = host
        .prompts
        .into_iter()
        .filter(|p| p.name != run.name)
        .collect();
    let prompt_parameters: usize = prompt.named_tensors().iter().map(|(_, _, v)| v.len()).sum();
    prompts.push(NamedPromptSet {
        name: run.name.clone(),
        prompt,
    });
    let parts = BundleParts {
        content_encoder: host.content_encoder.as_ref(),
        prompts: &prompts,
    };
    let out = save_bundle_with(
        &host.model,
        &host.config,
        host.items.ids(),
        parts,
        host.quantization,
    );
    let without = save_bundle_with(
        &host.model,
        &host.config,
        host.items.ids(),
        BundleParts {
            prompts: &prompts[..prompts.len() - 1],
            ..parts
        },
        host.quantization,
    );
    write_atomic(&run.out, &out).with_context(|| format!("cannot write {}", run.out.display()))?;
    println!("wrote {} ({} bytes)", run.out.display(), out.len());

    let cases = task_cases(&prepared.cases, catalog, &run.task);
    anyhow::ensure!(!cases.is_empty(), "the task has no held-out cases");
    let reranker = Reranker::from_bytes(&out, &Device::flex())?;
    let started = Instant::now();
    let rank = |prompt: Option<&str>| {
        ranks_prompted(
            &reranker,
            catalog,
            &prepared.train_set,
            &cases,
            &prepared.protocol,
            prompt,
        )
    };
    let (base_ranks, pop_ranks) = rank(None)?;
    let (prompted_ranks, _) = rank(Some(&run.name))?;
    let ks = &prepared.protocol.ks;
    let nd_base = paired::ndcg_per_case(&base_ranks, 10);
    let nd_prompted = paired::ndcg_per_case(&prompted_ranks, 10);
    let model_parameters: usize = host.model.num_params();
    let report = PromptTuneReport {
        name: run.name.clone(),
        task: format!("{:?}", run.task),
        tune: tune_cfg,
        windows: train.len(),
        positions,
        epochs,
        cases: cases.len(),
        base: RankingMetrics::from_ranks(&base_ranks, ks),
        prompted: RankingMetrics::from_ranks(&prompted_ranks, ks),
        most_popular: RankingMetrics::from_ranks(&pop_ranks, ks),
        ndcg10_gain: paired::paired_difference(&nd_prompted, &nd_base),
        prompt_parameters,
        parameter_share: prompt_parameters as f64 / model_parameters.max(1) as f64,
        bundle_bytes_added: out.len().saturating_sub(without.len()),
    };
    println!(
        "{} {:?} cases of the task scored in {:.1} s",
        cases.len(),
        cfg.split.holdout,
        started.elapsed().as_secs_f64()
    );
    print_metrics_row("base", &report.base);
    print_metrics_row("prompted", &report.prompted);
    print_metrics_row("most popular", &report.most_popular);
    let (gain, se) = report.ndcg10_gain;
    println!(
        "NDCG@10 prompted − base = {gain:+.4} ± {se:.4} (paired SE); prompt: {} parameters \
         ({:.3}% of the model's), {} bytes in the bundle",
        report.prompt_parameters,
        100.0 * report.parameter_share,
        report.bundle_bytes_added
    );
    Ok(report)
}
