//! The ranker's features of a request and its candidates, in host memory. One code path builds
//! them for training (from impression logs) and on the device (from a rerank call), so that the
//! two agree by construction:
//!
//! - [`RankerVocabulary`]: what the features are read against — the task, country and language
//!   names, and per item row of the foundation model its searchable words, genres, kind,
//!   release year and popularity. It travels in the bundle with the ranker.
//! - [`RankContext`]: one request's context (task, query, source title, country, …, α).
//! - [`RequestFeatures`]: a context checked and turned into indices; [`RankerVocabulary::push_rows`]
//!   appends its candidates' rows to [`RankerRows`].

use serde::{Deserialize, Serialize};

use super::RankerConfig;
use super::query::{MAX_QUERY_BYTES, query_features};
use crate::data::catalog::{Catalog, ItemKind, ItemVocabulary};
use crate::data::events::{DeviceType, Event, Surface, hour_of_day, weekday};
use crate::data::impressions::{Impression, TitleIndex, title_words, words_of};
use crate::serving::TitleMetadata;

/// Query features kept per request.
pub const QUERY_FEATURES: usize = 32;
/// Place of the popularity feature in a row's dense features, counted from the end (1 = last).
pub const POPULARITY_COLUMN: usize = 2;
/// Place of the lexical match (0 without a query) in a row's dense features, from the end.
pub const LEXICAL_COLUMN: usize = 1;
/// Hours of the day (a context field).
const HOURS: usize = 24;
/// Days of the week (a context field).
const WEEKDAYS: usize = 7;
/// Most task names a vocabulary holds.
pub const MAX_RANKER_TASKS: usize = 256;
/// Most country or language names a vocabulary holds.
pub const MAX_CONTEXT_NAMES: usize = 4096;
/// Longest task, country or language name, in bytes.
pub const MAX_CONTEXT_NAME_BYTES: usize = 64;
/// Most searchable words per title.
pub const MAX_TITLE_WORDS: usize = 64;

/// One item row as the ranker sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedTitle {
    /// The words a query is matched against: the title's, its genres', kind's and decade's.
    pub words: Vec<String>,
    /// Genre indices (below [`RankerVocabulary::n_genres`]).
    pub genres: Vec<u8>,
    /// Movie, series, documentary or kids title.
    pub kind: ItemKind,
    /// Year of release.
    pub release_year: u16,
    /// Popularity in [0, 1]: `ln(1 + plays) / ln(1 + most plays)` over the training events.
    pub popularity: f32,
}

impl RankedTitle {
    /// The ranker's view of a title its vocabulary lacks, from what a server says about it:
    /// the words of its name, genres, kind and decade (as [`title_words`] reads a catalog
    /// item; at most [`MAX_TITLE_WORDS`]), its genres as indices into `genre_names` (the
    /// catalog's genre order; a repeat counts once, an unknown name is dropped), kind and
    /// release year. Its popularity is 0: it has no plays in the training events.
    pub fn described(metadata: &TitleMetadata, genre_names: &[String]) -> Self {
        let mut genres: Vec<u8> = Vec::new();
        for name in &metadata.genres {
            if let Some(g) = genre_names.iter().position(|n| n == name)
                && let Ok(g) = u8::try_from(g)
                && !genres.contains(&g)
            {
                genres.push(g);
            }
        }
        let names = genres.iter().map(|&g| genre_names[g as usize].as_str());
        let mut words = words_of(
            metadata.title.as_deref().unwrap_or(""),
            names,
            metadata.kind,
            metadata.release_year,
        );
        words.truncate(MAX_TITLE_WORDS);
        Self {
            words,
            genres,
            kind: metadata.kind,
            release_year: metadata.release_year,
            popularity: 0.0,
        }
    }
}

/// Titles a call describes beyond a vocabulary's item rows (pushed by a server): in
/// [`RankerVocabulary::push_rows_with`], candidate row `n_items + k` is `titles[k]`, with item
/// vector row `k` of `vectors`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescribedRankedTitles {
    /// The titles, in row order.
    pub titles: Vec<RankedTitle>,
    /// Their item vectors `[titles, d]`, row-major.
    pub vectors: Vec<f32>,
}

/// What the ranker's features are read against (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerVocabulary {
    /// Task names; a request's task is its index here.
    pub tasks: Vec<String>,
    /// The personalization weight α each task gets when a request gives none.
    pub default_alpha: Vec<f32>,
    /// Country codes known (others count as absent and are imputed).
    pub countries: Vec<String>,
    /// Language codes known (others count as absent).
    pub languages: Vec<String>,
    /// Genres of the catalog (the multi-hot width).
    pub n_genres: u32,
    /// One entry per item row of the foundation model, in row order.
    pub titles: Vec<RankedTitle>,
}

/// Why a request's context cannot be ranked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RankContextError {
    /// The task is not one the ranker was trained on.
    #[error("unknown ranker task {name:?} (the ranker knows {known:?})")]
    UnknownTask {
        /// The name given.
        name: String,
        /// The names known.
        known: Vec<String>,
    },
    /// A query was given but holds no word.
    #[error("the query {query:?} holds no word (leave it out for a request without a query)")]
    EmptyQuery {
        /// The query given.
        query: String,
    },
    /// The query is longer than the ranker reads.
    #[error("the query is {bytes} bytes long (at most {MAX_QUERY_BYTES})")]
    QueryTooLong {
        /// Its length in bytes.
        bytes: usize,
    },
    /// The source title is not in the bundle.
    #[error("source title {item} is not in the bundle")]
    UnknownSource {
        /// Its external id.
        item: u32,
    },
    /// α is not a number in [0, 1].
    #[error("alpha {alpha} is not in [0, 1]")]
    InvalidAlpha {
        /// The value given.
        alpha: f32,
    },
}

/// One request's context for the ranker. Fields left out are imputed by the task's learned
/// defaults (a home row has no query, a search no source title).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankContext {
    /// The task, by name (e.g. `search`, `home_row`, `more_like_this`).
    pub task: String,
    /// The query typed (at most [`MAX_QUERY_BYTES`] bytes, with at least one word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The title a "more like this" page starts from (external id, in the bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<u32>,
    /// ISO country code of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Language of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Surface of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<Surface>,
    /// Device of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceType>,
    /// Personalization weight α ∈ [0, 1] (0: relevance alone); the task's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f32>,
}

impl RankContext {
    /// A request of `task` with nothing else given.
    pub fn task(task: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            ..Self::default()
        }
    }

    /// The same context with `query`.
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// The same context with α.
    pub fn with_alpha(mut self, alpha: f32) -> Self {
        self.alpha = Some(alpha);
        self
    }

    /// The same context with a source title.
    pub fn with_source(mut self, item: u32) -> Self {
        self.source = Some(item);
        self
    }
}

impl Impression {
    /// The request's context as the ranker reads it (α left to the caller).
    pub fn context(&self) -> RankContext {
        RankContext {
            task: self.task.clone(),
            query: self.query.clone(),
            source: self.source,
            country: self.country.clone(),
            language: self.language.clone(),
            surface: self.surface,
            device: self.device,
            alpha: None,
        }
    }
}

/// A request's context checked against a vocabulary and turned into indices.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFeatures {
    /// Task index.
    pub task: i64,
    /// Context fields (`value + 1`, 0 = absent): country, language, surface, device, hour,
    /// weekday.
    pub context: [i64; 6],
    /// Query feature buckets, [`QUERY_FEATURES`] of them (0 = padding).
    pub query: Vec<i64>,
    /// The source title's item row.
    pub source: Option<usize>,
    /// The lexical score of every item row for the query (`None` without a query).
    pub lexical: Option<Vec<f32>>,
    /// α.
    pub alpha: f32,
}

/// Everything the rows of a batch of requests hold, in host memory (see
/// [`super::RankerInput`] for the shapes); the rows are the requests' candidates, one request
/// after another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankerRows {
    /// Rows per request, in order.
    pub sizes: Vec<usize>,
    /// α per request.
    pub alpha: Vec<f32>,
    /// Task per row.
    pub task: Vec<i64>,
    /// Context per row (6 values each, see [`RequestFeatures::context`]).
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
    /// 1 for an engaged candidate (0 when serving).
    pub label: Vec<f32>,
}

impl RequestFeatures {
    /// Appends the lexical score for `query` of each of `titles` (described beyond the
    /// vocabulary's rows, in order) to [`RequestFeatures::lexical`], weighted by `index`'s
    /// trigram frequencies (see [`TitleIndex::score_words`]); nothing without a query.
    pub fn describe_lexical(
        &mut self,
        index: &TitleIndex,
        query: Option<&str>,
        titles: &[RankedTitle],
    ) {
        if let (Some(lexical), Some(query)) = (self.lexical.as_mut(), query) {
            let weights = index.query_weights(query);
            lexical.extend(
                titles
                    .iter()
                    .map(|t| TitleIndex::score_with(&weights, &t.words)),
            );
        }
    }
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
}

/// The name → `index + 1` of `value` in `names` (0 when absent or unknown).
fn field(names: &[String], value: Option<&str>) -> i64 {
    value
        .and_then(|v| names.iter().position(|x| x == v))
        .map_or(0, |p| p as i64 + 1)
}

impl RankerVocabulary {
    /// The vocabulary of `tasks` over the foundation model's item rows `items`, each looked up
    /// in `catalog`; countries and popularity from `events` (the training events).
    ///
    /// # Errors
    /// When an item row is not in the catalog (its id is returned).
    pub fn new<'e>(
        catalog: &Catalog,
        items: &ItemVocabulary,
        events: impl IntoIterator<Item = &'e Event>,
        tasks: Vec<String>,
    ) -> Result<Self, u32> {
        let mut plays = vec![0f32; items.len()];
        let mut countries: Vec<String> = Vec::new();
        for e in events {
            if let Some(r) = items.index_of(e.item) {
                plays[r] += 1.0;
            }
            if !countries.contains(&e.country) {
                countries.push(e.country.clone());
            }
        }
        countries.sort();
        let top = plays.iter().copied().fold(1f32, f32::max).ln_1p();
        let mut languages: Vec<String> = catalog.items.iter().map(|i| i.language.clone()).collect();
        languages.sort();
        languages.dedup();
        let titles = items
            .ids()
            .iter()
            .zip(&plays)
            .map(|(&id, &p)| {
                let item = catalog.get(id).ok_or(id)?;
                let mut words = title_words(catalog, item);
                words.truncate(MAX_TITLE_WORDS);
                Ok(RankedTitle {
                    words,
                    genres: item.genres.clone(),
                    kind: item.kind,
                    release_year: item.release_year,
                    popularity: p.ln_1p() / top,
                })
            })
            .collect::<Result<Vec<_>, u32>>()?;
        Ok(Self {
            default_alpha: vec![1.0; tasks.len()],
            tasks,
            countries,
            languages,
            n_genres: catalog.genres.len() as u32,
            titles,
        })
    }

    /// Values of each categorical context field: country, language, surface, device, hour,
    /// weekday.
    pub fn context_fields(&self) -> Vec<usize> {
        vec![
            self.countries.len(),
            self.languages.len(),
            Surface::ALL.len(),
            DeviceType::ALL.len(),
            HOURS,
            WEEKDAYS,
        ]
    }

    /// Dense features per row: genres, kinds, release year, popularity, lexical match.
    pub fn n_dense(&self) -> usize {
        self.n_genres as usize + ItemKind::ALL.len() + 3
    }

    /// The ranker's shape for these features over a foundation model of width `d_model` (its
    /// other sizes at their defaults).
    pub fn config(&self, d_model: usize) -> RankerConfig {
        RankerConfig::new(
            self.tasks.len().max(1),
            self.context_fields(),
            d_model,
            d_model,
            self.n_dense(),
        )
    }

    /// The lexical index over the item rows' words.
    pub fn title_index(&self) -> TitleIndex {
        TitleIndex::from_words(self.titles.iter().map(|t| t.words.clone()))
    }

    /// Checks a stored vocabulary against the model it serves (`n_items` rows) and the
    /// ranker's shape: sizes, names, genre indices, α and popularity in range.
    pub fn validate(&self, n_items: usize, config: &RankerConfig) -> Result<(), String> {
        let names = |what: &str, list: &[String], most: usize| -> Result<(), String> {
            if list.len() > most {
                return Err(format!("{} {what} names (at most {most})", list.len()));
            }
            for (i, n) in list.iter().enumerate() {
                if n.len() > MAX_CONTEXT_NAME_BYTES || n.chars().any(char::is_control) {
                    return Err(format!(
                        "{what} name {i} is over {MAX_CONTEXT_NAME_BYTES} bytes or holds a control character"
                    ));
                }
                if list[..i].contains(n) {
                    return Err(format!("{what} name {n:?} appears twice"));
                }
            }
            Ok(())
        };
        names("task", &self.tasks, MAX_RANKER_TASKS)?;
        names("country", &self.countries, MAX_CONTEXT_NAMES)?;
        names("language", &self.languages, MAX_CONTEXT_NAMES)?;
        if self.tasks.is_empty() {
            return Err("the ranker knows no task".into());
        }
        if self.default_alpha.len() != self.tasks.len()
            || self.default_alpha.iter().any(|a| !(0.0..=1.0).contains(a))
        {
            return Err("one default alpha in [0, 1] per task is required".into());
        }
        if self.titles.len() != n_items {
            return Err(format!(
                "{} ranker titles for {n_items} item rows",
                self.titles.len()
            ));
        }
        if self.n_genres > 256 {
            return Err(format!("{} genres (at most 256)", self.n_genres));
        }
        for (row, t) in self.titles.iter().enumerate() {
            if t.words.len() > MAX_TITLE_WORDS
                || t.words.iter().any(|w| w.len() > MAX_QUERY_BYTES)
                || t.genres.iter().any(|&g| u32::from(g) >= self.n_genres)
                || !(0.0..=1.0).contains(&t.popularity)
            {
                return Err(format!("ranker title of item row {row} is malformed"));
            }
        }
        let expected = self.config(config.d_item);
        if config.n_tasks != expected.n_tasks
            || config.context_fields != expected.context_fields
            || config.n_dense != expected.n_dense
            || config.d_user != config.d_item
        {
            return Err("the ranker's shape does not match its vocabulary".into());
        }
        Ok(())
    }

    /// Checks `ctx` and turns it into indices: the task must be known, a query must hold a word
    /// and be at most [`MAX_QUERY_BYTES`] long, a source title must be one of `items`, α must be
    /// in [0, 1]. `timestamp` is the request's time (hour and weekday).
    pub fn request(
        &self,
        ctx: &RankContext,
        items: &ItemVocabulary,
        index: &TitleIndex,
        query_buckets: usize,
        timestamp: i64,
    ) -> Result<RequestFeatures, RankContextError> {
        let task = self
            .tasks
            .iter()
            .position(|t| *t == ctx.task)
            .ok_or_else(|| RankContextError::UnknownTask {
                name: ctx.task.clone(),
                known: self.tasks.clone(),
            })?;
        let alpha = ctx.alpha.unwrap_or(self.default_alpha[task]);
        if !(0.0..=1.0).contains(&alpha) {
            return Err(RankContextError::InvalidAlpha { alpha });
        }
        let source = match ctx.source {
            Some(item) => Some(
                items
                    .index_of(item)
                    .ok_or(RankContextError::UnknownSource { item })?,
            ),
            None => None,
        };
        let (query, lexical) = match ctx.query.as_deref() {
            None => (vec![0; QUERY_FEATURES], None),
            Some(q) => {
                if q.len() > MAX_QUERY_BYTES {
                    return Err(RankContextError::QueryTooLong { bytes: q.len() });
                }
                let mut f: Vec<i64> = query_features(q, query_buckets as u32, QUERY_FEATURES)
                    .into_iter()
                    .map(i64::from)
                    .collect();
                if f.is_empty() {
                    return Err(RankContextError::EmptyQuery { query: q.into() });
                }
                f.resize(QUERY_FEATURES, 0);
                (f, Some(index.scores(q)))
            }
        };
        let context = [
            field(&self.countries, ctx.country.as_deref()),
            field(&self.languages, ctx.language.as_deref()),
            ctx.surface.map_or(0, |s| s.index() as i64 + 1),
            ctx.device.map_or(0, |d| d.index() as i64 + 1),
            i64::from(hour_of_day(timestamp)) + 1,
            i64::from(weekday(timestamp)) + 1,
        ];
        Ok(RequestFeatures {
            task: task as i64,
            context,
            query,
            source,
            lexical,
            alpha,
        })
    }

    /// Appends one request's rows to `rows`: one per candidate item row in `candidates`, with
    /// the item vectors `item_vectors` (`[n_items, d]`, row-major), the member's `user`
    /// representation `[d]`, and `engaged(row)` as the label.
    pub fn push_rows(
        &self,
        rows: &mut RankerRows,
        request: &RequestFeatures,
        candidates: &[usize],
        item_vectors: &[f32],
        user: &[f32],
        engaged: impl Fn(usize) -> bool,
    ) {
        let none = DescribedRankedTitles::default();
        self.push_rows_with(
            rows,
            request,
            candidates,
            item_vectors,
            &none,
            user,
            engaged,
        );
    }

    /// [`RankerVocabulary::push_rows`] where candidate rows from `self.titles.len()` on are the
    /// `described` titles (whose lexical scores [`RequestFeatures::describe_lexical`] appended).
    ///
    /// # Panics
    /// If a candidate row is past the described titles, or the request's lexical scores do
    /// not cover it.
    #[allow(clippy::too_many_arguments)]
    pub fn push_rows_with(
        &self,
        rows: &mut RankerRows,
        request: &RequestFeatures,
        candidates: &[usize],
        item_vectors: &[f32],
        described: &DescribedRankedTitles,
        user: &[f32],
        engaged: impl Fn(usize) -> bool,
    ) {
        let d = user.len();
        let n = self.titles.len();
        let vector = |row: usize| match row.checked_sub(n) {
            None => &item_vectors[row * d..(row + 1) * d],
            Some(k) => &described.vectors[k * d..(k + 1) * d],
        };
        let title_of = |row: usize| match row.checked_sub(n) {
            None => &self.titles[row],
            Some(k) => &described.titles[k],
        };
        // The lexical match, relative to the best candidate's.
        let best = request
            .lexical
            .as_ref()
            .map(|s| candidates.iter().map(|&c| s[c]).fold(0f32, f32::max))
            .unwrap_or(0.0)
            .max(1e-6);
        rows.sizes.push(candidates.len());
        rows.alpha.push(request.alpha);
        for &c in candidates {
            let title = title_of(c);
            rows.task.push(request.task);
            rows.context.extend(request.context);
            rows.query.extend_from_slice(&request.query);
            match request.source {
                Some(s) => {
                    rows.source.extend_from_slice(vector(s));
                    rows.has_source.push(1.0);
                }
                None => {
                    rows.source.extend(std::iter::repeat_n(0.0, d));
                    rows.has_source.push(0.0);
                }
            }
            let v = vector(c);
            rows.candidate.extend_from_slice(v);
            rows.user.extend_from_slice(user);
            rows.fm_score
                .push(v.iter().zip(user).map(|(a, b)| a * b).sum::<f32>());
            let mut genres = vec![0f32; self.n_genres as usize];
            for &g in &title.genres {
                if let Some(x) = genres.get_mut(g as usize) {
                    *x = 1.0;
                }
            }
            rows.dense.extend(genres);
            rows.dense.extend(
                ItemKind::ALL
                    .iter()
                    .map(|k| f32::from(u8::from(*k == title.kind))),
            );
            rows.dense
                .push((f32::from(title.release_year) - 1990.0) / 30.0);
            rows.dense.push(title.popularity);
            rows.dense
                .push(request.lexical.as_ref().map_or(0.0, |s| s[c] / best));
            rows.label.push(f32::from(u8::from(engaged(c))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::catalog::Item;

    fn catalog() -> Catalog {
        let item = |id, title: &str, genres: Vec<u8>, kind| Item {
            id,
            title: title.into(),
            kind,
            genres,
            language: "en".into(),
            release_year: 1977,
            added_at: 0,
            content: None,
        };
        Catalog::new(
            vec!["Sci-Fi".into(), "Comedy".into()],
            vec![
                item(10, "Star Wars", vec![0], ItemKind::Movie),
                item(11, "Toy Story", vec![1], ItemKind::Kids),
                item(12, "Star Trek", vec![0, 1], ItemKind::Series),
            ],
        )
        .unwrap()
    }

    fn vocabulary(catalog: &Catalog) -> (RankerVocabulary, ItemVocabulary) {
        let items = ItemVocabulary::new(vec![12, 10, 11]).unwrap();
        let events: Vec<Event> = [10, 10, 12]
            .iter()
            .map(|&i| Event::implicit(1, i, 0))
            .collect();
        let v = RankerVocabulary::new(
            catalog,
            &items,
            &events,
            vec!["search".into(), "home_row".into()],
        )
        .unwrap();
        (v, items)
    }

    #[test]
    fn titles_follow_the_models_rows_and_popularity_is_scaled_to_the_most_played() {
        let catalog = catalog();
        let (v, items) = vocabulary(&catalog);
        assert_eq!(v.titles[0].words[..2], ["star".to_string(), "trek".into()]);
        assert_eq!(v.titles[1].kind, ItemKind::Movie);
        assert!((v.titles[1].popularity - 1.0).abs() < 1e-6);
        assert!((v.titles[0].popularity - 2f32.ln() / 3f32.ln()).abs() < 1e-6);
        assert_eq!(v.titles[2].popularity, 0.0);
        assert_eq!(v.n_dense(), 2 + 4 + 3);
        assert_eq!(v.validate(items.len(), &v.config(8)), Ok(()));
        assert!(v.validate(2, &v.config(8)).is_err());
        let missing = ItemVocabulary::new(vec![10, 99]).unwrap();
        assert_eq!(
            RankerVocabulary::new(&catalog, &missing, &[], vec!["search".into()]),
            Err(99)
        );
    }

    #[test]
    fn a_described_title_is_seen_as_its_catalog_entry_without_plays() {
        let catalog = catalog();
        let (v, items) = vocabulary(&catalog);
        for (row, &id) in items.ids().iter().enumerate() {
            let metadata = catalog.metadata(id).unwrap();
            let described = RankedTitle::described(&metadata, &catalog.genres);
            let bundled = &v.titles[row];
            assert_eq!(described.words, bundled.words, "item {id}");
            assert_eq!(
                (&described.genres, described.kind, described.release_year),
                (&bundled.genres, bundled.kind, bundled.release_year),
                "item {id}"
            );
            assert_eq!(described.popularity, 0.0);
        }
        // Repeated and unknown genres count once and not at all; no name, no title words.
        let metadata = TitleMetadata {
            genres: vec!["Comedy".into(), "Western".into(), "Comedy".into()],
            title: None,
            ..catalog.metadata(10).unwrap()
        };
        let t = RankedTitle::described(&metadata, &catalog.genres);
        assert_eq!(t.genres, [1]);
        assert_eq!(t.words, ["comedy", "movie", "1970s"]);
    }

    #[test]
    fn described_titles_extend_the_rows_after_the_vocabularys() {
        let catalog = catalog();
        let (v, items) = vocabulary(&catalog);
        let index = v.title_index();
        let mut search = v
            .request(
                &RankContext::task("search").with_query("star"),
                &items,
                &index,
                64,
                0,
            )
            .unwrap();
        let new = TitleMetadata {
            title: Some("Star Quest".into()),
            ..catalog.metadata(11).unwrap()
        };
        let described = DescribedRankedTitles {
            titles: vec![RankedTitle::described(&new, &catalog.genres)],
            vectors: vec![0.5, -1.0],
        };
        search.describe_lexical(&index, Some("star"), &described.titles);
        let lexical = search.lexical.clone().unwrap();
        assert_eq!(lexical.len(), 4);
        // "Star Quest" holds "star" as "Star Wars" (row 1) does.
        assert_eq!(lexical[3], lexical[1]);
        let mut rows = RankerRows::default();
        v.push_rows_with(
            &mut rows,
            &search,
            &[3, 0],
            &[1.0, 0.0, 0.0, 1.0, 0.5, 0.5],
            &described,
            &[2.0, 1.0],
            |r| r == 3,
        );
        assert_eq!(rows.candidate, [0.5, -1.0, 1.0, 0.0]);
        assert_eq!(rows.fm_score, [0.0, 2.0]);
        assert_eq!(rows.label, [1.0, 0.0]);
        assert_eq!(rows.dense_column(POPULARITY_COLUMN)[0], 0.0);
        // Row 0 is "Star Trek": both hold "star", and the kids title's kind is one-hot.
        assert_eq!(
            rows.dense_column(LEXICAL_COLUMN)[0],
            lexical[3] / lexical[3].max(lexical[0])
        );
        let kinds = &rows.dense[2..2 + ItemKind::ALL.len()];
        assert_eq!(kinds[ItemKind::Kids.index()], 1.0);
    }

    #[test]
    fn a_request_is_checked_by_name_and_its_rows_carry_lexical_match() {
        let catalog = catalog();
        let (v, items) = vocabulary(&catalog);
        let index = v.title_index();
        let req = |ctx: RankContext| v.request(&ctx, &items, &index, 64, 3600 * 30);
        let search = req(RankContext::task("search").with_query("star wa")).unwrap();
        assert_eq!(search.task, 0);
        assert_eq!(search.alpha, 1.0);
        // 1970-01-02 06:00 UTC: hour 6, a Friday (weekday 5 from Sunday = 0).
        assert_eq!(search.context[4..], [7, 6]);
        assert_eq!(search.query.len(), QUERY_FEATURES);
        let mut rows = RankerRows::default();
        let d = 2;
        let vectors = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
        v.push_rows(&mut rows, &search, &[1, 2, 0], &vectors, &[2.0, 1.0], |r| {
            r == 1
        });
        assert_eq!(rows.sizes, [3]);
        assert_eq!(rows.label, [1.0, 0.0, 0.0]);
        assert_eq!(rows.fm_score, [1.0, 1.5, 2.0]);
        assert_eq!(rows.candidate[..d], [0.0, 1.0]);
        // "Star Wars" matches best (1), "Star Trek" shares "star", "Toy Story" only trigrams.
        let lex = rows.dense_column(LEXICAL_COLUMN);
        assert_eq!(lex[0], 1.0);
        assert!(lex[2] > 0.0 && lex[2] < 1.0, "{lex:?}");
        assert!(lex[1] < lex[2], "{lex:?}");
        assert_eq!(rows.dense_column(POPULARITY_COLUMN)[0], 1.0);
        assert_eq!(rows.has_source, [0.0; 3]);
        // Refusals, each by name.
        let err = |ctx| req(ctx).unwrap_err();
        assert!(
            matches!(err(RankContext::task("kids")), RankContextError::UnknownTask { name, .. } if name == "kids")
        );
        assert_eq!(
            err(RankContext::task("search").with_query(" !! ")),
            RankContextError::EmptyQuery {
                query: " !! ".into()
            }
        );
        assert_eq!(
            err(RankContext::task("search").with_query("a".repeat(300))),
            RankContextError::QueryTooLong { bytes: 300 }
        );
        assert_eq!(
            err(RankContext::task("home_row").with_source(7)),
            RankContextError::UnknownSource { item: 7 }
        );
        assert!(matches!(
            err(RankContext::task("home_row").with_alpha(f32::NAN)),
            RankContextError::InvalidAlpha { .. }
        ));
        assert!(matches!(
            err(RankContext::task("home_row").with_alpha(1.5)),
            RankContextError::InvalidAlpha { alpha } if alpha == 1.5
        ));
        let mlt = req(RankContext::task("home_row")
            .with_source(11)
            .with_alpha(0.25))
        .unwrap();
        assert_eq!(
            (mlt.source, mlt.alpha, mlt.lexical.is_none()),
            (Some(2), 0.25, true)
        );
    }
}
