//! A member's history kept on the device between reranks, with the keys and values the model
//! already computed for it, so that a new local event costs one token's forward pass.

use std::collections::HashMap;

use crate::data::catalog::{ItemRows, ItemVocabulary};
use crate::data::events::Event;
use crate::model::KvCache;
use crate::tokenizer::{RolledEvent, TokenSequence};

use super::{
    CpuKvCache, RerankError, RerankRequest, Reranker, ScoredItem, Scores, ranked, ranked_async,
    request,
};

/// Where a session's cached keys and values live.
/// A session's user representation: in host memory (CPU engine) or on the device `[1, d]`.
/// Short-lived (one call), so the device variant's size is not boxed away.
#[allow(clippy::large_enum_variant)]
pub(super) enum SessionUser {
    Host(Vec<f32>),
    Device(burn::tensor::Tensor<2>),
}

#[derive(Debug, Clone)]
pub(super) enum SessionCache {
    /// On the model's device, as burn tensors.
    Device(KvCache),
    /// In host memory, for the CPU step ([`super::CpuEngine::step`]).
    Host(CpuKvCache),
}

impl Default for SessionCache {
    fn default() -> Self {
        Self::Device(KvCache::default())
    }
}

impl SessionCache {
    fn len(&self) -> usize {
        match self {
            Self::Device(c) => c.len(),
            Self::Host(c) => c.len(),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Self::Device(c) => c.truncate(len),
            Self::Host(c) => c.truncate(len),
        }
    }

    /// The device cache (a session of a reranker on wgpu).
    fn on_device(&mut self) -> &mut KvCache {
        match self {
            Self::Device(c) => c,
            Self::Host(_) => unreachable!("the session belongs to a CPU reranker"),
        }
    }

    /// The host-memory cache (a session of a reranker on the CPU).
    fn in_host(&mut self) -> &mut CpuKvCache {
        match self {
            Self::Host(c) => c,
            Self::Device(_) => unreachable!("the session belongs to a reranker on wgpu"),
        }
    }
}

/// One member's on-device state: the history (oldest first) and the cached keys and values of
/// its tokens.
///
/// Rerank it with [`super::Reranker::rerank_session`]; the scores equal a stateless
/// [`super::Reranker::rerank`] of the same history (to float rounding). Each call encodes only
/// the tokens that differ from the last call's: after [`MemberSession::append`], the new
/// event's token and the request token. When the history outgrows the model's window, the
/// window moves and the next call re-encodes it in full, so that the result stays exactly
/// the stateless one: at every appended event by default, once every `step` events with
/// [`super::Reranker::with_window_step`].
///
/// Memory stays bounded however long the session runs: once the window has moved far enough,
/// the events and rolled events no window can reach again are dropped (the session keeps one
/// window's worth before the current window), so a session of 100,000 appends holds what one of
/// a few hundred does. [`MemberSession::len`] still counts every event.
#[derive(Debug, Clone, Default)]
pub struct MemberSession {
    /// The events the session holds, oldest first: `history[k]` is event `first_event + k`.
    pub(super) history: Vec<Event>,
    /// Events dropped from the front of `history` (see the type's docs).
    pub(super) first_event: usize,
    /// The history rolled up as far as event `rolled_events`: `rolled[k]` is rolled event
    /// `first_rolled + k`.
    pub(super) rolled: Vec<RolledEvent>,
    /// Rolled events dropped from the front of `rolled`.
    pub(super) first_rolled: usize,
    /// History events (counted from the start of the whole history) already in `rolled`.
    pub(super) rolled_events: usize,
    /// The shortest length [`MemberSession::truncate`] may cut the history to: shorter would
    /// need dropped events.
    pub(super) min_len: usize,
    /// Rolled event (counted from the start) of the first token of the cached window.
    pub(super) window_first: usize,
    /// Tokens whose keys and values `cache` holds, in order.
    pub(super) cached: TokenSequence,
    pub(super) cache: SessionCache,
    /// The reranker the cache was computed by (see `Reranker::id`).
    pub(super) owner: Option<u64>,
    /// Tokens the last rerank encoded.
    pub(super) last_encoded: usize,
    /// Titles the bundle lacks that the history names, as calls described them.
    pub(super) described: DescribedTitles,
}

/// Titles a bundle lacks, given item rows after the model's own: `ids[id]` is the title's index
/// in `rows` `[k, d]` (its item row is `n_items + ITEM_OFFSET + index`).
#[derive(Debug, Clone, Default)]
pub(super) struct DescribedTitles {
    pub(super) ids: HashMap<u32, usize>,
    pub(super) rows: Vec<f32>,
}

impl DescribedTitles {
    /// Whether no title is described.
    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A model's item rows extended by described titles (see [`DescribedTitles`]).
pub(super) struct ExtendedRows<'a> {
    pub(super) items: &'a ItemVocabulary,
    pub(super) described: &'a HashMap<u32, usize>,
}

impl ItemRows for ExtendedRows<'_> {
    fn row_of(&self, id: u32) -> Option<usize> {
        self.items
            .index_of(id)
            .or_else(|| self.described.get(&id).map(|k| self.items.len() + k))
    }
}

impl MemberSession {
    /// A session over `history` (oldest first; checked like a rerank's history, except that
    /// it may be empty until the first rerank).
    pub fn new(history: Vec<Event>) -> Result<Self, RerankError> {
        request::validate_events(&history)?;
        Ok(Self {
            history,
            ..Self::default()
        })
    }

    /// Adds a local event at the end of the history. It must not be older than the last one
    /// and its duration must be finite; its item is checked at the next rerank.
    pub fn append(&mut self, event: Event) -> Result<(), RerankError> {
        request::check_event(&event, self.history.last(), self.len())?;
        self.history.push(event);
        Ok(())
    }

    /// Keeps the first `len` events, e.g. to drop an appended event whose item the model does
    /// not know (the rerank refused it). The next rerank re-encodes the window. Refused when
    /// the events before `len` include ones the session has dropped (see the type's docs):
    /// only events from [`MemberSession::min_len`] on can be cut.
    pub fn truncate(&mut self, len: usize) -> Result<(), RerankError> {
        if len >= self.len() {
            return Ok(());
        }
        if len < self.min_len {
            return Err(RerankError::TruncatedPastDropped {
                len,
                min_len: self.min_len,
            });
        }
        self.history.truncate(len - self.first_event);
        self.clear_cache();
        Ok(())
    }

    /// Events in the whole history, those dropped from memory included.
    pub fn len(&self) -> usize {
        self.first_event + self.history.len()
    }

    /// Whether the history has no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shortest length [`MemberSession::truncate`] accepts (0 until the session drops
    /// events).
    pub fn min_len(&self) -> usize {
        self.min_len
    }

    /// The events the session still holds, oldest first: the whole history until the session
    /// drops events no window can reach again, then its last events (from event
    /// `len() - history().len()` on).
    pub fn history(&self) -> &[Event] {
        &self.history
    }

    /// Tokens whose keys and values are cached.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Tokens the last rerank had to encode (the rest came from the cache).
    pub fn last_encoded_tokens(&self) -> usize {
        self.last_encoded
    }

    /// Drops the cached keys and values (the next rerank encodes the whole window).
    pub fn clear_cache(&mut self) {
        // The held events start at a rolled event's first one: rolling them again from there
        // gives the same rolled events.
        self.rolled.clear();
        self.rolled_events = self.first_event;
        self.window_first = self.first_rolled;
        self.cached = TokenSequence::default();
        self.cache = SessionCache::default();
        self.owner = None;
        self.described = DescribedTitles::default();
    }
}

impl MemberSession {
    /// Drops the events and rolled events more than one window (`max_len` tokens) before the
    /// cached window, once there are at least `max(max_len, 256)` of them (so that dropping
    /// costs O(1) per event over a session). A truncation that keeps the window's first
    /// rolled event leaves a window start after the kept ones (the window moves back at most
    /// `max_len - 1` rolled events), so [`MemberSession::min_len`] becomes that event's first
    /// history event.
    fn drop_unreachable(&mut self, max_len: usize) {
        let keep_from = self.window_first.saturating_sub(max_len + 1);
        let drop = keep_from.saturating_sub(self.first_rolled);
        if drop < max_len.max(256) {
            return;
        }
        let events: usize = self.rolled[..drop].iter().map(|r| r.count as usize).sum();
        self.rolled.drain(..drop);
        self.first_rolled += drop;
        self.history.drain(..events);
        self.first_event += events;
        let before_window: usize = self.rolled[..self.window_first - self.first_rolled]
            .iter()
            .map(|r| r.count as usize)
            .sum();
        self.min_len = self.first_event + before_window;
    }
}

impl Reranker {
    /// Scores of the candidates for a [`MemberSession`], encoding only the tokens that changed
    /// since the session's last call: `[n_candidates]`.
    fn session_scores(
        &self,
        session: &mut MemberSession,
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<Scores, RerankError> {
        // Every event was checked when it joined the session.
        if session.is_empty() {
            request.check_history(&[])?;
        }
        request::validate_candidates(candidates)?;
        let rows = self.candidate_rows(candidates)?;
        self.session_scores_of(session, rows, &DescribedTitles::default(), &[], request)
    }

    /// [`Reranker::session_scores`] of resolved candidates: dense `rows`, then the described
    /// candidates' vectors `scored` `[m, d]`. History events of titles the bundle lacks are
    /// embedded with the vector that the first call describing them gave (`call`, kept in the
    /// session) and refused if no call described them (history checked non-empty).
    pub(super) fn session_scores_of(
        &self,
        session: &mut MemberSession,
        rows: Vec<i64>,
        call: &DescribedTitles,
        scored: &[f32],
        request: &RerankRequest,
    ) -> Result<Scores, RerankError> {
        request.validate()?;
        let prompt = self.prompt_of(request)?;
        if session.is_empty() {
            // A member without history (under a prompt set, checked by the caller): the
            // request token alone, nothing to cache.
            request.check_history(&[])?;
            let seq = self.serving_sequence(&[], request)?;
            session.last_encoded = seq.len() + self.prompt_tokens(prompt);
            return self.scores(seq, rows, scored, prompt);
        }
        Ok(match self.session_user(session, call, request, prompt)? {
            SessionUser::Host(user) => {
                let host = self
                    .host
                    .as_ref()
                    .expect("a host user comes from the CPU engine");
                Scores::Host(super::host_scores(host, &user, &rows, scored))
            }
            SessionUser::Device(user) => {
                super::burn_forward_in_this_build();
                self.score_user(user, rows, scored)
            }
        })
    }

    /// The user representation of a non-empty `session` for `request` (under `prompt`),
    /// encoding only the tokens that changed since its last call and caching their keys and
    /// values (see [`Reranker::session_scores_of`] for `call`).
    pub(super) fn session_user(
        &self,
        session: &mut MemberSession,
        call: &DescribedTitles,
        request: &RerankRequest,
        prompt: Option<usize>,
    ) -> Result<SessionUser, RerankError> {
        if session.owner != Some(self.id) {
            session.clear_cache();
            // A reranker keeps its sessions' caches where its forward runs, for good.
            session.cache = match &self.host {
                Some(host) => SessionCache::Host(host.empty_cache()),
                None => SessionCache::Device(KvCache::new(self.config.n_layers)),
            };
            session.owner = Some(self.id);
        }
        // Titles the bundle lacks that the new events name get item rows, once per session.
        let d = self.config.d_model;
        for e in &session.history[session.rolled_events - session.first_event..] {
            if self.items.index_of(e.item).is_none()
                && !session.described.ids.contains_key(&e.item)
                && let Some(&k) = call.ids.get(&e.item)
            {
                let next = session.described.ids.len();
                session.described.ids.insert(e.item, next);
                session
                    .described
                    .rows
                    .extend_from_slice(&call.rows[k * d..(k + 1) * d]);
            }
        }
        if self.host.is_none() && !session.described.is_empty() {
            session.clear_cache();
            return Err(RerankError::DescribedHistoryOffCpu);
        }
        // Roll up only the events appended since the last call.
        let (old_rolled, done) = (
            session.first_rolled + session.rolled.len(),
            session.rolled_events,
        );
        let rows_of = ExtendedRows {
            items: &self.items,
            described: &session.described.ids,
        };
        if let Err(e) = self.tokenizer.roll_up_onto(
            &rows_of,
            &session.history[done - session.first_event..],
            done,
            &mut session.rolled,
        ) {
            session.clear_cache();
            return Err(RerankError::UnknownHistoryItem {
                position: e.position,
                item: e.item,
            });
        }
        session.rolled_events = session.len();
        let rolled = session.first_rolled + session.rolled.len();
        let first = self.tokenizer.window_start(rolled);
        // The window's first token needs the rolled event before it (its "what").
        if session.first_rolled > 0 && first <= session.first_rolled {
            session.clear_cache();
            return Err(RerankError::WindowPastDropped {
                first_held: session.first_event,
            });
        }
        // Tokens before the last previously rolled event cannot have changed (that event may
        // have absorbed new ones) unless the window moved; build only the rest.
        let from = if first == session.window_first {
            first.max(old_rolled.saturating_sub(1))
        } else {
            first
        };
        let tail = self.tokenizer.serving_tokens(
            &session.rolled,
            from - session.first_rolled,
            &request.context(&session.history),
        );
        let unchanged = (from - first).min(session.cached.len());
        // The last token is the request's: never cached, since the next request differs.
        let tail_events = tail.len() - 1;
        let matched = (0..tail_events.min(session.cached.len() - unchanged))
            .take_while(|&k| session.cached.same_input(unchanged + k, &tail, k))
            .count();
        let keep = unchanged + matched;
        session.cache.truncate(keep);
        let fresh = tail.slice(matched..tail.len());
        session.last_encoded = fresh.len() + self.prompt_tokens(prompt);
        let user = match &self.host {
            // On the CPU: the fused step over the new tokens, all in host memory.
            Some(host) => {
                let fields = fresh.field_rows();
                let cache = session.cache.in_host();
                SessionUser::Host(match prompt {
                    Some(p) => host.step_prompted(&fields, &session.described.rows, cache, p),
                    None => host.step_with(&fields, &session.described.rows, cache),
                })
            }
            None => {
                super::burn_forward_in_this_build();
                let cache = session.cache.on_device();
                let last = self.device_user(&fresh, Some(cache), prompt);
                SessionUser::Device(self.model().user_representation(last)) // [1, d]
            }
        };
        let events = keep + tail_events - matched;
        session.cache.truncate(events);
        session.cached = session.cached.slice(0..keep);
        session.cached.extend(&tail.slice(matched..tail_events));
        session.window_first = first;
        session.drop_unreachable(self.config.max_len);
        Ok(user)
    }

    /// Reranks `candidates` for the member of `session`, reusing the keys and values cached
    /// by its previous calls (see [`MemberSession`]). Synchronous, like [`Reranker::rerank`].
    pub fn rerank_session(
        &self,
        session: &mut MemberSession,
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        ranked(
            candidates,
            self.session_scores(session, candidates, request)?,
        )
    }

    /// Same as [`Reranker::rerank_session`], reading the scores back asynchronously.
    pub async fn rerank_session_async(
        &self,
        session: &mut MemberSession,
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        ranked_async(
            candidates,
            self.session_scores(session, candidates, request)?,
        )
        .await
    }
}
