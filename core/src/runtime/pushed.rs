//! Candidates pushed with their metadata: a server may push titles added to its catalog after
//! the bundle was exported. The bundle's item content encoder embeds them on the device from
//! what the server says about them; candidates the bundle contains keep their bundled vectors.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::request::{self, RerankError, RerankRequest, ScoredItem};
use super::session::{DescribedTitles, ExtendedRows, MemberSession};
use super::{Reranker, Scores, finite, host_scores, order, read, read_async};
use crate::data::events::Event;
use crate::serving::{MetadataError, TitleMetadata};
use crate::tokenizer::{ITEM_OFFSET, TokenField, TokenSequence};

/// One candidate as a server pushes it: an item id and, for a title the bundle may not
/// contain, its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// External item id.
    pub id: u32,
    /// What the server says about the title. A candidate the bundle contains is scored with
    /// its bundled vector (its metadata, when given, is still checked); one it does not
    /// contain is embedded from this, and refused without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TitleMetadata>,
}

impl Candidate {
    /// A candidate by id alone (the bundle must contain it).
    pub fn known(id: u32) -> Self {
        Self { id, metadata: None }
    }

    /// A candidate with its title's metadata.
    pub fn with_metadata(id: u32, metadata: TitleMetadata) -> Self {
        Self {
            id,
            metadata: Some(metadata),
        }
    }
}

/// A call's candidates resolved: the bundled ones' dense rows and the others' item vectors,
/// with each one's place in the call's list (rows first, then vectors).
pub(super) struct Resolved {
    /// The candidates' ids, in the call's order.
    pub ids: Vec<u32>,
    /// Dense rows of the bundled candidates.
    pub rows: Vec<i64>,
    /// The others, described by their metadata: their item vectors `[m, d]`, in order.
    pub described: DescribedTitles,
    /// The call position of each score: the rows' candidates, then the described ones'.
    pub places: Vec<usize>,
}

impl Resolved {
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
    /// Resolves `candidates`: refuses an empty or too long list, a repeated id, metadata the
    /// content encoder cannot read, and a title neither in the bundle nor given with metadata.
    fn resolve(&self, candidates: &[Candidate]) -> Result<Resolved, RerankError> {
        request::validate_candidate_count(candidates.len())?;
        let mut rows = Vec::with_capacity(candidates.len());
        let mut row_places = Vec::with_capacity(candidates.len());
        let mut described = DescribedTitles::default();
        let mut vector_places = Vec::new();
        // The metadata of the titles to embed, checked, in order (embedded together below).
        let mut pushed: Vec<&TitleMetadata> = Vec::new();
        // Position + 1 of each bundled row seen (0: not yet); first position of each other id.
        let mut seen_rows = vec![0u32; self.items.len()];
        let mut seen_others: HashMap<u32, usize> = HashMap::new();
        for (position, c) in candidates.iter().enumerate() {
            let duplicate = |first| RerankError::DuplicateCandidate {
                item: c.id,
                first,
                second: position,
            };
            match self.items.index_of(c.id) {
                Some(row) if seen_rows[row] > 0 => {
                    return Err(duplicate(seen_rows[row] as usize - 1));
                }
                Some(row) => seen_rows[row] = position as u32 + 1,
                None => {
                    if let Some(&first) = seen_others.get(&c.id) {
                        return Err(duplicate(first));
                    }
                    seen_others.insert(c.id, position);
                }
            }
            let invalid = |source| RerankError::InvalidMetadata {
                position,
                item: c.id,
                source,
            };
            match (self.items.index_of(c.id), &c.metadata) {
                (Some(row), metadata) => {
                    if let (Some(m), Some(encoder)) = (metadata, &self.content_encoder) {
                        encoder.check(m).map_err(invalid)?;
                    }
                    rows.push(row as i64);
                    row_places.push(position);
                }
                (None, Some(m)) => {
                    let encoder =
                        self.content_encoder
                            .as_ref()
                            .ok_or(RerankError::NoContentEncoder {
                                position,
                                item: c.id,
                            })?;
                    encoder.check(m).map_err(invalid)?;
                    pushed.push(m);
                    described.ids.insert(c.id, vector_places.len());
                    vector_places.push(position);
                }
                (None, None) => {
                    return Err(RerankError::UnknownCandidate {
                        position,
                        item: c.id,
                    });
                }
            }
        }
        if let Some(encoder) = &self.content_encoder {
            described.rows = encoder.vectors(&pushed);
        }
        row_places.extend(vector_places);
        Ok(Resolved {
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
        let (seq, resolved) = self.prepare_pushed(history, candidates, request)?;
        let scores = self.pushed_scores(seq, &resolved, self.prompt_of(request)?)?;
        Ok(order(
            &resolved.ids,
            &finite(resolved.place(read(scores)?))?,
        ))
    }

    /// [`Reranker::rerank_pushed`], reading the scores back asynchronously.
    pub async fn rerank_pushed_async(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (seq, resolved) = self.prepare_pushed(history, candidates, request)?;
        let scores = self.pushed_scores(seq, &resolved, self.prompt_of(request)?)?;
        Ok(order(
            &resolved.ids,
            &finite(resolved.place(read_async(scores).await?))?,
        ))
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
        if let Some(host) = &self.host {
            let user = host.encode_prompted(&seq.field_rows(), vectors, prompt);
            return Ok(Scores::Host(host_scores(host, &user, &rows, vectors)));
        }
        let item_rows = (self.config.n_items + ITEM_OFFSET as usize) as u32;
        if seq
            .column(TokenField::PrevItem)
            .iter()
            .any(|&r| r >= item_rows)
        {
            return Err(RerankError::DescribedHistoryOffCpu);
        }
        self.scores(seq, rows, vectors, prompt)
    }

    /// Validates the history and request, builds the tokens and resolves the candidates.
    fn prepare_pushed(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<(TokenSequence, Resolved), RerankError> {
        request.check_history(history)?;
        request::validate_events(history)?;
        request.validate()?;
        let resolved = self.resolve(candidates)?;
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
        let resolved = self.resolve_for_session(session, candidates, request)?;
        let scores =
            self.session_scores_of(session, resolved.rows.clone(), &resolved.described, request)?;
        Ok(order(
            &resolved.ids,
            &finite(resolved.place(read(scores)?))?,
        ))
    }

    /// [`Reranker::rerank_session_pushed`], reading the scores back asynchronously.
    pub async fn rerank_session_pushed_async(
        &self,
        session: &mut MemberSession,
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let resolved = self.resolve_for_session(session, candidates, request)?;
        let scores =
            self.session_scores_of(session, resolved.rows.clone(), &resolved.described, request)?;
        Ok(order(
            &resolved.ids,
            &finite(resolved.place(read_async(scores).await?))?,
        ))
    }

    /// The candidates of a session call resolved at the request's time.
    fn resolve_for_session(
        &self,
        session: &MemberSession,
        candidates: &[Candidate],
        request: &RerankRequest,
    ) -> Result<Resolved, RerankError> {
        if session.is_empty() {
            request.check_history(&[])?;
        }
        request.validate()?;
        self.resolve(candidates)
    }
}
