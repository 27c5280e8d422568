//! What a rerank call takes besides the model, what it returns, and why it can refuse.

use serde::{Deserialize, Serialize};

use crate::data::events::{DeviceType, Event, Surface};
use crate::tokenizer::Context;

use super::MAX_CANDIDATES;

/// The context of the request being served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankRequest {
    /// Surface the candidates will be shown on.
    pub surface: Surface,
    /// Unix time (s) of the request; defaults to the last history event's time.
    pub timestamp: Option<i64>,
    /// Device of the request; defaults to the last history event's.
    pub device: Option<DeviceType>,
    /// ISO country code; defaults to the last history event's.
    pub country: Option<String>,
    /// The prompt set to steer the model with, by name (see [`crate::model::PromptSet`]);
    /// `None`: the model without a prompt. A name the bundle has no prompt set for is refused.
    #[serde(default)]
    pub prompt: Option<String>,
}

impl RerankRequest {
    /// A request on `surface`, everything else taken from the last history event.
    pub fn on(surface: Surface) -> Self {
        Self {
            surface,
            timestamp: None,
            device: None,
            country: None,
            prompt: None,
        }
    }

    /// The same request under the prompt set named `name`.
    pub fn with_prompt(mut self, name: impl Into<String>) -> Self {
        self.prompt = Some(name.into());
        self
    }

    /// Refuses a request time beyond ±[`MAX_TIMESTAMP_S`](crate::data::events::MAX_TIMESTAMP_S).
    pub fn validate(&self) -> Result<(), RerankError> {
        match self.timestamp {
            Some(t) if !crate::data::events::timestamp_in_range(t) => {
                Err(RerankError::RequestTimestampOutOfRange { timestamp: t })
            }
            _ => Ok(()),
        }
    }

    /// The request's token context: its own fields, each missing one taken from the last
    /// history event. With an empty history (a member with none, served under a prompt set)
    /// the timestamp must be given; the device defaults to the web and the country to unknown.
    ///
    /// # Panics
    /// With an empty history and no timestamp (see [`RerankRequest::check_history`]).
    pub fn context(&self, history: &[Event]) -> Context {
        match history.last() {
            Some(last) => Context {
                timestamp: self.timestamp.unwrap_or(last.timestamp),
                surface: self.surface,
                device: self.device.unwrap_or(last.device),
                country: self.country.clone().unwrap_or_else(|| last.country.clone()),
            },
            None => Context {
                timestamp: self
                    .timestamp
                    .expect("a request without history has a timestamp"),
                surface: self.surface,
                device: self.device.unwrap_or(DeviceType::Web),
                country: self.country.clone().unwrap_or_else(|| "??".into()),
            },
        }
    }

    /// Whether this request may be served for `history`: a history with events always; an
    /// empty one (a member with none) only under a prompt set and with the request's time,
    /// so that the prompt and the request's context alone give the ranking.
    pub fn check_history(&self, history: &[Event]) -> Result<(), RerankError> {
        match (history.is_empty(), &self.prompt, self.timestamp) {
            (false, _, _) => Ok(()),
            (true, None, _) => Err(RerankError::EmptyHistory),
            (true, Some(_), None) => Err(RerankError::NoHistoryNoTimestamp),
            (true, Some(_), Some(_)) => Ok(()),
        }
    }
}

/// One member's part of a batch rerank ([`super::Reranker::rerank_batch`]).
#[derive(Debug, Clone)]
pub struct MemberRequest<'a> {
    /// The member's history, oldest first.
    pub history: &'a [Event],
    /// The candidates pushed for this member.
    pub candidates: &'a [u32],
    /// The request's context.
    pub request: RerankRequest,
}

/// One candidate with its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredItem {
    /// External item id.
    pub item: u32,
    /// Model score (higher is better).
    pub score: f32,
}

/// Why a rerank call was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RerankError {
    /// A session was asked to cut its history to `len` events, below the events it has
    /// dropped from memory.
    #[error(
        "the session no longer holds the events before {min_len} (they left the model's window \
         for good); it cannot be truncated to {len} events"
    )]
    TruncatedPastDropped {
        /// The length asked for.
        len: usize,
        /// The shortest length the session can be cut to.
        min_len: usize,
    },
    /// A session's events were dropped (see [`super::MemberSession`]) by a reranker with a
    /// shorter window than this one's, which would need them.
    #[error(
        "the session dropped the events before {first_held} (they had left the window of the \
         model that served it before); this model's window reaches further back: start a new \
         session from the whole history"
    )]
    WindowPastDropped {
        /// The first event the session still holds.
        first_held: usize,
    },
    /// The request names a prompt set the bundle does not have.
    #[error("no prompt set named {name:?} (this bundle has: {known:?})")]
    UnknownPromptSet {
        /// The name asked for.
        name: String,
        /// The bundle's prompt sets.
        known: Vec<String>,
    },
    /// A surface name that is neither a built-in surface nor a prompt set of the bundle.
    #[error("unknown surface {name:?}: use home, search, kids or mobile_feed")]
    UnknownSurface {
        /// The name asked for.
        name: String,
    },
    /// No history events were given (and no prompt set, which could rank without them).
    #[error(
        "the member's history is empty: at least one event is needed (or a prompt set and the \
         request's timestamp)"
    )]
    EmptyHistory,
    /// A member without history under a prompt set, but without the request's time.
    #[error("a member without history is ranked from the request: its timestamp is needed")]
    NoHistoryNoTimestamp,
    /// No candidates were given.
    #[error("the candidate list is empty")]
    EmptyCandidates,
    /// More candidates than one call accepts.
    #[error("{count} candidates given; at most {max} per call")]
    TooManyCandidates {
        /// Candidates given.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A history event names an item the model does not know.
    #[error("history event {position} refers to unknown item id {item}")]
    UnknownHistoryItem {
        /// Index in the history.
        position: usize,
        /// The id.
        item: u32,
    },
    /// A candidate the model does not know.
    #[error(
        "candidate {position} is unknown item id {item} (not in the bundle: a title added since \
         its export can be pushed with its metadata)"
    )]
    UnknownCandidate {
        /// Index in the candidate list.
        position: usize,
        /// The id.
        item: u32,
    },
    /// A candidate the bundle does not contain, given with metadata, for a bundle without an
    /// item content encoder.
    #[error(
        "candidate {position} (item id {item}) is not in the bundle, and the bundle has no content \
         encoder to embed it from its metadata"
    )]
    NoContentEncoder {
        /// Index in the candidate list.
        position: usize,
        /// The id.
        item: u32,
    },
    /// A candidate's metadata the content encoder cannot read.
    #[error("candidate {position} (item id {item}): {source}")]
    InvalidMetadata {
        /// Index in the candidate list.
        position: usize,
        /// The id.
        item: u32,
        /// What is wrong.
        source: crate::serving::MetadataError,
    },
    /// A candidate's pushed item vector does not have one value per model dimension.
    #[error(
        "candidate {position} (item id {item}): its pushed vector has {got} values; this \
         model's item vectors have {expected}"
    )]
    PushedVectorLength {
        /// Index in the candidate list.
        position: usize,
        /// The id.
        item: u32,
        /// The model's width.
        expected: usize,
        /// The values pushed.
        got: usize,
    },
    /// A candidate's pushed item vector has a scale that is negative or not finite.
    #[error(
        "candidate {position} (item id {item}): its pushed vector's scale {scale} is not a \
         finite non-negative number"
    )]
    PushedVectorScale {
        /// Index in the candidate list.
        position: usize,
        /// The id.
        item: u32,
        /// The scale pushed.
        scale: f32,
    },
    /// A title described for the history (not ranked) was refused; `source` says why, its
    /// position being in the list of history titles.
    #[error("history title: {source}")]
    HistoryTitle {
        /// Why, as for a candidate at that position of the history titles.
        source: Box<RerankError>,
    },
    /// A history event names a title the bundle lacks (described by the call), which only the
    /// CPU engine can embed into the history.
    #[error(
        "the history names a title the bundle does not contain: only a reranker on the CPU \
         backend embeds such titles into a history"
    )]
    DescribedHistoryOffCpu,
    /// The same candidate twice.
    #[error("candidate item id {item} appears twice (positions {first} and {second})")]
    DuplicateCandidate {
        /// The id.
        item: u32,
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },
    /// A history event's time lies beyond ±[`MAX_TIMESTAMP_S`](crate::data::events::MAX_TIMESTAMP_S).
    #[error(
        "history event {position} has timestamp {timestamp}, outside ±{} seconds",
        crate::data::events::MAX_TIMESTAMP_S
    )]
    TimestampOutOfRange {
        /// Index in the history.
        position: usize,
        /// The offending time.
        timestamp: i64,
    },
    /// The request's time lies beyond ±[`MAX_TIMESTAMP_S`](crate::data::events::MAX_TIMESTAMP_S).
    #[error(
        "the request's timestamp {timestamp} is outside ±{} seconds",
        crate::data::events::MAX_TIMESTAMP_S
    )]
    RequestTimestampOutOfRange {
        /// The offending time.
        timestamp: i64,
    },
    /// A history event has a NaN or infinite duration.
    #[error("history event {position} has a non-finite duration")]
    NonFiniteDuration {
        /// Index in the history.
        position: usize,
    },
    /// History events are not in time order.
    #[error(
        "history event {position} is older than the event before it; give the history oldest first"
    )]
    HistoryOutOfOrder {
        /// Index of the first out-of-order event.
        position: usize,
    },
    /// The model produced a NaN or infinite score.
    #[error("the model produced a non-finite score for candidate {candidate}")]
    NonFiniteScore {
        /// Index in the candidate list (in the order given).
        candidate: usize,
    },
    /// burn's backend could not read the scores back from the device.
    #[error("reading the scores back from the device failed: {0}")]
    ReadBack(String),
    /// The WGSL engine takes its weights from a reranker on the CPU backend.
    #[error("the WGSL engine attaches to a reranker on the CPU backend")]
    NotOnCpu,
    /// A rerank with a ranking context on a bundle without the contextual ranker.
    #[error(
        "this bundle carries no contextual ranker: rerank without a context, or load a bundle written by `encore ranker --out`"
    )]
    NoRanker,
    /// A contextual rerank's candidate the bundle lacks came without the metadata the ranker
    /// reads (its title name, genres, kind and release year).
    #[error(
        "candidate {position} (item id {item}) is not in the bundle: a contextual rerank needs its metadata with a title name (the ranker matches the query against it)"
    )]
    RankerNeedsTitle {
        /// Index in the candidate list.
        position: usize,
        /// The id.
        item: u32,
    },
    /// Contextual reranks run on the CPU engine, which this reranker lacks.
    #[error("contextual reranks run on the CPU engine; load the reranker on the CPU backend")]
    RankerOffCpu,
    /// The ranking context was refused.
    #[error(transparent)]
    Context(#[from] crate::ranker::RankContextError),
    /// WebGPU scores are read asynchronously only.
    #[error("WebGPU scores are read asynchronously: use rerank_async")]
    SyncReadOnWebGpu,
    /// The WGSL engine refused the model or the request, or the GPU failed.
    #[cfg(feature = "wgsl-engine")]
    #[error(transparent)]
    WgslEngine(#[from] super::engines::wgsl::WgslEngineError),
}

/// Checks the parts of a request that need no model.
pub(crate) fn validate(
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> Result<(), RerankError> {
    request.check_history(history)?;
    validate_candidates(candidates)?;
    validate_events(history)
}

/// The history's events are in time order with finite durations.
pub(crate) fn validate_events(history: &[Event]) -> Result<(), RerankError> {
    for (position, e) in history.iter().enumerate() {
        check_event(e, position.checked_sub(1).map(|p| &history[p]), position)?;
    }
    Ok(())
}

/// The candidate list is neither empty nor longer than [`MAX_CANDIDATES`].
pub(crate) fn validate_candidates(candidates: &[u32]) -> Result<(), RerankError> {
    validate_candidate_count(candidates.len())
}

/// A candidate count is neither 0 nor more than [`MAX_CANDIDATES`].
pub(crate) fn validate_candidate_count(count: usize) -> Result<(), RerankError> {
    if count == 0 {
        return Err(RerankError::EmptyCandidates);
    }
    if count > MAX_CANDIDATES {
        return Err(RerankError::TooManyCandidates {
            count,
            max: MAX_CANDIDATES,
        });
    }
    Ok(())
}

/// Event `position` (after `prev`) has a finite duration and is not older than `prev`.
pub(crate) fn check_event(
    e: &Event,
    prev: Option<&Event>,
    position: usize,
) -> Result<(), RerankError> {
    if !e.duration_s.is_finite() {
        return Err(RerankError::NonFiniteDuration { position });
    }
    if !crate::data::events::timestamp_in_range(e.timestamp) {
        return Err(RerankError::TimestampOutOfRange {
            position,
            timestamp: e.timestamp,
        });
    }
    if prev.is_some_and(|p| e.timestamp < p.timestamp) {
        return Err(RerankError::HistoryOutOfOrder { position });
    }
    Ok(())
}
