//! Impressions → the ranker's input rows with one foundation model's features, through the
//! featurization the device runs too ([`encore_core::ranker::features`]): each impression's
//! context checked against the [`RankerVocabulary`], the member's history before the request
//! through the foundation model, then one row per candidate.

use std::collections::HashMap;

use anyhow::Context as _;
use encore_core::data::impressions::{Impression, TitleIndex};
use encore_core::data::split::MemberHistory;
use encore_core::ranker::{RankerConfig, RankerRows, RankerVocabulary};
use encore_core::{Catalog, Event, RerankRequest, Reranker, Surface};

/// Builds [`RankerRows`] from impressions with one foundation model's features.
pub struct FeatureBuilder<'a> {
    reranker: &'a Reranker,
    items: Vec<f32>,
    index: TitleIndex,
    /// What the features are read against (task names, countries, the model's titles).
    pub vocabulary: RankerVocabulary,
    histories: HashMap<u32, &'a [Event]>,
}

impl<'a> FeatureBuilder<'a> {
    /// Features over `reranker`'s item rows (each looked up in `catalog`); members' histories
    /// from `histories` (each in time order), popularity and countries from them too; the
    /// tasks known are `tasks`.
    pub fn new(
        catalog: &Catalog,
        reranker: &'a Reranker,
        histories: &'a [MemberHistory],
        tasks: Vec<String>,
    ) -> anyhow::Result<Self> {
        let vocabulary = RankerVocabulary::new(
            catalog,
            reranker.items(),
            histories.iter().flat_map(|h| h.events.iter()),
            tasks,
        )
        .map_err(|id| anyhow::anyhow!("item {id} of the model is not in the catalog"))?;
        Ok(Self {
            items: reranker.item_vectors()?,
            index: vocabulary.title_index(),
            vocabulary,
            reranker,
            histories: histories
                .iter()
                .map(|h| (h.member, h.events.as_slice()))
                .collect(),
        })
    }

    /// The ranker's shape for these features (its other sizes at their defaults).
    pub fn config(&self) -> RankerConfig {
        self.vocabulary.config(self.reranker.config().d_model)
    }

    /// The member's events before `t`.
    fn history_before(&self, member: u32, t: i64) -> &'a [Event] {
        let events = self.histories.get(&member).copied().unwrap_or(&[]);
        &events[..events.partition_point(|e| e.timestamp < t)]
    }

    /// Rows of the impressions whose member has a history before the request (the others are
    /// left out; the returned list says which were kept), each request at α = 1.
    pub fn rows(&self, impressions: &[Impression]) -> anyhow::Result<(RankerRows, Vec<usize>)> {
        let cfg = self.config();
        let mut out = RankerRows::default();
        let mut kept = Vec::new();
        let mut members = Vec::new();
        for (i, r) in impressions.iter().enumerate() {
            let history = self.history_before(r.member, r.timestamp);
            if history.is_empty() {
                continue;
            }
            let request = RerankRequest {
                surface: r.surface.unwrap_or(Surface::Home),
                timestamp: Some(r.timestamp),
                device: r.device,
                country: r.country.clone(),
                prompt: None,
            };
            members.push((history, request));
            kept.push(i);
        }
        let mut users = Vec::with_capacity(members.len());
        for chunk in members.chunks(128) {
            users.extend(self.reranker.user_representations(chunk)?);
        }
        let model_items = self.reranker.items();
        for (&i, user) in kept.iter().zip(&users) {
            let r = &impressions[i];
            let request = self
                .vocabulary
                .request(
                    &r.context().with_alpha(1.0),
                    model_items,
                    &self.index,
                    cfg.query_buckets,
                    r.timestamp,
                )
                .with_context(|| format!("impression {i}"))?;
            let mut candidates = Vec::with_capacity(r.candidates.len());
            for &c in &r.candidates {
                let row = model_items.index_of(c).with_context(|| {
                    format!("candidate {c} of impression {i} is unknown to the model")
                })?;
                candidates.push(row);
            }
            let engaged: Vec<usize> = r
                .engaged
                .iter()
                .filter_map(|&e| model_items.index_of(e))
                .collect();
            self.vocabulary
                .push_rows(&mut out, &request, &candidates, &self.items, user, |row| {
                    engaged.contains(&row)
                });
        }
        Ok((out, kept))
    }
}
