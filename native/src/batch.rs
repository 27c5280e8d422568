//! Batch reranking across CPU threads, for server-side or offline use.

use encore_core::{MemberRequest, RerankError, Reranker, ScoredItem};

use crate::backend::run_inline;

/// [`Reranker::rerank_batch`] split over `threads` OS threads, each running its share inline
/// (see [`run_inline`]); results in member order. `threads = 0` uses every available core.
pub fn rerank_batch_parallel(
    reranker: &Reranker,
    members: &[MemberRequest<'_>],
    threads: usize,
) -> Vec<Result<Vec<ScoredItem>, RerankError>> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(members.len().max(1));
    if threads <= 1 {
        return run_inline(|| reranker.rerank_batch(members));
    }
    let share = members.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .chunks(share)
            .map(|part| scope.spawn(move || run_inline(|| reranker.rerank_batch(part))))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a batch thread panicked"))
            .collect()
    })
}
