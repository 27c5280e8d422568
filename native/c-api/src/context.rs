//! Contextual reranks over the C interface: the bundle's ranker scores a member's candidates
//! for a task (search, home row, more like this, …) and its context.

use encore_core::ranker::RankContext;
use encore_core::{RerankRequest, Reranker, ScoredItem};

use crate::inputs::{EncoreHistory, EncoreRequest, request_or_default, text};
use crate::reranker::{EncoreReranker, candidate_ids, live_reranker, refused, write_ranking};
use crate::session::{EncoreSession, live_session};
use crate::status::{EncoreStatus, Failure, guard};

/// [`EncoreContext::source`]: no source title.
pub const ENCORE_NO_SOURCE: u32 = u32::MAX;

/// One request's context for the bundle's contextual ranker. A field left out (`NULL`,
/// [`ENCORE_NO_SOURCE`], `has_alpha` 0) is imputed by the task's learned default; the
/// country, and the surface and device of the [`EncoreRequest`], default to the request's.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EncoreContext {
    /// The task's name, one of the bundle's (NUL-terminated UTF-8; required).
    pub task: *const std::ffi::c_char,
    /// The typed query (`NULL`: none); at most 256 bytes with at least one word.
    pub query: *const std::ffi::c_char,
    /// The title a "more like this" page starts from, in the bundle ([`ENCORE_NO_SOURCE`]:
    /// none).
    pub source: u32,
    /// ISO country code (`NULL`: the request's).
    pub country: *const std::ffi::c_char,
    /// ISO 639-1 language code (`NULL`: none).
    pub language: *const std::ffi::c_char,
    /// The personalization weight in [0, 1], read when `has_alpha` is non-zero (else the
    /// task's default).
    pub alpha: f32,
    /// Whether `alpha` is given.
    pub has_alpha: u8,
}

impl EncoreContext {
    /// The context, strings checked (UTF-8); the ranker checks the rest.
    ///
    /// # Safety
    /// Non-null strings must be NUL-terminated.
    unsafe fn context(&self) -> Result<RankContext, Failure> {
        // SAFETY (all): the caller's contract.
        let task = unsafe { text(self.task, || "context task".into())? }
            .ok_or_else(|| Failure::null("context.task"))?;
        Ok(RankContext {
            task,
            query: unsafe { text(self.query, || "context query".into())? },
            source: (self.source != ENCORE_NO_SOURCE).then_some(self.source),
            country: unsafe { text(self.country, || "context country".into())? },
            language: unsafe { text(self.language, || "context language".into())? },
            alpha: (self.has_alpha != 0).then_some(self.alpha),
            ..RankContext::default()
        })
    }
}

/// The context behind `ptr`, or a failure naming it.
///
/// # Safety
/// A non-null `ptr` must point at a valid [`EncoreContext`].
unsafe fn context_of(ptr: *const EncoreContext) -> Result<RankContext, Failure> {
    // SAFETY: the caller's contract.
    let c = unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null("context"))?;
    // SAFETY: the caller's contract.
    unsafe { c.context() }
}

/// The arguments both contextual entry points share, checked, handed to `rank`; its ranking
/// written out.
///
/// # Safety
/// Every pointer must be valid for what it describes for the call.
#[allow(clippy::too_many_arguments)]
unsafe fn contextual_call(
    reranker: *const EncoreReranker,
    candidates: *const u32,
    n_candidates: usize,
    request: *const EncoreRequest,
    context: *const EncoreContext,
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
    rank: impl FnOnce(
        &Reranker,
        &[u32],
        &RerankRequest,
        &RankContext,
    ) -> Result<Vec<ScoredItem>, Failure>,
) -> EncoreStatus {
    guard(|| {
        // SAFETY (all below): the caller's contract.
        let r = unsafe { live_reranker(reranker)? };
        let ids = unsafe { candidate_ids(candidates, n_candidates, capacity)? };
        let request = unsafe { request_or_default(request)? };
        let context = unsafe { context_of(context)? };
        let ranking = rank(r, ids, &request, &context)?;
        unsafe { write_ranking(&ranking, out_items, out_scores, capacity) }
    })
}

/// Reranks `n_candidates` item ids (in the bundle) for a member with `history` by the bundle's
/// contextual ranker under `context`, the member's representation computed as
/// [`encore_rerank`] computes it for `request`. Writes the candidates best first into
/// `out_items` and their scores into `out_scores` (`capacity` ≥ `n_candidates` entries each).
/// Refused by name: a bundle without a ranker, an unknown task, an empty or overlong query, a
/// source not in the bundle, α NaN or outside [0, 1].
///
/// [`encore_rerank`]: crate::reranker::encore_rerank
///
/// # Safety
/// Every pointer must be valid for what it describes for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_rerank_in_context(
    reranker: *const EncoreReranker,
    history: *const EncoreHistory,
    candidates: *const u32,
    n_candidates: usize,
    request: *const EncoreRequest,
    context: *const EncoreContext,
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
) -> EncoreStatus {
    // SAFETY (all below): the caller's contract.
    unsafe {
        contextual_call(
            reranker,
            candidates,
            n_candidates,
            request,
            context,
            out_items,
            out_scores,
            capacity,
            |r, ids, request, context| {
                let history = history.as_ref().ok_or_else(|| Failure::null("history"))?;
                let events = history.events("history")?;
                r.rerank_in_context(&events, ids, request, context)
                    .map_err(refused)
            },
        )
    }
}

/// [`encore_rerank_in_context`] for the session's member: the history's keys and values are
/// reused, so a new query or α on the same history encodes the request token alone.
///
/// # Safety
/// `reranker` and `session` must be live; the other pointers valid for what they describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_rerank_in_context(
    reranker: *const EncoreReranker,
    session: *mut EncoreSession,
    candidates: *const u32,
    n_candidates: usize,
    request: *const EncoreRequest,
    context: *const EncoreContext,
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
) -> EncoreStatus {
    // SAFETY (all below): the caller's contract.
    unsafe {
        contextual_call(
            reranker,
            candidates,
            n_candidates,
            request,
            context,
            out_items,
            out_scores,
            capacity,
            |r, ids, request, context| {
                let s = live_session(session)?;
                r.rerank_session_in_context(s, ids, request, context)
                    .map_err(refused)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_reads_its_fields_and_leaves_out_what_is_absent() {
        let (task, query, fr) = (c"search", c"star wa", c"FR");
        let full = EncoreContext {
            task: task.as_ptr(),
            query: query.as_ptr(),
            source: 1042,
            country: fr.as_ptr(),
            language: std::ptr::null(),
            alpha: 0.25,
            has_alpha: 1,
        };
        let c = unsafe { full.context() }.unwrap();
        assert_eq!(
            c,
            RankContext {
                country: Some("FR".into()),
                ..RankContext::task("search")
                    .with_query("star wa")
                    .with_source(1042)
                    .with_alpha(0.25)
            }
        );
        let bare = EncoreContext {
            query: std::ptr::null(),
            source: ENCORE_NO_SOURCE,
            country: std::ptr::null(),
            has_alpha: 0,
            ..full
        };
        assert_eq!(
            unsafe { bare.context() }.unwrap(),
            RankContext::task("search")
        );
        let no_task = EncoreContext {
            task: std::ptr::null(),
            ..full
        };
        let e = unsafe { no_task.context() }.unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (EncoreStatus::NullArgument, "context.task is NULL")
        );
        let e = unsafe { context_of(std::ptr::null()) }.unwrap_err();
        assert_eq!(e.message, "context is NULL");
    }
}
