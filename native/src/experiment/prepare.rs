//! An experiment's data made ready: loaded, split leave-one-out, titles withheld for the
//! cold-start experiment, MovieLens arrival times taken from the training events, and the
//! evaluation protocol chosen.

use std::collections::HashSet;
use std::path::Path;

use encore_core::Reranker;
use encore_core::data::movielens;
use encore_core::data::split::{HeldOutEvent, LeaveOneOut, MemberHistory, group_by_member};
use encore_core::metrics::RankingMetrics;
use encore_core::runtime::Candidate;
use encore_core::weights::{load_model, retain_items};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Dataset, ExperimentConfig};
use crate::evaluation::{EvalProtocol, EvalReport, evaluate_with, ranks, request_of};

/// The titles withheld for the cold-start experiment.
fn withheld_items(data: &Dataset, share: f64, seed: u64) -> HashSet<u32> {
    if share <= 0.0 {
        return HashSet::new();
    }
    let mut ids = data.catalog.ids();
    ids.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = ((ids.len() as f64) * share).round() as usize;
    ids.into_iter().take(n).collect()
}

/// An experiment's data, split and protocol, ready for training or evaluation.
pub(super) struct Prepared {
    pub(super) data: Dataset,
    pub(super) train_set: Vec<MemberHistory>,
    pub(super) cases: Vec<HeldOutEvent>,
    pub(super) withheld: HashSet<u32>,
    pub(super) protocol: EvalProtocol,
}

impl Prepared {
    /// Loads the data (paths relative to `base`), splits it and withholds titles as `cfg` says.
    pub(super) fn new(cfg: &ExperimentConfig, base: &Path) -> anyhow::Result<Self> {
        let data = cfg.data.load(base)?;
        if data.skipped_lines > 0 {
            eprintln!("skipped {} malformed lines", data.skipped_lines);
        }
        let histories = group_by_member(&data.events);
        let split = LeaveOneOut {
            holdout: cfg.split.holdout,
            history_window: cfg.split.history_window,
        };
        let (mut train_set, cases) = split.split(&histories);
        let withheld = withheld_items(&data, cfg.run.withhold_items, cfg.run.withhold_seed);
        if !withheld.is_empty() {
            for h in &mut train_set {
                h.events.retain(|e| !withheld.contains(&e.item));
            }
            train_set.retain(|h| !h.events.is_empty());
        }
        let mut data = data;
        if cfg.data.is_movielens() {
            // MovieLens titles arrive with their first rating: count the training events only,
            // so that held-out targets and withheld titles leave no trace in a title's age.
            movielens::set_arrival_times(
                &mut data.catalog,
                train_set.iter().flat_map(|h| &h.events),
            );
        }
        if !withheld.is_empty() {
            // Withheld titles stand for titles that join the catalog after the model's training
            // data ends: they arrive just after its last event, so that training does not hold
            // them in its catalog (uniform negatives are drawn among the titles that had
            // arrived), and a device measures their age as a new title's.
            let last = train_set
                .iter()
                .flat_map(|h| &h.events)
                .map(|e| e.timestamp)
                .max()
                .unwrap_or(0);
            for item in &mut data.catalog.items {
                if withheld.contains(&item.id) {
                    item.added_at = item.added_at.max(last.saturating_add(1));
                }
            }
        }
        let mut protocol = if cfg.data.is_movielens() {
            EvalProtocol::leave_one_out()
        } else {
            EvalProtocol::synthetic()
        };
        if let Some(exclude) = cfg.split.exclude_history {
            protocol.exclude_history = exclude;
        }
        eprintln!(
            "{} titles, {} members, {} events; {} training members, {} {:?} cases{}",
            data.catalog.len(),
            histories.len(),
            data.events.len(),
            train_set.len(),
            cases.len(),
            cfg.split.holdout,
            if withheld.is_empty() {
                String::new()
            } else {
                format!(", {} titles withheld", withheld.len())
            }
        );
        Ok(Self {
            data,
            train_set,
            cases,
            withheld,
            protocol,
        })
    }

    /// The model's and the most-popular baseline's metrics on every case.
    pub(super) fn evaluate(&self, reranker: &Reranker) -> anyhow::Result<EvalReport> {
        Ok(evaluate_with(
            reranker,
            &self.data.catalog,
            &self.train_set,
            &self.cases,
            &self.protocol,
        )?)
    }

    /// Each case's rank of its target under `reranker` (the protocol's ranking).
    pub(super) fn ranks(&self, reranker: &Reranker) -> anyhow::Result<Vec<usize>> {
        Ok(ranks(
            reranker,
            &self.data.catalog,
            &self.train_set,
            &self.cases,
            &self.protocol,
        )?
        .0)
    }

    /// Metrics on the cases whose target is a withheld title (cold start), if any.
    pub(super) fn withheld_metrics(
        &self,
        reranker: &Reranker,
    ) -> anyhow::Result<Option<RankingMetrics>> {
        if self.withheld.is_empty() {
            return Ok(None);
        }
        let cold: Vec<HeldOutEvent> = self
            .cases
            .iter()
            .filter(|c| self.withheld.contains(&c.target.item))
            .cloned()
            .collect();
        let (m, _) = ranks(
            reranker,
            &self.data.catalog,
            &self.train_set,
            &cold,
            &self.protocol,
        )?;
        Ok(Some(RankingMetrics::from_ranks(&m, &self.protocol.ks)))
    }
}

/// Cold start on the device: every case ranked by a bundle that does not contain the withheld
/// titles, each pushed with its catalog metadata among every other title (the history's
/// events of withheld titles embedded from the same metadata); metrics over the cases whose
/// target is withheld, and over all cases (a pushed title that outranks everything would
/// win the first and lose the second).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushedColdStart {
    /// Metrics over the cases whose target is a withheld title.
    pub metrics: RankingMetrics,
    /// Cases whose target is a withheld title.
    pub cases: usize,
    /// Metrics over every case (warm targets too: pushed titles compete with them).
    pub all_cases: RankingMetrics,
    /// Titles pushed with metadata to every case.
    pub pushed_titles: usize,
}

impl Prepared {
    /// [`PushedColdStart`] of an exported weight file (`None` without withheld titles, or for
    /// a bundle without an item content encoder); `unknown_share` replaces the unknown-ID gate's
    /// share of the unknown vector (an experiment; `None`: the model's own vectors). The protocol's exclusions are applied to
    /// the ranks (every title is a candidate, so that the history's withheld titles are
    /// described).
    pub(super) fn withheld_on_device(
        &self,
        weights: &[u8],
        unknown_share: Option<f32>,
    ) -> anyhow::Result<Option<PushedColdStart>> {
        if self.withheld.is_empty() {
            return Ok(None);
        }
        let loaded = load_model(weights, &burn::tensor::Device::flex())?;
        if loaded.content_encoder.is_none() {
            return Ok(None);
        }
        let before = retain_items(loaded, |id| !self.withheld.contains(&id));
        let mut reranker = Reranker::new(before.model, before.config, before.items);
        if let Some(mut encoder) = before.content_encoder {
            encoder.unknown_share = unknown_share;
            reranker = reranker.with_content_encoder(encoder);
        }
        let catalog = &self.data.catalog;
        let candidates: Vec<Candidate> = catalog
            .items
            .iter()
            .map(|item| match self.withheld.contains(&item.id) {
                true => Candidate::with_metadata(
                    item.id,
                    catalog.metadata(item.id).expect("in catalog"),
                ),
                false => Candidate::known(item.id),
            })
            .collect();
        let (mut ranks, mut cold) = (Vec::new(), Vec::new());
        for case in &self.cases {
            let target = case.target.item;
            let excluded: HashSet<u32> = self
                .protocol
                .excluded(&case.history, target)
                .into_iter()
                .collect();
            let ranked =
                reranker.rerank_pushed(&case.history, &candidates, &request_of(&case.target))?;
            let score = ranked
                .iter()
                .find(|s| s.item == target)
                .map(|s| s.score)
                .expect("the target is a candidate");
            let rank = 1 + ranked
                .iter()
                .filter(|s| s.score > score && !excluded.contains(&s.item))
                .count();
            ranks.push(rank);
            if self.withheld.contains(&target) {
                cold.push(rank);
            }
        }
        Ok(Some(PushedColdStart {
            metrics: RankingMetrics::from_ranks(&cold, &self.protocol.ks),
            cases: cold.len(),
            all_cases: RankingMetrics::from_ranks(&ranks, &self.protocol.ks),
            pushed_titles: self.withheld.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::DataSource;
    use encore_core::data::split::Holdout;

    /// A MovieLens title's arrival comes from the training events: one rated only as a
    /// held-out target, or withheld for cold start, gets no age from its own ratings.
    #[test]
    fn movielens_arrival_times_come_from_training_events_only() {
        let dir = std::env::temp_dir().join(format!("encore-arrival-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("movies.dat"),
            "1::A (1990)::Drama\n2::B (1991)::Drama\n3::C (1992)::Drama\n4::D (1993)::Drama\n",
        )
        .unwrap();
        // Member 1: 1, 2, 3 (validation target 2, test target 3); member 2: 1, 4, 1.
        std::fs::write(
            dir.join("ratings.dat"),
            "1::1::5::100\n1::2::5::200\n1::3::5::300\n2::1::4::110\n2::4::4::120\n2::1::3::400\n",
        )
        .unwrap();
        let mut cfg = ExperimentConfig {
            data: DataSource::Movielens1m {
                dir: dir.clone(),
                text_embeddings: false,
                skip_bad_lines: false,
            },
            ..Default::default()
        };
        let arrivals = |cfg: &ExperimentConfig| {
            let p = Prepared::new(cfg, Path::new(".")).unwrap();
            [1, 2, 3, 4].map(|id| p.data.catalog.get(id).unwrap().added_at)
        };
        // Validation: training keeps events at 100 and 110 (each member's last two held out).
        cfg.split.holdout = Holdout::Validation;
        assert_eq!(arrivals(&cfg), [100, 110, 110, 110]);
        // Test: the validation targets (200, 120) join training; title 3 is rated only at 300.
        cfg.split.holdout = Holdout::Test;
        assert_eq!(arrivals(&cfg), [100, 200, 200, 120]);
        // A withheld title arrives just after the last kept training event; a kept title
        // with its first kept rating, or with the last kept event when it has none (title 3).
        cfg.run.withhold_items = 0.5;
        let withheld = Prepared::new(&cfg, Path::new(".")).unwrap().withheld;
        assert_eq!(withheld.len(), 2);
        let training = [(1u32, 100i64), (2, 200), (1, 110), (4, 120)];
        let kept: Vec<(u32, i64)> = training
            .into_iter()
            .filter(|(id, _)| !withheld.contains(id))
            .collect();
        let last = kept.iter().map(|&(_, t)| t).max().unwrap_or(0);
        let expected = [1u32, 2, 3, 4].map(|id| {
            if withheld.contains(&id) {
                last + 1
            } else {
                kept.iter()
                    .filter(|&&(i, _)| i == id)
                    .map(|&(_, t)| t)
                    .min()
                    .unwrap_or(last)
            }
        });
        assert_eq!(arrivals(&cfg), expected, "withheld {withheld:?}");
        // Withholding every title leaves no training event: all arrive just after time 0.
        cfg.run.withhold_items = 1.0;
        assert_eq!(arrivals(&cfg), [1, 1, 1, 1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn withheld_titles_are_a_fixed_share_chosen_by_seed() {
        let data = DataSource::default().load(Path::new(".")).unwrap();
        let a = withheld_items(&data, 0.1, 1);
        assert_eq!(a.len(), data.catalog.len() / 10);
        assert_eq!(a, withheld_items(&data, 0.1, 1));
        assert_ne!(a, withheld_items(&data, 0.1, 2));
        assert!(withheld_items(&data, 0.0, 1).is_empty());
    }
}
