//! Candidates pushed with their metadata or their item vector: a server may push titles added
//! to its catalog after the bundle was exported. The bundle's item content encoder embeds them
//! on the device from what the server says about them, or the server sends the title's item
//! vector itself (int8); candidates the bundle contains keep their bundled vectors. With every
//! title pushed, a bundle need not hold the catalog at all (see
//! [`Reranker::rerank_pushed_with_history`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::request::{self, RerankError, RerankRequest, ScoredItem};
use super::session::{DescribedTitles, ExtendedRows, MemberSession};
use super::{MAX_CANDIDATES, Reranker, Scores, finite, host_scores, order, read, read_async};
use crate::data::events::Event;
use crate::serving::{MetadataError, TitleMetadata};
use crate::tokenizer::{ITEM_OFFSET, TokenField, TokenSequence};

/// One candidate as a server pushes it: an item id and, for a title the bundle may not
/// contain, its metadata or its item vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// External item id.
    pub id: u32,
    /// What the server says about the title. A candidate the bundle contains is scored with
    /// its bundled vector (its metadata, when given, is still checked); one it does not
    /// contain is embedded from this (unless it comes with a vector), and refused without
    /// either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TitleMetadata>,
    /// The title's item vector as the server holds it (from the same model's export): a
    /// candidate the bundle does not contain is scored with it as it is, before metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<PushedVector>,
}

impl Candidate {
    /// A candidate by id alone (the bundle must contain it).
    pub fn known(id: u32) -> Self {
        Self {
            id,
            metadata: None,
            vector: None,
        }
    }

    /// A candidate with its title's metadata.
    pub fn with_metadata(id: u32, metadata: TitleMetadata) -> Self {
        Self {
            id,
            metadata: Some(metadata),
            vector: None,
        }
    }

    /// A candidate with its title's item vector.
    pub fn with_vector(id: u32, vector: PushedVector) -> Self {
        Self {
            id,
            metadata: None,
            vector: Some(vector),
        }
    }
}

/// An item vector pushed with a candidate: `d_model` int8 values and one scale
/// (`x = q × scale`), as a bundle stores its own int8 rows: 4 + d bytes a title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedVector {
    /// The quantized values, one per model dimension.
    pub values: Vec<i8>,
    /// The scale: finite and not negative.
    pub scale: f32,
}

impl PushedVector {
    /// `vector` in int8: scale = max |x| / 127, each value rounded to the nearest step.
    pub fn quantize(vector: &[f32]) -> Self {
        let max = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
        let values = vector
            .iter()
            .map(|&x| {
                if scale > 0.0 {
                    (x / scale).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                }
            })
            .collect();
        Self { values, scale }
    }

    /// The vector in f32.
    pub fn dequantized(&self) -> impl Iterator<Item = f32> + '_ {
        self.values.iter().map(|&q| q as f32 * self.scale)
    }
}

/// Refuses metadata that `encoder` cannot read, naming the candidate by position and id.
pub(super) fn check_metadata(
    encoder: &crate::serving::ServingContentEncoder,
    position: usize,
    item: u32,
    metadata: &TitleMetadata,
) -> Result<(), RerankError> {
    encoder
        .check(metadata)
        .map_err(|source| RerankError::InvalidMetadata {
            position,
            item,
            source,
        })
}

/// Where a described title's vector comes from.
enum Described<'a> {
    /// Embedded from its metadata by the content encoder.
    Metadata(&'a TitleMetadata),
    /// Pushed as is.
    Vector(&'a PushedVector),
}

/// A call's candidates resolved: the bundled ones' dense rows and the others' item vectors,
/// with each one's place in the call's list (rows first, then vectors).
pub(super) struct Resolved {
    /// The candidates' ids, in the call's order.
    pub ids: Vec<u32>,
    /// Dense rows of the bundled candidates.
    pub rows: Vec<i64>,
    /// The others, described by their metadata or vector: their item vectors `[m, d]`, in
    /// order, the candidates' first, then those of titles described for the history only.
    pub described: DescribedTitles,
    /// How many of the described titles are candidates (the first ones).
    pub described_candidates: usize,
    /// The call position of each score: the rows' candidates, then the described ones'.
    pub places: Vec<usize>,
}

impl Resolved {
    /// The item vectors of the described candidates `[described_candidates, d]` (the titles
    /// described for the history only follow them and are not scored).
    pub(super) fn candidate_vectors(&self, d: usize) -> &[f32] {
        &self.described.rows[..self.described_candidates * d]
    }

    /// The ranking of `scores` (rows first, then vectors), best first; refused when a score is
    /// not finite.
    pub(super) fn ranking(&self, scores: Vec<f32>) -> Result<Vec<ScoredItem>, RerankError> {
        Ok(order(&self.ids, &finite(self.place(scores))?))
    }

    /// `scores` (rows first, then vectors) in the call's order.
    fn place(&self, scores: Vec<f32>) -> Vec<f32> {
        let mut out = vec![0f32; scores.len()];
        for (&p, s) in self.places.iter().zip(scores) {
            out[p] = s;
        }
        out
    }
}

impl Reranker {
    /// How a title the bundle lacks is described: its pushed vector (checked), else its
    /// metadata (checked by the content encoder); refused with neither, by `position`.
    fn describe<'a>(
        &self,
        position: usize,
        c: &'a Candidate,
    ) -> Result<Described<'a>, RerankError> {
        if let Some(v) = &c.vector {
            return self
                .check_vector(position, c.id, v)
                .map(|()| Described::Vector(v));
        }
        let Some(m) = &c.metadata else {
            return Err(RerankError::UnknownCandidate {
                position,
                item: c.id,
            });
        };
        let encoder = self
            .content_encoder
            .as_ref()
            .ok_or(RerankError::NoContentEncoder {
                position,
                item: c.id,
            })?;
        check_metadata(encoder, position, c.id, m)?;
        Ok(Described::Metadata(m))
    }

    /// Refuses a pushed vector of the wrong length or with a bad scale.
    fn check_vector(
        &self,
        position: usize,
        item: u32,
        v: &PushedVector,
    ) -> Result<(), RerankError> {
        let expected = self.config.d_model;
        if v.values.len() != expected {
            return Err(RerankError::PushedVectorLength {
                position,
                item,
                expected,
                got: v.values.len(),
            });
        }
        if !v.scale.is_finite() || v.scale < 0.0 {
            return Err(RerankError::PushedVectorScale {
                position,
                item,
                scale: v.scale,
            });
        }
        Ok(())
    }

    /// The item vectors `[m, d]` of `described`, in order (metadata embedded together).
    fn described_rows(&self, described: &[Described<'_>]) -> Vec<f32> {
        let metadata: Vec<&TitleMetadata> = described
            .iter()
            .filter_map(|d| match d {
                Described::Metadata(m) => Some(*m),
                Described::Vector(_) => None,
            })
            .collect();
        let d = self.config.d_model;
        let embedded = match (&self.content_encoder, metadata.is_empty()) {
            (Some(encoder), false) => encoder.vectors(&metadata),
            _ => Vec::new(),
        };
        let mut next_embedded = embedded.chunks(d);
        let mut rows = Vec::with_capacity(described.len() * d);
        for title in described {
            match title {
                Described::Vector(v) => rows.extend(v.dequantized()),
                Described::Metadata(_) => {
                    rows.extend_from_slice(next_embedded.next().expect("one row per metadata"))
                }
            }
        }
        rows
    }

    /// Resolves `candidates`: refuses an empty or too long list, a repeated id, metadata the
    /// content encoder cannot read, a pushed vector of the wrong length or scale, and a title
    /// neither in the bundle nor given with metadata or a vector. Then the titles of
    /// `history_titles` (at most [`MAX_CANDIDATES`]) that the bundle lacks and no candidate
    /// describes are described (not ranked) after the candidates' (refusals wrapped in
    /// [`RerankError::HistoryTitle`], by their position in that list).
    pub(super) fn resolve_with_history(
        &self,
        candidates: &[Candidate],
        history_titles: &[Candidate],
    ) -> Result<Resolved, RerankError> {
        request::validate_candidate_count(candidates.len())?;
        let mut rows = Vec::with_capacity(candidates.len());
        let mut row_places = Vec::with_capacity(candidates.len());
        let mut described = DescribedTitles::default();
        let mut vector_places = Vec::new();
        // How each title to describe is described, in order (metadata embedded together below).
        let mut pushed: Vec<Described<'_>> = Vec::new();
        // The first position of each id (sized by the call, not by the catalog).
        let mut seen: HashMap<u32, usize> = HashMap::with_capacity(candidates.len());
        for (position, c) in candidates.iter().enumerate() {
            if let Some(&first) = seen.get(&c.id) {
                return Err(RerankError::DuplicateCandidate {
                    item: c.id,
                    first,
                    second: position,
                });
            }
            seen.insert(c.id, position);
            match self.items.index_of(c.id) {
                Some(row) => {
                    if let (Some(m), Some(encoder)) = (&c.metadata, &self.content_encoder) {
                        check_metadata(encoder, position, c.id, m)?;
                    }
                    if let Some(v) = &c.vector {
                        self.check_vector(position, c.id, v)?;
                    }
                    rows.push(row as i64);
                    row_places.push(position);
                }
                None => {
                    pushed.push(self.describe(position, c)?);
                    described.ids.insert(c.id, vector_places.len());
                    vector_places.push(position);
                }
            }
        }
        let described_candidates = pushed.len();
        if history_titles.len() > MAX_CANDIDATES {
            return Err(RerankError::HistoryTitle {
                source: Box::new(RerankError::TooManyCandidates {
                    count: history_titles.len(),
                    max: MAX_CANDIDATES,
                }),
            });
        }
        for (position, title) in history_titles.iter().enumerate() {
            if self.items.index_of(title.id).is_some() || described.ids.contains_key(&title.id) {
                continue;
            }
            let how = self
                .describe(position, title)
                .map_err(|e| RerankError::HistoryTitle {
                    source: Box::new(e),
                })?;
            described.ids.insert(title.id, pushed.len());
            pushed.push(how);
        }
        described.rows = self.described_rows(&pushed);
        row_places.extend(vector_places);
        Ok(Resolved {
            described_candidates,
            ids: candidates.iter().map(|c| c.id).collect(),
            rows,
            described,
            places: row_places,
        })
    }

    /// The item vector `[d_model]` the bundle's content encoder gives a title described by
    /// `metadata`: the vector a pushed candidate not in the bundle is scored with. `None` when
    /// the bundle has no content encoder.
    pub fn title_vector(
        &self,
        metadata: &TitleMetadata,
    ) -> Option<Result<Vec<f32>, MetadataError>> {
        self.content_encoder.as_ref().map(|e| e.vector(metadata))
    }

    /// [`Reranker::rerank`] of candidates pushed with metadata: titles the bundle contains are
    /// scored as `rerank` scores them; the others are embedded from their metadata by the
    /// bundle's item content encoder (ages measured as training measured them). A history
    /// event of a title the bundle lacks takes that title's vector as its item row when the
    /// call describes it (refused otherwise, by position). Runs on the CPU engine, or through
    /// burn on the reranker's device for histories of bundled titles (a WGSL engine, if
    /// attached, serves only calls whose candidates the bundle contains).
    pub fn rerank_pushed(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        self.rerank_pushed_with_history(history, candidates, &[], request)
    }

    /// [`Reranker::rerank_pushed`] with `history_titles`: titles of the history that the
    /// bundle lacks, described by vector or metadata as candidates are, but not ranked (a
    /// title the bundle holds, or a candidate describes, is skipped). With every title pushed
    /// this way, a bundle that keeps only its model (`weights::retain_items` down to one
    /// title) reranks for a catalog of any size. CPU engine only, as for any history of
    /// described titles.
    pub fn rerank_pushed_with_history(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (resolved, scores) = self.pushed_call(history, candidates, history_titles, request)?;
        resolved.ranking(read(scores)?)
    }

    /// [`Reranker::rerank_pushed`], reading the scores back asynchronously.
    pub async fn rerank_pushed_async(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        self.rerank_pushed_with_history_async(history, candidates, &[], request)
            .await
    }

    /// [`Reranker::rerank_pushed_with_history`], reading the scores back asynchronously.
    pub async fn rerank_pushed_with_history_async(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (resolved, scores) = self.pushed_call(history, candidates, history_titles, request)?;
        resolved.ranking(read_async(scores).await?)
    }

    /// A stateless call's candidates resolved (with `history_titles` described for its
    /// history) and their scores, not yet read.
    fn pushed_call(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
    ) -> Result<(Resolved, Scores), RerankError> {
        let (seq, resolved) =
            self.prepare_pushed_with(history, candidates, history_titles, request)?;
        let scores = self.pushed_scores(seq, &resolved, self.prompt_of(request)?)?;
        Ok((resolved, scores))
    }

    /// Scores of resolved candidates for the tokens `seq`, whose history may name the
    /// described titles (their item rows follow the model's own).
    fn pushed_scores(
        &self,
        seq: TokenSequence,
        resolved: &Resolved,
        prompt: Option<usize>,
    ) -> Result<Scores, RerankError> {
        let rows = resolved.rows.clone();
        let vectors = &resolved.described.rows;
        // Every described title may be in the history; only the candidates' are scored.
        let scored = resolved.candidate_vectors(self.config.d_model);
        if let Some(host) = &self.host {
            let user = host.encode_prompted(&seq.field_rows(), vectors, prompt);
            return Ok(Scores::Host(host_scores(host, &user, &rows, scored)));
        }
        let item_rows = (self.config.n_items + ITEM_OFFSET as usize) as u32;
        if seq
            .column(TokenField::PrevItem)
            .iter()
            .any(|&r| r >= item_rows)
        {
            return Err(RerankError::DescribedHistoryOffCpu);
        }
        self.scores(seq, rows, scored, prompt)
    }

    /// Validates the history and request, builds the tokens and resolves the candidates, with
    /// `history_titles` described for the history (see [`Reranker::resolve_with_history`]).
    pub(super) fn prepare_pushed_with(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
    ) -> Result<(TokenSequence, Resolved), RerankError> {
        request.check_history(history)?;
        request::validate_events(history)?;
        request.validate()?;
        let resolved = self.resolve_with_history(candidates, history_titles)?;
        let rows_of = ExtendedRows {
            items: &self.items,
            described: &resolved.described.ids,
        };
        let seq = self
            .tokenizer
            .serving_sequence(&rows_of, history, &request.context(history))
            .map_err(|e| RerankError::UnknownHistoryItem {
                position: e.position,
                item: e.item,
            })?;
        Ok((seq, resolved))
    }

    /// [`Reranker::rerank_session`] of candidates pushed with metadata (see
    /// [`Reranker::rerank_pushed`]).
    pub fn rerank_session_pushed(
        &self,
        session: &mut MemberSession,
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        self.rerank_session_pushed_with_history(session, candidates, &[], request)
    }

    /// [`Reranker::rerank_session_pushed`] with `history_titles` described for the session's
    /// history (see [`Reranker::rerank_pushed_with_history`]); the session keeps the vector of
    /// each such title its history names, as it keeps a pushed candidate's once watched.
    pub fn rerank_session_pushed_with_history(
        &self,
        session: &mut MemberSession,
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (resolved, scores) =
            self.session_pushed_scores(session, candidates, history_titles, request)?;
        resolved.ranking(read(scores)?)
    }

    /// [`Reranker::rerank_session_pushed`], reading the scores back asynchronously.
    pub async fn rerank_session_pushed_async(
        &self,
        session: &mut MemberSession,
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        self.rerank_session_pushed_with_history_async(session, candidates, &[], request)
            .await
    }

    /// [`Reranker::rerank_session_pushed_with_history`], reading the scores back
    /// asynchronously.
    pub async fn rerank_session_pushed_with_history_async(
        &self,
        session: &mut MemberSession,
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (resolved, scores) =
            self.session_pushed_scores(session, candidates, history_titles, request)?;
        resolved.ranking(read_async(scores).await?)
    }

    /// A session call's candidates resolved (with `history_titles` described for its history)
    /// and their scores, not yet read.
    fn session_pushed_scores(
        &self,
        session: &mut MemberSession,
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
    ) -> Result<(Resolved, Scores), RerankError> {
        if session.is_empty() {
            request.check_history(&[])?;
        }
        request.validate()?;
        let resolved = self.resolve_with_history(candidates, history_titles)?;
        let scores = self.session_scores_of(
            session,
            resolved.rows.clone(),
            &resolved.described,
            resolved.candidate_vectors(self.config.d_model),
            request,
        )?;
        Ok((resolved, scores))
    }
}
