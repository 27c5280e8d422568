//! Impressions → the ranker's input rows: the request's context, the query's hashed features,
//! the source title's and each candidate's item vector, the candidate's metadata, popularity
//! and lexical match, and the member's user representation and foundation-model score.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use encore_core::data::events::{DeviceType, Surface, hour_of_day, weekday};
use encore_core::data::impressions::{Impression, TitleIndex};
use encore_core::ranker::{RankerConfig, RankerInput, query_features};
use encore_core::{Catalog, Event, ItemKind, RerankRequest, Reranker};

/// Query features kept per request.
pub const QUERY_FEATURES: usize = 32;
/// Place of the popularity feature in a row's dense features, counted from the end (1 = last).
pub const POPULARITY_COLUMN: usize = 2;
/// Place of the lexical match (0 without a query) in a row's dense features, from the end.
pub const LEXICAL_COLUMN: usize = 1;
/// Hours and weekdays are context fields too.
const HOURS: usize = 24;
const WEEKDAYS: usize = 7;

/// Everything the rows of one batch of impressions hold, in host memory (see [`RankerInput`]
/// for the shapes); `rows` = the impressions' candidates, one after another.
#[derive(Debug, Clone, Default)]
pub struct RankerRows {
    /// Rows per impression, in order.
    pub sizes: Vec<usize>,
    /// Task per row.
    pub task: Vec<i64>,
    /// Context per row (`fields` values each).
    pub context: Vec<i64>,
    /// Query buckets per row ([`QUERY_FEATURES`] each).
    pub query: Vec<i64>,
    /// Source vector per row.
    pub source: Vec<f32>,
    /// 1 where there is a source title.
    pub has_source: Vec<f32>,
    /// Candidate vector per row.
    pub candidate: Vec<f32>,
    /// Dense features per row: genres (multi-hot), kind (one-hot), release year, then
    /// [`POPULARITY_COLUMN`] and [`LEXICAL_COLUMN`] from the end.
    pub dense: Vec<f32>,
    /// User representation per row.
    pub user: Vec<f32>,
    /// Foundation-model score per row.
    pub fm_score: Vec<f32>,
    /// 1 for an engaged candidate.
    pub label: Vec<f32>,
}

impl RankerRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.task.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.task.is_empty()
    }

    /// One dense feature of every row, `from_end` places from the row's end
    /// ([`POPULARITY_COLUMN`], [`LEXICAL_COLUMN`]).
    pub fn dense_column(&self, from_end: usize) -> Vec<f32> {
        let n = self.len();
        if n == 0 {
            return Vec::new();
        }
        let width = self.dense.len() / n;
        self.dense
            .chunks(width)
            .map(|d| d[width - from_end])
            .collect()
    }

    /// The rows as the ranker's input on `device`, personalization weighted by `alpha` (one
    /// per impression).
    pub fn input(&self, cfg: &RankerConfig, alpha: &[f32], device: &Device) -> RankerInput {
        let n = self.len();
        let floats = |v: &[f32], cols: usize| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [n, cols]), device)
        };
        let alpha: Vec<f32> = self
            .sizes
            .iter()
            .zip(alpha)
            .flat_map(|(&s, &a)| std::iter::repeat_n(a, s))
            .collect();
        RankerInput {
            task: Tensor::<1, Int>::from_data(TensorData::new(self.task.clone(), [n]), device),
            context: Tensor::<2, Int>::from_data(
                TensorData::new(self.context.clone(), [n, cfg.context_fields.len()]),
                device,
            ),
            query: Tensor::<2, Int>::from_data(
                TensorData::new(self.query.clone(), [n, QUERY_FEATURES]),
                device,
            ),
            source: floats(&self.source, cfg.d_item),
            has_source: Tensor::<1>::from_data(
                TensorData::new(self.has_source.clone(), [n]),
                device,
            ),
            candidate: floats(&self.candidate, cfg.d_item),
            dense: floats(&self.dense, cfg.n_dense),
            user: floats(&self.user, cfg.d_user),
            fm_score: Tensor::<1>::from_data(TensorData::new(self.fm_score.clone(), [n]), device),
            alpha: Tensor::<1>::from_data(TensorData::new(alpha, [n]), device),
        }
    }
}

/// Builds [`RankerRows`] from impressions with one foundation model's features.
pub struct FeatureBuilder<'a> {
    catalog: &'a Catalog,
    reranker: &'a Reranker,
    items: Vec<f32>,
    index: TitleIndex,
    /// Task names; a row's task is its index.
    pub tasks: Vec<String>,
    countries: Vec<String>,
    languages: Vec<String>,
    popularity: Vec<f32>,
    histories: HashMap<u32, &'a [Event]>,
}

impl<'a> FeatureBuilder<'a> {
    /// Features over `catalog` from `reranker`'s model; members' histories from `histories`
    /// (each in time order), popularity from them too; the tasks, countries and languages
    /// known are `tasks` and the catalog's and histories' own.
    pub fn new(
        catalog: &'a Catalog,
        reranker: &'a Reranker,
        histories: &'a [encore_core::data::split::MemberHistory],
        tasks: Vec<String>,
    ) -> anyhow::Result<Self> {
        let items = reranker.item_vectors()?;
        let mut popularity = vec![0f32; catalog.items.len()];
        let mut countries: Vec<String> = Vec::new();
        for h in histories {
            for e in &h.events {
                if let Some(r) = catalog.index_of(e.item) {
                    popularity[r] += 1.0;
                }
                if !countries.contains(&e.country) {
                    countries.push(e.country.clone());
                }
            }
        }
        countries.sort();
        let top = popularity.iter().copied().fold(1f32, f32::max).ln_1p();
        for p in &mut popularity {
            *p = p.ln_1p() / top;
        }
        let mut languages: Vec<String> = catalog.items.iter().map(|i| i.language.clone()).collect();
        languages.sort();
        languages.dedup();
        Ok(Self {
            catalog,
            reranker,
            items,
            index: TitleIndex::new(catalog),
            tasks,
            countries,
            languages,
            popularity,
            histories: histories
                .iter()
                .map(|h| (h.member, h.events.as_slice()))
                .collect(),
        })
    }

    /// The ranker's shape for these features (its other sizes at their defaults).
    pub fn config(&self) -> RankerConfig {
        let d = self.reranker.config().d_model;
        RankerConfig::new(
            self.tasks.len().max(1),
            vec![
                self.countries.len(),
                self.languages.len(),
                Surface::ALL.len(),
                DeviceType::ALL.len(),
                HOURS,
                WEEKDAYS,
            ],
            d,
            d,
            self.n_dense(),
        )
        .with_query_buckets(4096)
    }

    fn n_dense(&self) -> usize {
        self.catalog.genres.len() + ItemKind::ALL.len() + 3
    }

    /// The member's events before `t`.
    fn history_before(&self, member: u32, t: i64) -> &'a [Event] {
        let events = self.histories.get(&member).copied().unwrap_or(&[]);
        &events[..events.partition_point(|e| e.timestamp < t)]
    }

    /// Rows of the impressions whose member has a history before the request (the others are
    /// left out; the returned list says which were kept).
    pub fn rows(&self, impressions: &[Impression]) -> anyhow::Result<(RankerRows, Vec<usize>)> {
        let d = self.reranker.config().d_model;
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
        let field = |list: &[String], v: &Option<String>| -> i64 {
            v.as_ref()
                .and_then(|v| list.iter().position(|x| x == v))
                .map_or(0, |p| p as i64 + 1)
        };
        for (&i, user) in kept.iter().zip(&users) {
            let r = &impressions[i];
            let task = self.tasks.iter().position(|t| *t == r.task).unwrap_or(0) as i64;
            let t = r.timestamp;
            let context = [
                field(&self.countries, &r.country),
                field(&self.languages, &r.language),
                r.surface.map_or(0, |s| s.index() as i64 + 1),
                r.device.map_or(0, |d| d.index() as i64 + 1),
                i64::from(hour_of_day(t)) + 1,
                i64::from(weekday(t)) + 1,
            ];
            let mut query = r
                .query
                .as_deref()
                .map(|q| query_features(q, cfg.query_buckets as u32, QUERY_FEATURES))
                .unwrap_or_default();
            query.resize(QUERY_FEATURES, 0);
            let lexical = r.query.as_deref().map(|q| self.index.scores(q));
            let best = lexical
                .as_ref()
                .map(|s| {
                    r.candidates
                        .iter()
                        .filter_map(|&c| self.catalog.index_of(c).map(|row| s[row]))
                        .fold(0f32, f32::max)
                })
                .unwrap_or(0.0)
                .max(1e-6);
            let source = r.source.and_then(|s| self.reranker.items().index_of(s));
            let vector = |row: usize| &self.items[row * d..(row + 1) * d];
            out.sizes.push(r.candidates.len());
            for &c in &r.candidates {
                let (Some(crow), Some(mrow)) =
                    (self.catalog.index_of(c), self.reranker.items().index_of(c))
                else {
                    anyhow::bail!("candidate {c} of impression {i} is unknown to the model");
                };
                let item = &self.catalog.items[crow];
                out.task.push(task);
                out.context.extend(context);
                out.query.extend(query.iter().map(|&q| i64::from(q)));
                match source {
                    Some(s) => {
                        out.source.extend_from_slice(vector(s));
                        out.has_source.push(1.0);
                    }
                    None => {
                        out.source.extend(std::iter::repeat_n(0.0, d));
                        out.has_source.push(0.0);
                    }
                }
                let v = vector(mrow);
                out.candidate.extend_from_slice(v);
                out.user.extend_from_slice(user);
                out.fm_score
                    .push(v.iter().zip(user).map(|(a, b)| a * b).sum::<f32>());
                let lex = lexical.as_ref().map_or(0.0, |s| s[crow] / best);
                let mut genres = vec![0f32; self.catalog.genres.len()];
                for &g in &item.genres {
                    if let Some(x) = genres.get_mut(g as usize) {
                        *x = 1.0;
                    }
                }
                out.dense.extend(genres);
                out.dense.extend(
                    ItemKind::ALL
                        .iter()
                        .map(|k| f32::from(u8::from(*k == item.kind))),
                );
                out.dense
                    .push((f32::from(item.release_year) - 1990.0) / 30.0);
                out.dense.push(self.popularity[crow]);
                out.dense.push(lex);
                out.label.push(f32::from(u8::from(r.engaged.contains(&c))));
            }
        }
        Ok((out, kept))
    }
}
