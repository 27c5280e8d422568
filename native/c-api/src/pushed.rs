//! Titles the bundle lacks, pushed with their int8 item vectors: reranks of such candidates,
//! and histories that name such titles, statelessly and in a session.

use encore_core::runtime::{Candidate, MAX_CANDIDATES};
use encore_core::{PushedVector, Reranker};

use crate::inputs::{EncoreHistory, EncoreRequest, request_or_default, slice};
use crate::reranker::{EncoreReranker, candidate_ids, live_reranker, refused, write_ranking};
use crate::session::{EncoreSession, live_session};
use crate::status::{EncoreStatus, Failure, guard};

/// The most titles one call may describe: a full candidate list and as many history titles.
pub const ENCORE_MAX_TITLE_VECTORS: usize = 20_000;
const _: () = assert!(ENCORE_MAX_TITLE_VECTORS == 2 * MAX_CANDIDATES);

/// Titles described by their item vectors, as the same model's export stores its int8 rows:
/// title `k` has id `ids[k]`, the values `values[k * dim .. (k + 1) * dim]` (whole numbers in
/// −127…127; `dim` is [`encore_reranker_dim`]) and the scale `scales[k]` (value = q × scale).
/// A described title that is a candidate is scored with its vector (when the bundle lacks
/// it); the others describe titles of the history, which are not ranked.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EncoreTitleVectors {
    /// Number of titles (at most `ENCORE_MAX_TITLE_VECTORS`).
    pub n: usize,
    /// Their ids.
    pub ids: *const u32,
    /// `n × dim` int8 values, row after row.
    pub values: *const i8,
    /// `n` scales.
    pub scales: *const f32,
}

impl EncoreTitleVectors {
    /// The call's candidates (each described title among them with its vector) and the
    /// described titles that are not candidates (the history's), checked for count and
    /// pointers; lengths and scales are checked by the reranker, by position.
    ///
    /// # Safety
    /// Non-null arrays must hold what the type describes for `dim`.
    unsafe fn lists(
        &self,
        candidates: &[u32],
        dim: usize,
    ) -> Result<(Vec<Candidate>, Vec<Candidate>), Failure> {
        if self.n > ENCORE_MAX_TITLE_VECTORS {
            return Err(Failure::invalid(format!(
                "titles.n is {}; at most {ENCORE_MAX_TITLE_VECTORS} titles a call",
                self.n
            )));
        }
        // SAFETY (all three): the caller's contract; n × dim cannot overflow (n is bounded
        // above and dim is a loaded model's width).
        let ids = unsafe { slice(self.ids, self.n, "titles.ids")? };
        let values = unsafe { slice(self.values, self.n * dim, "titles.values")? };
        let scales = unsafe { slice(self.scales, self.n, "titles.scales")? };
        let mut vectors = std::collections::HashMap::with_capacity(self.n);
        for (k, &id) in ids.iter().enumerate() {
            let vector = PushedVector {
                values: values[k * dim..(k + 1) * dim].to_vec(),
                scale: scales[k],
            };
            if vectors.insert(id, vector).is_some() {
                return Err(Failure::invalid(format!(
                    "titles.ids holds {id} twice (the second at {k})"
                )));
            }
        }
        let list: Vec<Candidate> = candidates
            .iter()
            .map(|&id| match vectors.remove(&id) {
                Some(v) => Candidate::with_vector(id, v),
                None => Candidate::known(id),
            })
            .collect();
        // The rest describe the history, in the order given.
        let history = ids
            .iter()
            .filter_map(|id| vectors.remove(id).map(|v| Candidate::with_vector(*id, v)))
            .collect();
        Ok((list, history))
    }
}

/// What a call's candidates are: ids alone (`titles` `NULL`: the plain rerank, no per-call
/// bookkeeping over the catalog), or a list with the described titles and the history titles.
enum CallCandidates<'a> {
    Ids(&'a [u32]),
    Described(Vec<Candidate>, Vec<Candidate>),
}

/// The candidates of a call with `titles` (`NULL`: none described).
///
/// # Safety
/// As [`EncoreTitleVectors::lists`] and [`candidate_ids`].
unsafe fn call_candidates<'a>(
    reranker: &Reranker,
    candidates: *const u32,
    n_candidates: usize,
    capacity: usize,
    titles: *const EncoreTitleVectors,
) -> Result<CallCandidates<'a>, Failure> {
    // SAFETY (all): the caller's contract.
    let ids = unsafe { candidate_ids(candidates, n_candidates, capacity)? };
    Ok(match unsafe { titles.as_ref() } {
        None => CallCandidates::Ids(ids),
        Some(t) => {
            let (list, history) = unsafe { t.lists(ids, reranker.config().d_model)? };
            CallCandidates::Described(list, history)
        }
    })
}

/// The width of the model's item vectors: the values per title of [`EncoreTitleVectors`].
///
/// # Safety
/// `reranker` must be live (`NULL` gives 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_reranker_dim(reranker: *const EncoreReranker) -> usize {
    // SAFETY: the caller's contract.
    unsafe { reranker.as_ref() }.map_or(0, |r| r.0.config().d_model)
}

/// [`encore_rerank`] where `titles` (`NULL`: none) describes titles the bundle may lack by
/// their int8 item vectors: candidates among them are scored with their vectors, and the
/// others give the history's events of those titles their item vectors. With every title
/// described, a bundle cut down to its model reranks for a catalog of any size. A title
/// neither in the bundle nor described, a vector of the wrong length or a scale that is not a
/// finite non-negative number is refused by position and id.
///
/// [`encore_rerank`]: crate::reranker::encore_rerank
///
/// # Safety
/// Every pointer must be valid for what it describes for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_rerank_pushed(
    reranker: *const EncoreReranker,
    history: *const EncoreHistory,
    candidates: *const u32,
    n_candidates: usize,
    titles: *const EncoreTitleVectors,
    request: *const EncoreRequest,
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
) -> EncoreStatus {
    guard(|| {
        // SAFETY (all below): the caller's contract.
        let r = unsafe { live_reranker(reranker)? };
        let history = unsafe { history.as_ref() }.ok_or_else(|| Failure::null("history"))?;
        let events = unsafe { history.events("history")? };
        let call = unsafe { call_candidates(r, candidates, n_candidates, capacity, titles)? };
        let request = unsafe { request_or_default(request)? };
        let ranking = match call {
            CallCandidates::Ids(ids) => r.rerank(&events, ids, &request),
            CallCandidates::Described(list, history_titles) => {
                r.rerank_pushed_with_history(&events, &list, &history_titles, &request)
            }
        }
        .map_err(refused)?;
        unsafe { write_ranking(&ranking, out_items, out_scores, capacity) }
    })
}

/// [`encore_session_rerank`] with `titles` as in [`encore_rerank_pushed`]; the session keeps
/// the vector of each described title its history names, so later calls need describe only
/// the titles of new events.
///
/// [`encore_session_rerank`]: crate::session::encore_session_rerank
///
/// # Safety
/// `reranker` and `session` must be live; the other pointers valid for what they describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_session_rerank_pushed(
    reranker: *const EncoreReranker,
    session: *mut EncoreSession,
    candidates: *const u32,
    n_candidates: usize,
    titles: *const EncoreTitleVectors,
    request: *const EncoreRequest,
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
) -> EncoreStatus {
    guard(|| {
        // SAFETY (all below): the caller's contract.
        let r = unsafe { live_reranker(reranker)? };
        let s = unsafe { live_session(session)? };
        let call = unsafe { call_candidates(r, candidates, n_candidates, capacity, titles)? };
        let request = unsafe { request_or_default(request)? };
        let ranking = match call {
            CallCandidates::Ids(ids) => r.rerank_session(s, ids, &request),
            CallCandidates::Described(list, history_titles) => {
                r.rerank_session_pushed_with_history(s, &list, &history_titles, &request)
            }
        }
        .map_err(refused)?;
        unsafe { write_ranking(&ranking, out_items, out_scores, capacity) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_titles_split_into_candidates_and_history_titles() {
        let ids = [7u32, 9, 8];
        let values: Vec<i8> = (0..6).map(|v| v as i8 - 3).collect();
        let scales = [0.5f32, 1.0, 2.0];
        let titles = EncoreTitleVectors {
            n: 3,
            ids: ids.as_ptr(),
            values: values.as_ptr(),
            scales: scales.as_ptr(),
        };
        let (list, history) = unsafe { titles.lists(&[1, 8, 7], 2) }.unwrap();
        assert_eq!(list.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 8, 7]);
        assert!(list[0].vector.is_none());
        let v8 = list[1].vector.as_ref().unwrap();
        assert_eq!((v8.values.as_slice(), v8.scale), (&[1i8, 2][..], 2.0));
        let v7 = list[2].vector.as_ref().unwrap();
        assert_eq!((v7.values.as_slice(), v7.scale), (&[-3i8, -2][..], 0.5));
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].id, 9);
        let v9 = history[0].vector.as_ref().unwrap();
        assert_eq!((v9.values.as_slice(), v9.scale), (&[-1i8, 0][..], 1.0));

        let twice = [7u32, 9, 7];
        let dup = EncoreTitleVectors {
            ids: twice.as_ptr(),
            ..titles
        };
        let e = unsafe { dup.lists(&[1], 2) }.unwrap_err();
        assert_eq!(e.status, EncoreStatus::InvalidArgument);
        assert_eq!(e.message, "titles.ids holds 7 twice (the second at 2)");
        let missing = EncoreTitleVectors {
            values: std::ptr::null(),
            ..titles
        };
        let e = unsafe { missing.lists(&[1], 2) }.unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (EncoreStatus::NullArgument, "titles.values is NULL")
        );
        let too_many = EncoreTitleVectors {
            n: ENCORE_MAX_TITLE_VECTORS + 1,
            ..titles
        };
        let e = unsafe { too_many.lists(&[1], 2) }.unwrap_err();
        assert_eq!(e.status, EncoreStatus::InvalidArgument);
        assert_eq!(
            e.message,
            format!("titles.n is 20001; at most {ENCORE_MAX_TITLE_VECTORS} titles a call")
        );
    }
}
