//! Held-out next-event evaluation of a reranker against the most-popular baseline, and the
//! "pushed candidates" a server would send.

use encore_core::data::split::{HeldOutEvent, MemberHistory};
use encore_core::metrics::{RankingMetrics, rank_of};
use encore_core::{Catalog, RerankRequest, Reranker, tokenizer::Context};
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::HashSet;

/// Cut-offs reported by [`evaluate`].
pub const KS: [usize; 3] = [1, 10, 50];

/// Model and baseline metrics on the same held-out events.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The foundation model's full-catalog ranking.
    pub model: RankingMetrics,
    /// Ranking every member by training-set popularity.
    pub most_popular: RankingMetrics,
}

/// Training-set play counts per catalog row.
pub fn popularity(catalog: &Catalog, train: &[MemberHistory]) -> Vec<f32> {
    let mut counts = vec![0f32; catalog.len()];
    for e in train.iter().flat_map(|h| &h.events) {
        if let Some(i) = catalog.index_of(e.item) {
            counts[i] += 1.0;
        }
    }
    counts
}

/// The request a held-out event was served under (its surface, time, device and country).
pub fn request_of(target: &encore_core::Event) -> RerankRequest {
    let c = Context::of(target);
    RerankRequest {
        surface: c.surface,
        timestamp: Some(c.timestamp),
        device: Some(c.device),
        country: Some(c.country),
        prompt: None,
    }
}

/// How held-out cases are ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalProtocol {
    /// Cut-offs for HR and NDCG.
    pub ks: Vec<usize>,
    /// Exclude the items of each case's history from its ranking (the MovieLens protocol).
    pub exclude_history: bool,
}

impl EvalProtocol {
    /// The items a case's ranking skips: its history's, except the target (none when the
    /// protocol keeps the history).
    pub fn excluded(&self, history: &[encore_core::Event], target: u32) -> Vec<u32> {
        if !self.exclude_history {
            return Vec::new();
        }
        history
            .iter()
            .map(|e| e.item)
            .filter(|&id| id != target)
            .collect()
    }

    /// The synthetic world's protocol: nothing excluded (re-watching and the next episode are
    /// real next events), K = 1, 10, 50.
    pub fn synthetic() -> Self {
        Self {
            ks: KS.to_vec(),
            exclude_history: false,
        }
    }

    /// The MovieLens leave-one-out protocol: history items excluded, K = 10, 50, 200.
    pub fn leave_one_out() -> Self {
        Self {
            ks: vec![10, 50, 200],
            exclude_history: true,
        }
    }
}

/// Ranks of each held-out target among all catalog items (rank = 1 + items scoring strictly
/// higher, history items skipped when the protocol says so), for the model and the
/// most-popular baseline: (model ranks, most-popular ranks).
pub fn ranks(
    reranker: &Reranker,
    catalog: &Catalog,
    train: &[MemberHistory],
    test: &[HeldOutEvent],
    protocol: &EvalProtocol,
) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    ranks_prompted(reranker, catalog, train, test, protocol, None)
}

/// [`ranks`] with every case's request under the prompt set named `prompt`, when given.
pub fn ranks_prompted(
    reranker: &Reranker,
    catalog: &Catalog,
    train: &[MemberHistory],
    test: &[HeldOutEvent],
    protocol: &EvalProtocol,
    prompt: Option<&str>,
) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    ranks_by(
        |members| {
            let members: Vec<_> = members
                .iter()
                .map(|(h, r)| {
                    let mut request = r.clone();
                    request.prompt = prompt.map(str::to_string);
                    (*h, request)
                })
                .collect();
            Ok(reranker.score_catalog(&members)?)
        },
        reranker.items(),
        catalog,
        train,
        test,
        protocol,
    )
}

/// [`ranks`] with the catalog scores of each chunk of cases from `score_catalog` (history and
/// request per case → one score per item of `items`, in its order).
pub fn ranks_by(
    score_catalog: impl Fn(&[(&[encore_core::Event], RerankRequest)]) -> anyhow::Result<Vec<Vec<f32>>>,
    items: &encore_core::data::catalog::ItemVocabulary,
    catalog: &Catalog,
    train: &[MemberHistory],
    test: &[HeldOutEvent],
    protocol: &EvalProtocol,
) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    let pop = popularity(catalog, train);
    ranks_against(score_catalog, items, catalog, &pop, test, protocol)
}

/// [`ranks_by`] with the most-popular baseline's scores given (`pop`, one per catalog row):
/// for training data that is streamed rather than held.
pub fn ranks_against(
    score_catalog: impl Fn(&[(&[encore_core::Event], RerankRequest)]) -> anyhow::Result<Vec<Vec<f32>>>,
    items: &encore_core::data::catalog::ItemVocabulary,
    catalog: &Catalog,
    pop: &[f32],
    test: &[HeldOutEvent],
    protocol: &EvalProtocol,
) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    let mut model_ranks = Vec::with_capacity(test.len());
    let mut pop_ranks = Vec::with_capacity(test.len());
    for chunk in test.chunks(128) {
        let members: Vec<_> = chunk
            .iter()
            .map(|h| (h.history.as_slice(), request_of(&h.target)))
            .collect();
        let scores = score_catalog(&members)?;
        for (h, s) in chunk.iter().zip(scores) {
            // The model's scores are in its own item order, popularity in the catalog's: each
            // index (target and exclusions) is looked up by id in the order it applies to.
            let item = h.target.item;
            let target = items
                .index_of(item)
                .ok_or_else(|| anyhow::anyhow!("held-out item {item} unknown to the model"))?;
            let target_row = catalog
                .index_of(item)
                .ok_or_else(|| anyhow::anyhow!("held-out item {item} not in the catalog"))?;
            let history_ids = protocol.excluded(&h.history, item);
            let excluded_model: HashSet<usize> = history_ids
                .iter()
                .filter_map(|&id| items.index_of(id))
                .collect();
            let excluded_catalog: HashSet<usize> = history_ids
                .iter()
                .filter_map(|&id| catalog.index_of(id))
                .collect();
            model_ranks.push(rank_of(&s, target, |i| excluded_model.contains(&i)));
            pop_ranks.push(rank_of(pop, target_row, |i| excluded_catalog.contains(&i)));
        }
    }
    Ok((model_ranks, pop_ranks))
}

/// Model and most-popular metrics on held-out events under `protocol`.
pub fn evaluate_with(
    reranker: &Reranker,
    catalog: &Catalog,
    train: &[MemberHistory],
    test: &[HeldOutEvent],
    protocol: &EvalProtocol,
) -> anyhow::Result<EvalReport> {
    let (m, p) = ranks(reranker, catalog, train, test, protocol)?;
    Ok(EvalReport {
        model: RankingMetrics::from_ranks(&m, &protocol.ks),
        most_popular: RankingMetrics::from_ranks(&p, &protocol.ks),
    })
}

/// [`evaluate_with`] under the synthetic protocol.
pub fn evaluate(
    reranker: &Reranker,
    catalog: &Catalog,
    train: &[MemberHistory],
    test: &[HeldOutEvent],
) -> anyhow::Result<EvalReport> {
    evaluate_with(reranker, catalog, train, test, &EvalProtocol::synthetic())
}

/// What a server would push for a member: `n` titles available at the request time, drawn by
/// popularity, always including `must_include`; returned in the server's order (most popular first).
pub fn pushed_candidates(
    catalog: &Catalog,
    pop: &[f32],
    at: i64,
    must_include: Option<u32>,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let mut chosen: Vec<usize> = must_include
        .and_then(|id| catalog.index_of(id))
        .into_iter()
        .collect();
    let available: Vec<usize> = (0..catalog.len())
        .filter(|&i| catalog.items[i].added_at <= at && !chosen.contains(&i))
        .collect();
    let wanted = n.saturating_sub(chosen.len());
    let drawn = available
        .sample_weighted(rng, wanted, |&i| f64::from(pop[i]) + 1.0)
        .expect("positive finite weights");
    chosen.extend(drawn.copied());
    chosen.sort_by(|&a, &b| pop[b].total_cmp(&pop[a]).then(a.cmp(&b)));
    chosen.into_iter().map(|i| catalog.items[i].id).collect()
}
