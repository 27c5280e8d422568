//! Many members at once, for server-side or offline use.

use burn::tensor::{Int, Tensor, TensorData};

use crate::tokenizer::{TokenBatch, TokenSequence};

use super::{
    BATCH_CHUNK, CpuEngine, MemberRequest, RerankError, Reranker, ScoredItem, finite, order,
    read_scores, request,
};

impl Reranker {
    /// Reranks many members at once (server-side or offline use): on the CPU one host-memory
    /// forward per member, elsewhere one padded forward pass over every valid member and one
    /// batched scoring. Each member's result is its own: a bad request
    /// gets its error and does not stop the others. Scores equal [`Reranker::rerank`]'s. A
    /// member under a prompt set is reranked on its own, as [`Reranker::rerank`] does.
    pub fn rerank_batch(
        &self,
        members: &[MemberRequest<'_>],
    ) -> Vec<Result<Vec<ScoredItem>, RerankError>> {
        let mut results: Vec<Result<Vec<ScoredItem>, RerankError>> =
            Vec::with_capacity(members.len());
        let mut seqs = Vec::new();
        let mut rows: Vec<Vec<i64>> = Vec::new();
        let mut valid = Vec::new();
        for (m, member) in members.iter().enumerate() {
            // A member under a prompt set runs on its own (the batched forwards run none).
            if member.request.prompt.is_some() {
                results.push(self.rerank(member.history, member.candidates, &member.request));
                continue;
            }
            let prepared = request::validate(member.history, member.candidates, &member.request)
                .and_then(|()| self.candidate_rows(member.candidates))
                .and_then(|r| Ok((r, self.serving_sequence(member.history, &member.request)?)));
            match prepared {
                Ok((r, seq)) => {
                    rows.push(r);
                    seqs.push(seq);
                    valid.push(m);
                    results.push(Ok(Vec::new()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if let Some(host) = &self.host {
            // On the CPU: each member's forward in host memory.
            let scores = host_scores(host, &seqs, &rows);
            for ((&m, s), r) in valid.iter().zip(scores).zip(&rows) {
                results[m] = finite(s).map(|s| order(members[m].candidates, &s[..r.len()]));
            }
            return results;
        }
        // Members go through the model in chunks: bounded memory for any batch size, and
        // attention scores that stay in cache.
        for start in (0..valid.len()).step_by(BATCH_CHUNK) {
            let end = (start + BATCH_CHUNK).min(valid.len());
            let (seqs, rows) = (&seqs[start..end], &rows[start..end]);
            let width = rows.iter().map(Vec::len).max().unwrap_or(0);
            match self.batch_scores(seqs, rows) {
                Ok(scores) => {
                    for (k, &m) in valid[start..end].iter().enumerate() {
                        let n = rows[k].len();
                        results[m] = Ok(order(
                            members[m].candidates,
                            &scores[k * width..k * width + n],
                        ));
                    }
                }
                Err(e) => {
                    for &m in &valid[start..end] {
                        results[m] = Err(e.clone());
                    }
                }
            }
        }
        results
    }

    /// Scores of padded candidate rows for a batch of sequences, flattened `[members × width]`.
    fn batch_scores(
        &self,
        seqs: &[TokenSequence],
        rows: &[Vec<i64>],
    ) -> Result<Vec<f32>, RerankError> {
        let (b, width) = (seqs.len(), rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut flat = vec![0i64; b * width];
        for (k, r) in rows.iter().enumerate() {
            flat[k * width..k * width + r.len()].copy_from_slice(r);
        }
        let batch = TokenBatch::new(seqs, &self.device);
        let user = self.model().user_representation(self.model().forward(
            &batch,
            self.tables(),
            None,
            true,
        )); // [b, d]
        let d = user.dims()[1];
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * width]), &self.device);
        let vectors = self.model().item_vectors_of(idx).reshape([b, width, d]);
        let scores = vectors.matmul(user.reshape([b, d, 1])).reshape([b * width]);
        let data = scores.into_data();
        // Padding slots repeat row 0 and are finite; every real score is checked too.
        read_scores(data).and_then(finite)
    }
}

/// Each member's candidate scores from its own host-memory forward, one after another on
/// this thread (callers split members across threads, as `encore`'s batch command does).
fn host_scores(host: &CpuEngine, seqs: &[TokenSequence], rows: &[Vec<i64>]) -> Vec<Vec<f32>> {
    let mut cache = host.empty_cache();
    seqs.iter()
        .zip(rows)
        .map(|(seq, rows)| {
            cache.truncate(0);
            host.scores(&host.step(&seq.field_rows(), &mut cache), rows)
        })
        .collect()
}
