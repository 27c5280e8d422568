//! A member session over the C interface: create, append, rerank, truncate, free.

use encore_core::MemberSession;

use crate::inputs::{EncoreHistory, EncoreRequest};
use crate::reranker::{EncoreReranker, refused};
use crate::status::{EncoreStatus, Failure, guard};

/// One member's history and the keys and values cached from it, so that a rerank after an
/// append encodes only the new events. Opaque: made by [`encore_session_new`], released by
/// [`encore_session_free`]. One thread at a time.
pub struct EncoreSession(MemberSession);

/// The session behind `ptr`.
///
/// # Safety
/// A non-null `ptr` must come from [`encore_session_new`] and not be freed.
pub(crate) unsafe fn live_session<'a>(
    ptr: *mut EncoreSession,
) -> Result<&'a mut MemberSession, Failure> {
    // SAFETY: the caller's contract.
    unsafe { ptr.as_mut() }
        .map(|s| &mut s.0)
        .ok_or_else(|| Failure::null("session"))
}

/// Starts a session over `history` (`NULL` or empty: no events yet; at least one is needed
/// before the first rerank) and stores it in `*out` (`NULL` on failure). The history is
/// copied.
///
/// # Safety
/// `history`, when non-null, must be valid as [`EncoreHistory`] describes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_new(
    history: *const EncoreHistory,
    out: *mut *mut EncoreSession,
) -> EncoreStatus {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY (all below): the caller's contract.
        unsafe { *out = std::ptr::null_mut() };
        let events = match unsafe { history.as_ref() } {
            None => Vec::new(),
            Some(h) => unsafe { h.events("history")? },
        };
        let session = MemberSession::new(events).map_err(refused)?;
        unsafe { *out = Box::into_raw(Box::new(EncoreSession(session))) };
        Ok(())
    })
}

/// Appends `events` (oldest first, none older than the session's last event) to the session.
/// All or nothing: on a refusal the session's history is as before.
///
/// # Safety
/// `session` must be live; `events` valid as [`EncoreHistory`] describes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_append(
    session: *mut EncoreSession,
    events: *const EncoreHistory,
) -> EncoreStatus {
    guard(|| {
        // SAFETY (all below): the caller's contract.
        let s = unsafe { live_session(session)? };
        let events = unsafe { events.as_ref() }.ok_or_else(|| Failure::null("events"))?;
        let events = unsafe { events.events("events")? };
        let before = s.len();
        for (k, e) in events.into_iter().enumerate() {
            if let Err(e) = s.append(e) {
                // Cutting back to a length the session had is always allowed.
                let _ = s.truncate(before);
                return Err(Failure::new(
                    EncoreStatus::Refused,
                    format!("appended event {k} (history position {}): {e}", before + k),
                ));
            }
        }
        Ok(())
    })
}

/// Number of events in the session's history (0 for `NULL`).
///
/// # Safety
/// A non-null `session` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_len(session: *const EncoreSession) -> usize {
    // SAFETY: the caller's contract.
    unsafe { session.as_ref() }.map_or(0, |s| s.0.len())
}

/// Keeps the first `len` events of the session's history (e.g. to drop an appended event the
/// reranker refused); the next rerank re-encodes the window. Refused (`ENCORE_STATUS_REFUSED`)
/// below the events a long session has dropped from memory.
///
/// # Safety
/// `session` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_truncate(
    session: *mut EncoreSession,
    len: usize,
) -> EncoreStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        unsafe { live_session(session)? }
            .truncate(len)
            .map_err(crate::reranker::refused)
    })
}

/// Reranks `n_candidates` item ids for the session's member, like [`encore_rerank`] with the
/// session's history, reusing what earlier calls encoded. The same arguments give the same
/// ranking as [`encore_rerank`] on the whole history.
///
/// [`encore_rerank`]: crate::reranker::encore_rerank
///
/// # Safety
/// `reranker` and `session` must be live; the other pointers valid for what they describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_rerank(
    reranker: *const EncoreReranker,
    session: *mut EncoreSession,
    candidates: *const u32,
    n_candidates: usize,
    request: *const EncoreRequest,
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
) -> EncoreStatus {
    // SAFETY: the caller's contract; no titles are described.
    unsafe {
        crate::pushed::encore_session_rerank_pushed(
            reranker,
            session,
            candidates,
            n_candidates,
            std::ptr::null(),
            request,
            out_items,
            out_scores,
            capacity,
        )
    }
}

/// Releases a session (`NULL` is ignored).
///
/// # Safety
/// `session` must come from [`encore_session_new`] and be freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_free(session: *mut EncoreSession) {
    if !session.is_null() {
        let _ = guard(|| {
            // SAFETY: the caller's contract.
            drop(unsafe { Box::from_raw(session) });
            Ok(())
        });
    }
}
