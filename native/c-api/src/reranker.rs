//! Loading a bundle, reranking a member's candidates, freeing the reranker.

use burn::tensor::Device;
use encore_core::{RerankError, Reranker, ScoredItem};

use crate::inputs::{EncoreHistory, EncoreRequest, slice};
use crate::status::{EncoreStatus, Failure, guard};

/// A loaded bundle, ready to rerank. Opaque: made by [`encore_reranker_load`], released by
/// [`encore_reranker_free`]. Safe to share between threads.
pub struct EncoreReranker(pub(crate) Reranker);

/// A refusal of the reranker as a failure.
pub(crate) fn refused(e: RerankError) -> Failure {
    Failure::new(EncoreStatus::Refused, e.to_string())
}

/// The reranker behind `ptr`.
///
/// # Safety
/// A non-null `ptr` must come from [`encore_reranker_load`] and not be freed.
pub(crate) unsafe fn live_reranker<'a>(
    ptr: *const EncoreReranker,
) -> Result<&'a Reranker, Failure> {
    // SAFETY: the caller's contract.
    unsafe { ptr.as_ref() }
        .map(|r| &r.0)
        .ok_or_else(|| Failure::null("reranker"))
}

/// Writes a ranking into the caller's arrays, which hold `capacity` entries each.
///
/// # Safety
/// Non-null pointers must point at `capacity` writable entries.
pub(crate) unsafe fn write_ranking(
    ranking: &[ScoredItem],
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
) -> Result<(), Failure> {
    if out_items.is_null() {
        return Err(Failure::null("out_items"));
    }
    if out_scores.is_null() {
        return Err(Failure::null("out_scores"));
    }
    if capacity < ranking.len() {
        return Err(Failure::invalid(format!(
            "the output arrays hold {capacity} entries; the ranking has {}",
            ranking.len()
        )));
    }
    for (k, s) in ranking.iter().enumerate() {
        // SAFETY: k < ranking.len() <= capacity, the caller's contract.
        unsafe {
            *out_items.add(k) = s.item;
            *out_scores.add(k) = s.score;
        }
    }
    Ok(())
}

/// The checks every rerank makes on its candidate and output arguments before any work.
///
/// # Safety
/// As [`slice`].
pub(crate) unsafe fn candidate_ids<'a>(
    ptr: *const u32,
    n: usize,
    capacity: usize,
) -> Result<&'a [u32], Failure> {
    if capacity < n {
        return Err(Failure::invalid(format!(
            "the output arrays hold {capacity} entries; {n} candidates need {n}"
        )));
    }
    // SAFETY: the caller's contract.
    unsafe { slice(ptr, n, "candidates") }
}

/// Loads a bundle from `len` bytes at `bytes` (copied: the caller may free them after the
/// call) and stores the new reranker in `*out`. `max_decoded_bytes` refuses a model whose
/// weights would take more memory than that once decoded, before anything is allocated
/// (0: no limit). On failure `*out` is set to `NULL`.
///
/// # Safety
/// `bytes` must point at `len` readable bytes; `out` at a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_reranker_load(
    bytes: *const u8,
    len: usize,
    max_decoded_bytes: u64,
    out: *mut *mut EncoreReranker,
) -> EncoreStatus {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: checked non-null; the caller's contract.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: the caller's contract.
        let bytes = unsafe { slice(bytes, len, "bytes")? };
        let limit = if max_decoded_bytes == 0 {
            u64::MAX
        } else {
            max_decoded_bytes
        };
        let reranker = Reranker::from_bytes_within(bytes, &Device::flex(), limit)
            .map_err(|e| Failure::new(EncoreStatus::InvalidBundle, e.to_string()))?;
        // SAFETY: as above.
        unsafe { *out = Box::into_raw(Box::new(EncoreReranker(reranker))) };
        Ok(())
    })
}

/// Releases a reranker (`NULL` is ignored). Its sessions stay valid; they belong to the caller.
///
/// # Safety
/// `reranker` must come from [`encore_reranker_load`], be freed once, and not be in use by
/// another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_reranker_free(reranker: *mut EncoreReranker) {
    if !reranker.is_null() {
        // SAFETY: the caller's contract.
        let _ = guard(|| {
            drop(unsafe { Box::from_raw(reranker) });
            Ok(())
        });
    }
}

/// Number of titles in the reranker's bundle (0 for `NULL`).
///
/// # Safety
/// A non-null `reranker` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_reranker_item_count(reranker: *const EncoreReranker) -> usize {
    // SAFETY: the caller's contract.
    unsafe { reranker.as_ref() }.map_or(0, |r| r.0.items().len())
}

/// Writes the bundle's item ids (catalog order) into `out`, which holds `capacity` entries
/// (at least [`encore_reranker_item_count`]).
///
/// # Safety
/// `reranker` must be live; `out` must point at `capacity` writable entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_reranker_items(
    reranker: *const EncoreReranker,
    out: *mut u32,
    capacity: usize,
) -> EncoreStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let r = unsafe { live_reranker(reranker)? };
        let ids = r.items().ids();
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if capacity < ids.len() {
            return Err(Failure::invalid(format!(
                "out holds {capacity} entries; the bundle has {} items",
                ids.len()
            )));
        }
        // SAFETY: ids.len() <= capacity, the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), out, ids.len()) };
        Ok(())
    })
}

/// Reranks `n_candidates` item ids for a member with `history` in the context of `request`
/// (`NULL`: home surface, the rest from the history). Writes the candidates best first into
/// `out_items` and their scores into `out_scores`, each holding `capacity` (≥ `n_candidates`)
/// entries. On failure nothing is written.
///
/// # Safety
/// Every pointer must be valid for what it describes (see [`EncoreHistory`]) for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn encore_rerank(
    reranker: *const EncoreReranker,
    history: *const EncoreHistory,
    candidates: *const u32,
    n_candidates: usize,
    request: *const EncoreRequest,
    out_items: *mut u32,
    out_scores: *mut f32,
    capacity: usize,
) -> EncoreStatus {
    // SAFETY: the caller's contract; no titles are described.
    unsafe {
        crate::pushed::encore_rerank_pushed(
            reranker,
            history,
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
