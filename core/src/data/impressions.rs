//! Impression logs, what the contextual ranker learns from: a request (task, time, context,
//! query, source title), the candidates shown for it and the ones engaged.
//!
//! **Generated from events.** [`generate_impressions`] turns a share of a data set's events
//! into impressions whose engaged title is the event's, deterministically (seeded):
//! - **search** (`task = "search"`): a query drawn from the engaged title — navigational (a
//!   3–8 character prefix of its title, sometimes with a typo: two neighbouring letters
//!   swapped or one dropped) or exploratory (one of its genres, `kids` for a kids title, its
//!   decade such as `1990s`, or genre and decade) — and as candidates the lexical retriever's
//!   top titles for that query ([`TitleIndex`]: character trigrams of the title, genre, kind
//!   and decade words, weighted by rarity);
//! - **home row** (`task = "home_row"`): the most popular titles of the events given;
//! - **more like this** (`task = "more_like_this"`): the member's previous title as the source
//!   and the titles most like it (shared genres, then kind, then release year).
//!
//! Events on the search surface become searches; of the others, `search_share`,
//! `row_share` and `more_like_this_share` become each task (the rest none). An event whose
//! title is not among its list's candidates makes no impression (a log only holds what was
//! shown and engaged; how many were dropped is counted): inserting it would mark it as the one
//! title that did not match the query.
//!
//! **Read from a file.** [`parse_impression_log`] reads the same records as JSON Lines, one
//! per line: `{"member", "timestamp", "task", "candidates": [ids], "engaged": [ids]}` and
//! optional `query`, `source`, `country`, `language`, `surface`, `device`; a bad line stops the
//! read with its file, line and reason (or is skipped and counted).

use std::collections::{BTreeSet, HashMap, HashSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Item, ItemKind};
use super::events::{DeviceType, Event, Surface};
use super::source::{DataError, LineOptions, LineReader};

/// Most candidates one impression may list.
pub const MAX_IMPRESSION_CANDIDATES: usize = 1000;
/// Longest query, in bytes.
pub const MAX_QUERY_LEN: usize = 256;
/// Longest task name, in bytes.
pub const MAX_TASK_NAME_LEN: usize = 64;

/// One request, what it showed and what was engaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impression {
    /// The member (external id).
    pub member: u32,
    /// Unix time of the request, seconds.
    pub timestamp: i64,
    /// The task (`search`, `home_row`, `more_like_this`, or a log's own names).
    pub task: String,
    /// The query typed, for searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The title a "more like this" page starts from (external id).
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
    /// The titles shown, in the order shown (external ids).
    pub candidates: Vec<u32>,
    /// The titles engaged (a subset of the candidates).
    pub engaged: Vec<u32>,
}

impl Impression {
    /// Checks the record against the catalog: a task name of 1 to 64 bytes, a query of at most
    /// 256 bytes, 1 to 1,000 distinct candidates in the catalog, engaged titles among them, a
    /// source title in the catalog.
    pub fn check(&self, catalog: &Catalog) -> Result<(), String> {
        if self.task.is_empty() || self.task.len() > MAX_TASK_NAME_LEN {
            return Err(format!(
                "task name of {} bytes (1 to {MAX_TASK_NAME_LEN})",
                self.task.len()
            ));
        }
        if let Some(q) = &self.query
            && q.len() > MAX_QUERY_LEN
        {
            return Err(format!(
                "query of {} bytes (at most {MAX_QUERY_LEN})",
                q.len()
            ));
        }
        if self.candidates.is_empty() || self.candidates.len() > MAX_IMPRESSION_CANDIDATES {
            return Err(format!(
                "{} candidates (1 to {MAX_IMPRESSION_CANDIDATES})",
                self.candidates.len()
            ));
        }
        if !super::events::timestamp_in_range(self.timestamp) {
            return Err(format!("timestamp {} is out of range", self.timestamp));
        }
        let mut seen = HashSet::with_capacity(self.candidates.len());
        for (i, &c) in self.candidates.iter().enumerate() {
            if catalog.index_of(c).is_none() {
                return Err(format!("candidate {i} ({c}) is not in the catalog"));
            }
            if !seen.insert(c) {
                return Err(format!("candidate {i} ({c}) is listed twice"));
            }
        }
        for &e in &self.engaged {
            if !seen.contains(&e) {
                return Err(format!("engaged title {e} is not among the candidates"));
            }
        }
        if let Some(s) = self.source
            && catalog.index_of(s).is_none()
        {
            return Err(format!("source title {s} is not in the catalog"));
        }
        Ok(())
    }
}

/// Reads an impression log (JSON Lines) against `catalog`; `file` names it in errors.
/// Returns the impressions in file order and the number of skipped lines.
pub fn parse_impression_log(
    file: &str,
    bytes: &[u8],
    catalog: &Catalog,
    options: LineOptions,
) -> Result<(Vec<Impression>, usize), DataError> {
    let mut out = Vec::new();
    let mut reader = LineReader::new(file, bytes, options);
    while let Some((n, raw)) = reader.next_line() {
        let parsed = serde_json::from_slice::<Impression>(raw)
            .map_err(|e| e.to_string())
            .and_then(|r| r.check(catalog).map(|()| r));
        if let Some(r) = reader.accept(n, parsed)? {
            out.push(r);
        }
    }
    Ok((out, reader.skipped()))
}

/// Writes impressions as JSON Lines (what [`parse_impression_log`] reads).
pub fn write_impression_log(impressions: &[Impression]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in impressions {
        out.extend(serde_json::to_vec(r).expect("impressions serialize"));
        out.push(b'\n');
    }
    out
}

/// How [`generate_impressions`] turns events into impressions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImpressionConfig {
    /// Candidates per impression.
    pub candidates: usize,
    /// Share of the events not on the search surface that become searches.
    pub search_share: f64,
    /// Share of those events that become home-row impressions.
    pub row_share: f64,
    /// Share of those events that become "more like this" impressions.
    pub more_like_this_share: f64,
    /// Share of searches that are navigational (a title prefix) rather than exploratory.
    pub navigational_share: f64,
    /// Share of navigational queries with a typo.
    pub typo_rate: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for ImpressionConfig {
    fn default() -> Self {
        Self {
            candidates: 100,
            search_share: 0.1,
            row_share: 0.05,
            more_like_this_share: 0.05,
            navigational_share: 0.6,
            typo_rate: 0.2,
            seed: 17,
        }
    }
}

/// What [`generate_impressions`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedImpressions {
    /// The impressions, in event order.
    pub impressions: Vec<Impression>,
    /// Events drawn for an impression whose title was not among its list's candidates (no
    /// impression was made for them).
    pub dropped: usize,
}

/// The decade word of a release year: 1994 → `1990s` (none for an unknown year, 0).
pub fn decade(year: u16) -> Option<String> {
    (year > 0).then(|| format!("{}s", year / 10 * 10))
}

/// The words a title is found by: its title's, its genres', its kind's and its decade's,
/// lowercase (what [`TitleIndex`] indexes).
pub fn title_words(catalog: &Catalog, item: &Item) -> Vec<String> {
    let genres = item
        .genres
        .iter()
        .filter_map(|&g| catalog.genres.get(g as usize))
        .map(String::as_str);
    words_of(&item.title, genres, item.kind, item.release_year)
}

/// The words a title is found by, from its parts: the words of `title` and of each genre name,
/// the kind's name and the decade of `release_year` (as [`title_words`] reads a catalog item).
pub fn words_of<'a>(
    title: &str,
    genres: impl IntoIterator<Item = &'a str>,
    kind: ItemKind,
    release_year: u16,
) -> Vec<String> {
    let mut words = crate::ranker::query_words(title);
    for name in genres {
        words.extend(crate::ranker::query_words(name));
    }
    words.push(kind.name().to_string());
    words.extend(decade(release_year));
    words
}

/// The character trigrams of each word, `#` marking word ends (sorted, so that scores sum in
/// one order on every run).
fn trigrams(words: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for w in words {
        let marked: Vec<char> = std::iter::once('#')
            .chain(w.chars())
            .chain(std::iter::once('#'))
            .collect();
        for t in marked.windows(3) {
            out.insert(t.iter().collect());
        }
    }
    out
}

/// A lexical retriever over the catalog: every title's character trigrams (of its title,
/// genre, kind and decade words), each weighted by its inverse document frequency. A query's
/// score for a title sums the weights of the query trigrams the title has, so prefixes and
/// typos still find it.
#[derive(Debug, Clone)]
pub struct TitleIndex {
    /// Title rows holding each trigram.
    postings: HashMap<String, Vec<usize>>,
    /// Catalog size.
    titles: usize,
}

impl TitleIndex {
    /// Indexes `catalog` (its rows in catalog order).
    pub fn new(catalog: &Catalog) -> Self {
        Self::from_words(catalog.items.iter().map(|item| title_words(catalog, item)))
    }

    /// Indexes titles given by their words (see [`title_words`]), one title per row.
    pub fn from_words(titles: impl IntoIterator<Item = Vec<String>>) -> Self {
        let mut postings: HashMap<String, Vec<usize>> = HashMap::new();
        let mut count = 0;
        for (row, words) in titles.into_iter().enumerate() {
            for t in trigrams(&words) {
                postings.entry(t).or_default().push(row);
            }
            count = row + 1;
        }
        Self {
            postings,
            titles: count,
        }
    }

    /// The score of every catalog row for `query` (0 where nothing matches).
    pub fn scores(&self, query: &str) -> Vec<f32> {
        let mut scores = vec![0f32; self.titles];
        for (t, idf) in self.query_weights(query) {
            for &r in self.postings.get(&t).map_or(&[][..], Vec::as_slice) {
                scores[r] += idf;
            }
        }
        scores
    }

    /// The character trigrams of `query` with their inverse document frequencies in this
    /// index, in the order [`TitleIndex::scores`] sums them (a trigram no title holds weighs
    /// `ln(1 + titles)`).
    pub fn query_weights(&self, query: &str) -> Vec<(String, f32)> {
        trigrams(&crate::ranker::query_words(query))
            .into_iter()
            .map(|t| {
                let df = self.postings.get(&t).map_or(0, Vec::len);
                let idf = ((1.0 + self.titles as f64) / (1.0 + df as f64)).ln() as f32;
                (t, idf)
            })
            .collect()
    }

    /// The score for `query` of a title with these `words` that the index does not hold,
    /// weighted by the index's own trigram frequencies: for an indexed title's words, exactly
    /// its entry of [`TitleIndex::scores`].
    pub fn score_words(&self, query: &str, words: &[String]) -> f32 {
        Self::score_with(&self.query_weights(query), words)
    }

    /// [`TitleIndex::score_words`] with the query's [`TitleIndex::query_weights`] computed once
    /// (for many titles).
    pub fn score_with(weights: &[(String, f32)], words: &[String]) -> f32 {
        // A title holds a trigram when one of its `#word#` forms contains it (no set built).
        let marked: Vec<String> = words.iter().map(|w| format!("#{w}#")).collect();
        weights
            .iter()
            .filter(|(t, _)| marked.iter().any(|m| m.contains(t.as_str())))
            .fold(0f32, |score, (_, idf)| score + idf)
    }

    /// The `k` best catalog rows for `query`, best first (ties by row).
    pub fn top(&self, query: &str, k: usize) -> Vec<usize> {
        top_rows(&self.scores(query), k)
    }
}

/// The `k` rows of highest score, best first, ties by row.
fn top_rows(scores: &[f32], k: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..scores.len()).collect();
    rows.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    rows.truncate(k);
    rows
}

/// A query for `item`: navigational (a title prefix, maybe with a typo) or exploratory.
fn draw_query(
    catalog: &Catalog,
    item: &Item,
    cfg: &ImpressionConfig,
    rng: &mut ChaCha8Rng,
) -> String {
    if rng.random_bool(cfg.navigational_share.clamp(0.0, 1.0)) {
        let title: Vec<char> = item.title.to_lowercase().chars().collect();
        let len = rng.random_range(3..=8).min(title.len());
        let mut q: Vec<char> = title[..len].to_vec();
        if q.len() >= 4 && rng.random_bool(cfg.typo_rate.clamp(0.0, 1.0)) {
            let at = rng.random_range(1..q.len() - 1);
            if rng.random_bool(0.5) {
                q.swap(at, at + 1);
            } else {
                q.remove(at);
            }
        }
        return q.into_iter().collect();
    }
    let genre = (!item.genres.is_empty())
        .then(|| item.genres[rng.random_range(0..item.genres.len())])
        .and_then(|g| catalog.genres.get(g as usize))
        .map(|g| g.to_lowercase());
    let kids = (item.kind == ItemKind::Kids).then(|| "kids".to_string());
    let dec = decade(item.release_year);
    let mut options: Vec<String> = [genre.clone(), kids, dec.clone()]
        .into_iter()
        .flatten()
        .collect();
    if let (Some(g), Some(d)) = (genre, dec) {
        options.push(format!("{g} {d}"));
    }
    if options.is_empty() {
        return item.title.to_lowercase();
    }
    options.swap_remove(rng.random_range(0..options.len()))
}

/// The titles most like `source` (rows, best first): shared genres (Jaccard), then the same
/// kind, then a close release year.
fn similar_rows(catalog: &Catalog, source: usize, k: usize) -> Vec<usize> {
    let s = &catalog.items[source];
    let sg: HashSet<u8> = s.genres.iter().copied().collect();
    let scores: Vec<f32> = catalog
        .items
        .iter()
        .enumerate()
        .map(|(row, item)| {
            if row == source {
                return f32::NEG_INFINITY;
            }
            let g: HashSet<u8> = item.genres.iter().copied().collect();
            let union = sg.union(&g).count().max(1) as f32;
            let jaccard = sg.intersection(&g).count() as f32 / union;
            let kind = if item.kind == s.kind { 0.5 } else { 0.0 };
            let years = f32::from(item.release_year.abs_diff(s.release_year)).min(50.0);
            jaccard + kind - 0.01 * years
        })
        .collect();
    top_rows(&scores, k)
}

/// Impressions from `events` (see the module docs); `events` should be one member's after
/// another in time order (the "more like this" source is the member's previous event).
pub fn generate_impressions(
    catalog: &Catalog,
    events: &[Event],
    cfg: &ImpressionConfig,
) -> GeneratedImpressions {
    ImpressionGenerator::new(catalog, events, cfg.clone()).generate(events, cfg.seed)
}

/// [`generate_impressions`] in two steps: the retriever and the home row's popular titles
/// (from one set of events) once, then impressions for any events (e.g. held-out ones, with
/// the popularity of the training events).
#[derive(Debug, Clone)]
pub struct ImpressionGenerator<'a> {
    catalog: &'a Catalog,
    cfg: ImpressionConfig,
    index: TitleIndex,
    popular: Vec<usize>,
}

impl<'a> ImpressionGenerator<'a> {
    /// The generator over `catalog`, its home row the most popular titles of `popularity_from`.
    pub fn new(catalog: &'a Catalog, popularity_from: &[Event], cfg: ImpressionConfig) -> Self {
        let k = cfg
            .candidates
            .clamp(1, MAX_IMPRESSION_CANDIDATES.min(catalog.items.len()));
        let mut counts = vec![0f32; catalog.items.len()];
        for e in popularity_from {
            if let Some(r) = catalog.index_of(e.item) {
                counts[r] += 1.0;
            }
        }
        Self {
            catalog,
            index: TitleIndex::new(catalog),
            popular: top_rows(&counts, k),
            cfg,
        }
    }

    /// Impressions from `events` (one member's after another, each in time order), drawn
    /// with `seed` (the configuration's seed is [`generate_impressions`]'s).
    pub fn generate(&self, events: &[Event], seed: u64) -> GeneratedImpressions {
        let (catalog, cfg, index) = (self.catalog, &self.cfg, &self.index);
        let popular = &self.popular;
        let k = popular.len().max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut impressions = Vec::new();
        let mut dropped = 0;
        let mut previous: Option<&Event> = None;
        for e in events {
            let prev = previous.filter(|p| p.member == e.member);
            previous = Some(e);
            let Some(row) = catalog.index_of(e.item) else {
                continue;
            };
            let u: f64 = rng.random();
            let task = if e.surface == Surface::Search || u < cfg.search_share {
                "search"
            } else if u < cfg.search_share + cfg.row_share {
                "home_row"
            } else if u < cfg.search_share + cfg.row_share + cfg.more_like_this_share {
                "more_like_this"
            } else {
                continue;
            };
            let item = &catalog.items[row];
            let (query, source, rows) = match task {
                "search" => {
                    let q = draw_query(catalog, item, cfg, &mut rng);
                    let rows = index.top(&q, k);
                    (Some(q), None, rows)
                }
                "home_row" => (None, None, popular.clone()),
                _ => {
                    let Some(src) = prev.and_then(|p| catalog.index_of(p.item)) else {
                        continue;
                    };
                    (
                        None,
                        Some(catalog.items[src].id),
                        similar_rows(catalog, src, k),
                    )
                }
            };
            if !rows.contains(&row) {
                dropped += 1;
                continue;
            }
            impressions.push(Impression {
                member: e.member,
                timestamp: e.timestamp,
                task: task.to_string(),
                query,
                source,
                country: Some(e.country.clone()),
                language: Some(item.language.clone()),
                surface: Some(e.surface),
                device: Some(e.device),
                candidates: rows.iter().map(|&r| catalog.items[r].id).collect(),
                engaged: vec![e.item],
            });
        }
        GeneratedImpressions {
            impressions,
            dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{SyntheticWorld, SyntheticWorldConfig};

    fn world() -> SyntheticWorld {
        SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 60,
            titles: 150,
            days: 20,
            seed: 5,
            ..Default::default()
        })
    }

    #[test]
    fn generated_impressions_are_deterministic_valid_and_hold_their_engaged_title() {
        let w = world();
        let cfg = ImpressionConfig {
            candidates: 30,
            ..Default::default()
        };
        let a = generate_impressions(&w.catalog, &w.events, &cfg);
        assert_eq!(a, generate_impressions(&w.catalog, &w.events, &cfg));
        let by_task = |t: &str| a.impressions.iter().filter(|r| r.task == t).count();
        let searches = w
            .events
            .iter()
            .filter(|e| e.surface == Surface::Search)
            .count();
        // Every search event is drawn (as a search); most drawn events find their title
        // among their list's candidates.
        let drawn = a.impressions.len() + a.dropped;
        assert!(drawn >= searches, "{drawn} drawn, {searches} search events");
        assert!(a.dropped * 2 < drawn, "{} of {drawn} dropped", a.dropped);
        assert!(by_task("search") * 2 > a.impressions.len());
        assert!(by_task("home_row") > 0 && by_task("more_like_this") > 0);
        for r in &a.impressions {
            r.check(&w.catalog).unwrap();
            assert_eq!(r.candidates.len(), 30);
            assert_eq!(r.engaged.len(), 1);
            assert!(r.candidates.contains(&r.engaged[0]));
            assert_eq!(r.query.is_some(), r.task == "search");
            assert_eq!(r.source.is_some(), r.task == "more_like_this");
        }
        // Another seed, other impressions.
        let b = generate_impressions(&w.catalog, &w.events, &ImpressionConfig { seed: 1, ..cfg });
        assert_ne!(a.impressions, b.impressions);
    }

    #[test]
    fn the_retriever_finds_titles_by_prefix_typo_and_genre() {
        let w = world();
        let index = TitleIndex::new(&w.catalog);
        let mut found = [0usize; 3];
        for (row, item) in w.catalog.items.iter().enumerate() {
            let title = item.title.to_lowercase();
            let prefix: String = title.chars().take(8).collect();
            let mut typo: Vec<char> = title.chars().collect();
            typo.swap(3, 4);
            let typo: String = typo.into_iter().collect();
            for (k, q) in [title.clone(), prefix, typo].iter().enumerate() {
                if index.top(q, 10).contains(&row) {
                    found[k] += 1;
                }
            }
        }
        let n = w.catalog.items.len();
        // The full title finds itself always; its 8-letter prefix and a typo mostly.
        assert_eq!(found[0], n, "full titles");
        assert!(found[1] * 2 > n, "prefixes: {} of {n}", found[1]);
        assert!(found[2] * 10 > 8 * n, "typos: {} of {n}", found[2]);
        // A genre word ranks that genre's titles first.
        let g = w
            .catalog
            .genres
            .iter()
            .position(|g| g == "Documentary")
            .unwrap() as u8;
        let top = index.top("documentary", 5);
        assert!(top.iter().all(|&r| w.catalog.items[r].genres.contains(&g)
            || w.catalog.items[r].kind == ItemKind::Documentary));
    }

    #[test]
    fn a_title_outside_the_index_scores_as_an_indexed_one_with_its_words() {
        let w = world();
        let index = TitleIndex::new(&w.catalog);
        let queries = ["star wa", "documentary", "kids 1990s", "zzqx"];
        let mut matched = 0;
        for q in queries {
            let scores = index.scores(q);
            for (row, item) in w.catalog.items.iter().enumerate() {
                let words = title_words(&w.catalog, item);
                // Bit for bit: the same trigram weights summed in the same order.
                assert_eq!(
                    index.score_words(q, &words),
                    scores[row],
                    "{q:?}, row {row}"
                );
                matched += usize::from(scores[row] > 0.0);
            }
        }
        assert!(matched > 10, "{matched} titles matched at all");
        // The parts give the words a catalog item gives.
        let item = &w.catalog.items[3];
        let names = item
            .genres
            .iter()
            .map(|&g| w.catalog.genres[g as usize].as_str());
        let words = words_of(&item.title, names, item.kind, item.release_year);
        assert_eq!(words, title_words(&w.catalog, item));
        assert!(words.contains(&item.kind.name().to_string()), "{words:?}");
        // A trigram no indexed title holds weighs the most: ln(1 + titles).
        let unseen = index.score_words("qqx", &["qqx".into()]);
        let top = ((1.0 + w.catalog.items.len() as f64).ln() * 3.0) as f32;
        assert!((unseen - top).abs() < 1e-4, "{unseen} vs {top}");
    }

    #[test]
    fn impression_logs_round_trip_and_bad_lines_are_located() {
        let w = world();
        let made = generate_impressions(
            &w.catalog,
            &w.events,
            &ImpressionConfig {
                candidates: 10,
                ..Default::default()
            },
        );
        let bytes = write_impression_log(&made.impressions);
        let (back, skipped) =
            parse_impression_log("log.jsonl", &bytes, &w.catalog, LineOptions::default()).unwrap();
        assert_eq!((back, skipped), (made.impressions.clone(), 0));
        let id = w.catalog.items[0].id;
        let other = w.catalog.items[1].id;
        let good = format!(
            r#"{{"member":1,"timestamp":5,"task":"search","query":"star","candidates":[{id},{other}],"engaged":[{id}]}}"#
        );
        let cases = [
            (
                format!(
                    r#"{{"member":1,"timestamp":5,"task":"search","candidates":[{id}],"engaged":[{other}]}}"#
                ),
                "engaged title",
            ),
            (
                r#"{"member":1,"timestamp":5,"task":"search","candidates":[],"engaged":[]}"#
                    .to_string(),
                "0 candidates",
            ),
            (
                format!(
                    r#"{{"member":1,"timestamp":5,"task":"","candidates":[{id}],"engaged":[]}}"#
                ),
                "task name of 0 bytes",
            ),
            (
                format!(
                    r#"{{"member":1,"timestamp":5,"task":"x","candidates":[{id},{id}],"engaged":[]}}"#
                ),
                "listed twice",
            ),
            (
                r#"{"member":1,"timestamp":5,"task":"x","candidates":[4000000000],"engaged":[]}"#
                    .to_string(),
                "not in the catalog",
            ),
            (
                format!(
                    r#"{{"member":1,"timestamp":5,"task":"x","source":4000000000,"candidates":[{id}],"engaged":[]}}"#
                ),
                "source title",
            ),
            (
                format!(
                    r#"{{"member":1,"timestamp":5,"task":"x","query":"{}","candidates":[{id}],"engaged":[]}}"#,
                    "a".repeat(300)
                ),
                "query of 300 bytes",
            ),
            (
                format!(
                    r#"{{"member":1,"timestamp":5,"task":"x","candidates":[{id}],"engaged":[],"colour":1}}"#
                ),
                "unknown field",
            ),
        ];
        for (bad, why) in cases {
            let log = format!("{good}\n{bad}\n");
            let err = parse_impression_log(
                "log.jsonl",
                log.as_bytes(),
                &w.catalog,
                LineOptions::default(),
            )
            .unwrap_err();
            assert_eq!(err.line, 2, "{why}");
            assert!(err.to_string().contains(why), "{why}: {err}");
            let (kept, skipped) = parse_impression_log(
                "log.jsonl",
                log.as_bytes(),
                &w.catalog,
                LineOptions {
                    skip_bad_lines: true,
                },
            )
            .unwrap();
            assert_eq!((kept.len(), skipped), (1, 1));
        }
    }
}
