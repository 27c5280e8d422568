//! `encore ranker`: the contextual ranker trained on impressions generated from an
//! experiment's training events, with a foundation model's features, and measured per task on
//! impressions made from the held-out events (search, home row, more like this) against the
//! foundation model alone, the lexical retriever alone and popularity.
//!
//! Training impressions come from the events the foundation model trained on, so its scores
//! on them are in-sample (the ranker may learn to trust them more than held-out cases
//! warrant); the held-out impressions come from events no model saw.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::tensor::Device;
use encore_core::Reranker;
use encore_core::data::impressions::{
    Impression, ImpressionConfig, ImpressionGenerator, generate_impressions,
};
use encore_core::data::split::Holdout;
use encore_core::metrics::RankingMetrics;
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;

use super::ExperimentConfig;
use super::paired;
use super::prepare::Prepared;
use super::report::print_metrics_row;
use crate::backend::Backend;
use crate::ranking::features::{LEXICAL_COLUMN, POPULARITY_COLUMN};
use crate::ranking::{FeatureBuilder, RankerRows, RankerTrainConfig, logits, train_ranker};

/// The tasks measured.
pub const RANKER_TASKS: [&str; 3] = ["search", "home_row", "more_like_this"];

/// What `encore ranker` runs.
#[derive(Debug, Clone)]
pub struct RankerRun {
    /// The experiment file (data, split).
    pub config: PathBuf,
    /// Replaces the file's holdout.
    pub holdout: Option<Holdout>,
    /// The foundation model's bundle (trained on the same split).
    pub base: PathBuf,
    /// Training impressions used (drawn from all generated).
    pub train_impressions: usize,
    /// Candidates kept per training impression (the engaged one and a sample of the others).
    pub train_candidates: usize,
    /// Impressions per step.
    pub batch_impressions: usize,
    /// Training passes, learning rate, seed.
    pub train: RankerTrainConfig,
}

/// The 1-based rank of the engaged candidate (the first row labelled 1) among `scores`, ties
/// counted half.
fn engaged_rank(scores: &[f32], labels: &[f32]) -> Option<usize> {
    let e = labels.iter().position(|&l| l > 0.5)?;
    let s = scores[e];
    let above = scores.iter().filter(|&&x| x > s).count();
    let ties = scores.iter().filter(|&&x| x == s).count() - 1;
    Some(1 + above + ties / 2)
}

/// Held-out impressions: each held-out event as a search, a home row (the training events'
/// most popular titles) and a "more like this" page (from the member's last training event),
/// where its title is among the candidates; each case its own draw. The previous event is
/// passed only as the page's source: its own impressions are dropped.
fn held_out_impressions(
    prepared: &Prepared,
    train_events: &[encore_core::Event],
) -> Vec<Impression> {
    let catalog = &prepared.data.catalog;
    let mut out = Vec::new();
    for (k, task) in RANKER_TASKS.iter().enumerate() {
        let cfg = ImpressionConfig {
            search_share: f64::from(u8::from(k == 0)),
            row_share: f64::from(u8::from(k == 1)),
            more_like_this_share: f64::from(u8::from(k == 2)),
            ..ImpressionConfig::default()
        };
        let generator = ImpressionGenerator::new(catalog, train_events, cfg);
        for (i, case) in prepared.cases.iter().enumerate() {
            let Some(last) = case.history.last() else {
                continue;
            };
            let mut target = case.target.clone();
            if k > 0 && target.surface == encore_core::Surface::Search {
                // A search-surface event is always drawn as a search; ask it elsewhere.
                target.surface = encore_core::Surface::Home;
            }
            let made = generator.generate(
                &[last.clone(), target.clone()],
                ((k as u64) << 32) + i as u64,
            );
            out.extend(
                made.impressions
                    .into_iter()
                    // The target's own impression (not the previous event's, which may
                    // share its second).
                    .filter(|r| {
                        r.task == *task
                            && r.timestamp == target.timestamp
                            && r.engaged == [target.item]
                    }),
            );
        }
    }
    out
}

/// Runs `encore ranker` and prints the per-task table.
pub fn ranker(run: &RankerRun) -> anyhow::Result<()> {
    let mut cfg = ExperimentConfig::read(&run.config)?;
    if let Some(h) = run.holdout {
        cfg.split.holdout = h;
    }
    let prepared = Prepared::new(&cfg, run.config.parent().unwrap_or(Path::new(".")))?;
    let catalog = &prepared.data.catalog;
    let bytes =
        std::fs::read(&run.base).with_context(|| format!("cannot read {}", run.base.display()))?;
    let reranker = Reranker::from_bytes(&bytes, &Device::flex())
        .with_context(|| format!("{} is not a valid bundle", run.base.display()))?;
    anyhow::ensure!(
        reranker.items().ids() == catalog.ids().as_slice(),
        "{} was trained on another catalog",
        run.base.display()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(run.train.seed);
    // Training impressions from the training events, a sample of them, each with its engaged
    // title and a sample of the others shown.
    let events: Vec<_> = prepared
        .train_set
        .iter()
        .flat_map(|h| h.events.iter().cloned())
        .collect();
    let mut train =
        generate_impressions(catalog, &events, &ImpressionConfig::default()).impressions;
    train.shuffle(&mut rng);
    train.truncate(run.train_impressions);
    for r in &mut train {
        let others: Vec<u32> = r
            .candidates
            .iter()
            .copied()
            .filter(|c| !r.engaged.contains(c))
            .collect();
        let keep = run.train_candidates.saturating_sub(r.engaged.len());
        let mut shown: Vec<u32> = others.sample(&mut rng, keep).copied().collect();
        shown.extend(&r.engaged);
        shown.shuffle(&mut rng);
        r.candidates = shown;
    }
    let tasks: Vec<String> = RANKER_TASKS.iter().map(|t| t.to_string()).collect();
    let builder = FeatureBuilder::new(catalog, &reranker, &prepared.train_set, tasks)?;
    let shape = builder.config();
    let mut batches = Vec::new();
    for chunk in train.chunks(run.batch_impressions.max(1)) {
        let (rows, _) = builder.rows(chunk)?;
        if !rows.is_empty() {
            batches.push(rows);
        }
    }
    eprintln!(
        "{} training impressions in {} batches; ranker width {}",
        train.len(),
        batches.len(),
        shape.width()
    );
    let device = Backend::Cpu.training_device();
    let with_fm = train_ranker(&shape, &batches, &run.train, &device)?;
    let without_fm = train_ranker(
        &shape,
        &batches,
        &RankerTrainConfig {
            alpha: Some(0.0),
            ..run.train.clone()
        },
        &device,
    )?;
    drop(batches);
    // Held-out impressions, scored chunk by chunk.
    let test = held_out_impressions(&prepared, &events);
    let methods = [
        "ranker (α = 1)",
        "ranker (α = 0)",
        "ranker without FM",
        "FM alone",
        "lexical alone",
        "popularity",
    ];
    let ks = [10usize];
    for task in RANKER_TASKS {
        let cases: Vec<Impression> = test.iter().filter(|r| r.task == task).cloned().collect();
        let mut ranks: Vec<Vec<usize>> = vec![Vec::new(); methods.len()];
        for chunk in cases.chunks(64) {
            let (rows, _): (RankerRows, _) = builder.rows(chunk)?;
            let scored = [
                logits(&with_fm, &shape, &rows, 1.0),
                logits(&with_fm, &shape, &rows, 0.0),
                logits(&without_fm, &shape, &rows, 0.0),
                rows.fm_score.clone(),
                rows.dense_column(LEXICAL_COLUMN),
                rows.dense_column(POPULARITY_COLUMN),
            ];
            let mut at = 0;
            for &size in &rows.sizes {
                let labels = &rows.label[at..at + size];
                for (m, s) in scored.iter().enumerate() {
                    if let Some(r) = engaged_rank(&s[at..at + size], labels) {
                        ranks[m].push(r);
                    }
                }
                at += size;
            }
        }
        println!("{task}: {} held-out impressions", ranks[0].len());
        let base = paired::ndcg_per_case(&ranks[0], 10);
        for (m, name) in methods.iter().enumerate() {
            if task != "search" && *name == "lexical alone" {
                continue;
            }
            print_metrics_row(name, &RankingMetrics::from_ranks(&ranks[m], &ks));
            if m > 0 {
                let (g, se) =
                    paired::paired_difference(&base, &paired::ndcg_per_case(&ranks[m], 10));
                println!("    NDCG@10 ranker (α = 1) − {name} = {g:+.4} ± {se:.4}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engaged_rank_counts_higher_scores_and_half_the_ties() {
        let labels = [0.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(engaged_rank(&[0.1, 0.5, 0.9, 0.2, 0.3], &labels), Some(2));
        assert_eq!(engaged_rank(&[0.1, 0.5, 0.5, 0.5, 0.9], &labels), Some(3));
        assert_eq!(engaged_rank(&[0.1, 0.5, 0.4, 0.2, 0.3], &labels), Some(1));
        assert_eq!(engaged_rank(&[0.1, 0.5], &[0.0, 0.0]), None);
    }
}
