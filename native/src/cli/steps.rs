//! The single-step subcommands.

use anyhow::Context as _;
use encore_core::data::split::{group_by_member, leave_last_out};
use encore_core::{RerankRequest, Surface};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{EvalArgs, ExportArgs, GenerateArgs, RerankArgs, TrainArgs, show};
use crate::backend::{load_preferred, run_inline};
use crate::evaluation::{evaluate, popularity, pushed_candidates};
use crate::io::write_atomic;
use crate::training::{Checkpoint, CheckpointPolicy, Monitor, TrainedModel, train as train_model};
use encore_core::weights::requantize;

/// `encore generate`.
pub fn generate(a: &GenerateArgs) -> anyhow::Result<()> {
    if a.shards {
        anyhow::ensure!(
            a.data.data.is_none(),
            "--shards writes the synthetic world; to shard a world directory's events, use \
             `encore convert-events`"
        );
        super::shards::generate_shards(&a.data.synthetic(), &a.out, a.rows_per_shard)?;
        return Ok(());
    }
    let (catalog, events) = a.data.load()?;
    let files = crate::io::write_world(&a.out, &catalog, &events)?;
    println!(
        "wrote {} titles to {} and {} events to {}",
        catalog.len(),
        files.catalog.display(),
        events.len(),
        files.events.display()
    );
    Ok(())
}

/// `encore train`: trains on every member's history except the last event (held out for `eval`).
pub fn train(a: &TrainArgs) -> anyhow::Result<TrainedModel> {
    let (catalog, events) = a.data.load()?;
    let (train, _) = leave_last_out(&group_by_member(&events));
    let policy = CheckpointPolicy {
        path: Some(&a.checkpoint),
        resume: a.resume,
    };
    let trained = train_model(
        &train,
        &catalog,
        &a.train.config(),
        a.train.backend,
        policy,
        Monitor {
            show_progress: true,
            ..Default::default()
        },
    )?;
    let last = trained.epochs.last().expect("at least one epoch");
    println!(
        "trained {} epochs (final loss {:.4}); checkpoint at {}",
        trained.epochs.len(),
        last.loss,
        a.checkpoint.display()
    );
    Ok(trained)
}

/// `encore export`.
pub fn export(a: &ExportArgs) -> anyhow::Result<()> {
    let f32_weights = match &a.from_model {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => Checkpoint::read(&a.checkpoint)?.weights,
    };
    // Validates the weights exactly as a device would, then stores them as asked.
    let weights = requantize(&f32_weights, a.dtype).context("invalid model")?;
    write_atomic(&a.out, &weights).with_context(|| format!("cannot write {}", a.out.display()))?;
    println!(
        "wrote weight file {} ({} bytes, {})",
        a.out.display(),
        weights.len(),
        a.dtype.name()
    );
    if let Some(dir) = &a.web_demo {
        let (catalog, events) = a.data.load()?;
        super::demo::write_web_assets(dir, &catalog, &events, &weights)?;
        println!("wrote web demo assets to {}", dir.display());
    }
    Ok(())
}

/// `encore rerank`.
pub fn rerank(a: &RerankArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let (reranker, choice) = load_preferred(&bytes, a.backend)
        .with_context(|| format!("{} is not a valid weight file", a.model.display()))?;
    let (catalog, events) = a.data.load()?;
    let histories = group_by_member(&events);
    let member = a
        .member
        .unwrap_or_else(|| histories.first().map(|h| h.member).unwrap_or(0));
    let history = histories
        .iter()
        .find(|h| h.member == member)
        .with_context(|| format!("member {member} has no events"))?;
    let surface = Surface::from_name(&a.surface).with_context(|| {
        format!(
            "unknown surface {:?} (home, search, kids, mobile_feed)",
            a.surface
        )
    })?;
    let candidates = if a.candidates.is_empty() {
        let pop = popularity(&catalog, &histories);
        let now = history.events.last().map(|e| e.timestamp).unwrap_or(0);
        pushed_candidates(
            &catalog,
            &pop,
            now,
            None,
            a.count,
            &mut ChaCha8Rng::seed_from_u64(u64::from(member)),
        )
    } else {
        a.candidates.clone()
    };
    let start = std::time::Instant::now();
    let ranked =
        run_inline(|| reranker.rerank(&history.events, &candidates, &RerankRequest::on(surface)))?;
    let took = start.elapsed();
    show::history(&catalog, member, &history.events, 8);
    show::before_after(&catalog, &candidates, &ranked, None);
    println!(
        "reranked {} candidates on {} in {:.2} ms ({})",
        candidates.len(),
        choice.backend.name(),
        took.as_secs_f64() * 1e3,
        choice.reason
    );
    Ok(())
}

/// `encore eval`.
pub fn eval(a: &EvalArgs) -> anyhow::Result<()> {
    if let Some(config) = &a.config {
        let weights = std::fs::read(&a.model)
            .with_context(|| format!("cannot read {}", a.model.display()))?;
        let against = a
            .against
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .map(|bytes| (p.display().to_string(), bytes))
                    .with_context(|| format!("cannot read {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        return crate::experiment::evaluate_file(
            config,
            a.holdout,
            a.withhold_items,
            a.pushed_unknown_share,
            &weights,
            &against,
            a.backend,
        );
    }
    let reranker = crate::load_reranker(&a.model, a.backend)?;
    let (catalog, events) = a.data.load()?;
    let (train, test) = leave_last_out(&group_by_member(&events));
    let report = evaluate(&reranker, &catalog, &train, &test)?;
    show::metrics(&report, test.len());
    Ok(())
}
