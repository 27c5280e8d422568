//! An experiment on Parquet event shards, streamed: every member's held-out event(s) are cut
//! off as the shards are read, training reads them once per epoch in chunks, and the
//! evaluation holds the held-out cases of the first `eval_members` members only.

use std::path::PathBuf;

use encore_core::data::split::{HeldOutEvent, Holdout, LeaveOneOut, MemberHistory};
use encore_core::{Catalog, Reranker};

use super::config::ExperimentConfig;
use super::data_source::read_catalog;
use super::{ExperimentSummary, train_logged};
use crate::backend::Backend;
use crate::evaluation::{EvalProtocol, EvalReport, ranks_against};
use crate::io::event_shards::ShardReader;
use crate::training::{Evaluator, MemberStream, train_streaming};
use encore_core::metrics::RankingMetrics;

/// The training side of a shard directory: each member's events without the held-out ones
/// (the last for `test`, the last two for `validation`; members too short for a case keep all
/// of theirs, as [`LeaveOneOut::split`] does).
pub struct HeldOutShards<'c> {
    /// The shard directory.
    pub dir: PathBuf,
    /// The catalog the items are checked against.
    pub catalog: &'c Catalog,
    /// The split.
    pub split: LeaveOneOut,
}

impl HeldOutShards<'_> {
    /// Members' histories with nothing held out, as read.
    fn read(&self) -> anyhow::Result<ShardReader<'_>> {
        Ok(ShardReader::open(&self.dir, self.catalog)?)
    }

    /// The number of events a member's case holds out.
    fn dropped(&self) -> usize {
        match self.split.holdout {
            Holdout::Test => 1,
            Holdout::Validation => 2,
        }
    }

    /// `h` split into its training events and, when it is long enough, its held-out case.
    fn split_member(&self, mut h: MemberHistory) -> (MemberHistory, Option<HeldOutEvent>) {
        let drop = self.dropped();
        let n = h.events.len();
        if n < drop + 1 {
            return (h, None);
        }
        let target = n - drop;
        let from = target.saturating_sub(self.split.history_window);
        let case = HeldOutEvent {
            member: h.member,
            history: h.events[from..target].to_vec(),
            target: h.events[target].clone(),
        };
        h.events.truncate(target);
        (h, Some(case))
    }

    /// One pass: the held-out cases of the first `members` members that have one, and every
    /// training event's count per catalog row (the most-popular baseline).
    pub fn cases_and_popularity(
        &self,
        members: usize,
    ) -> anyhow::Result<(Vec<HeldOutEvent>, Vec<f32>)> {
        let mut cases = Vec::new();
        let mut counts = vec![0f32; self.catalog.len()];
        for h in self.read()? {
            let (train, case) = self.split_member(h?);
            for e in &train.events {
                if let Some(i) = self.catalog.index_of(e.item) {
                    counts[i] += 1.0;
                }
            }
            if let Some(case) = case.filter(|_| cases.len() < members) {
                cases.push(case);
            }
        }
        Ok((cases, counts))
    }
}

impl MemberStream for HeldOutShards<'_> {
    fn members(
        &self,
    ) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<MemberHistory>> + '_>> {
        Ok(Box::new(
            self.read()?.map(move |h| Ok(self.split_member(h?).0)),
        ))
    }
}

/// Runs an experiment whose data is event shards (see [`super::run_config`]); `shards` is
/// the shard directory, catalog file, windows per chunk and members evaluated.
pub(super) fn run_streamed(
    cfg: &ExperimentConfig,
    (dir, catalog_path, chunk_windows, eval_members): (PathBuf, PathBuf, usize, usize),
    resume: bool,
) -> anyhow::Result<ExperimentSummary> {
    let out = &cfg.run.out;
    let catalog = read_catalog(&catalog_path)?;
    let shards = HeldOutShards {
        dir,
        catalog: &catalog,
        split: LeaveOneOut {
            holdout: cfg.split.holdout,
            history_window: cfg.split.history_window,
        },
    };
    let protocol = EvalProtocol {
        exclude_history: cfg.split.exclude_history.unwrap_or(false),
        ..EvalProtocol::synthetic()
    };
    let (cases, popularity) = shards.cases_and_popularity(eval_members)?;
    eprintln!(
        "{} titles; shards in {}; {} {:?} cases from the first members",
        catalog.len(),
        shards.dir.display(),
        cases.len(),
        cfg.split.holdout
    );
    let evaluate_report = |weights: &[u8]| -> anyhow::Result<EvalReport> {
        let reranker = Reranker::from_bytes(weights, &Backend::Cpu.device())?;
        let (m, p) = ranks_against(
            |members| Ok(reranker.score_catalog(members)?),
            reranker.items(),
            &catalog,
            &popularity,
            &cases,
            &protocol,
        )?;
        Ok(EvalReport {
            model: RankingMetrics::from_ranks(&m, &protocol.ks),
            most_popular: RankingMetrics::from_ranks(&p, &protocol.ks),
        })
    };
    let evaluate = |weights: &[u8]| Ok(evaluate_report(weights)?.model);
    let evaluator = (!cases.is_empty()).then_some(&evaluate as Evaluator<'_>);
    let (trained, train_seconds) = train_logged(cfg, resume, evaluator, |checkpoint, monitor| {
        train_streaming(
            &shards,
            chunk_windows,
            &catalog,
            &cfg.training,
            cfg.run.backend,
            checkpoint,
            monitor,
        )
    })?;
    let report = evaluate_report(&trained.weights)?;
    let summary = ExperimentSummary::of_run(cfg, &trained, train_seconds, cases.len(), report);
    summary.write(out)?;
    Ok(summary)
}
