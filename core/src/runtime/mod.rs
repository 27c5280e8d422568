//! The on-device reranker: load a weight file, take a member's recent events and the
//! candidates a server pushed, and return the candidates ordered by the model's score.
//!
//! Stateless reranks live here; member sessions (cached keys and values) in `session`, many
//! members at once in `batch`, request types and refusals in `request`.

mod batch;
mod request;
mod session;

pub use request::{MemberRequest, RerankError, RerankRequest, ScoredItem};
pub use session::MemberSession;

use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::catalog::ItemVocabulary;
use crate::data::events::Event;
use crate::model::{FoundationModel, FoundationModelConfig, TokenTables};
use crate::tokenizer::{EventTokenizer, TokenBatch, TokenSequence};
use crate::weights::{LoadedModel, Quantization, WeightFileError, load_model};

/// Members per forward pass in [`Reranker::rerank_batch`].
pub const BATCH_CHUNK: usize = 16;

/// Most candidates one call accepts.
pub const MAX_CANDIDATES: usize = 10_000;

/// A loaded model ready to rerank on one device.
#[derive(Debug)]
pub struct Reranker {
    model: FoundationModel,
    /// The model's stacked token tables, built once at load.
    tables: TokenTables,
    config: FoundationModelConfig,
    items: ItemVocabulary,
    tokenizer: EventTokenizer,
    device: Device,
    /// Distinguishes rerankers, so that a session never reuses another model's cache.
    id: u64,
    /// How the weight file stored the matrices.
    quantization: Quantization,
}

static NEXT_RERANKER_ID: AtomicU64 = AtomicU64::new(0);

impl Reranker {
    /// Loads and validates a weight file onto `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, WeightFileError> {
        let LoadedModel {
            model,
            config,
            items,
            quantization,
        } = load_model(bytes, device)?;
        let mut reranker = Self::new(model, config, items);
        reranker.quantization = quantization;
        Ok(reranker)
    }

    /// Wraps an in-memory model (its device is the model's).
    pub fn new(
        model: FoundationModel,
        config: FoundationModelConfig,
        items: ItemVocabulary,
    ) -> Self {
        let device = model.embedding.item.weight.val().device();
        Self {
            tokenizer: config.tokenizer(),
            tables: model.token_tables(),
            model,
            config,
            items,
            device,
            id: NEXT_RERANKER_ID.fetch_add(1, Ordering::Relaxed),
            quantization: Quantization::F32,
        }
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the weight file stored its matrices (f32 for an in-memory model).
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// The model's shape.
    pub fn config(&self) -> &FoundationModelConfig {
        &self.config
    }

    /// The item ids the model knows, in row order.
    pub fn items(&self) -> &ItemVocabulary {
        &self.items
    }

    /// Validates inputs and builds the model's input and the candidates' dense indices.
    fn prepare(
        &self,
        history: &[Event],
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<(TokenBatch, Tensor<1, Int>), RerankError> {
        request::validate(history, candidates)?;
        let cands = self.candidate_indices(candidates)?;
        let seq = self.serving_sequence(history, request)?;
        Ok((TokenBatch::new(&[seq], &self.device), cands))
    }

    /// The candidates' dense row indices on the device; refuses unknown and duplicate ids.
    fn candidate_indices(&self, candidates: &[u32]) -> Result<Tensor<1, Int>, RerankError> {
        let dense = self.candidate_rows(candidates)?;
        Ok(Tensor::<1, Int>::from_data(
            TensorData::new(dense, [candidates.len()]),
            &self.device,
        ))
    }

    /// The candidates' dense row indices; refuses unknown and duplicate ids.
    fn candidate_rows(&self, candidates: &[u32]) -> Result<Vec<i64>, RerankError> {
        let mut dense = Vec::with_capacity(candidates.len());
        // Position + 1 of each item row already seen (0: not yet).
        let mut seen = vec![0u32; self.items.len()];
        for (position, &item) in candidates.iter().enumerate() {
            let idx = self
                .items
                .index_of(item)
                .ok_or(RerankError::UnknownCandidate { position, item })?;
            if seen[idx] > 0 {
                return Err(RerankError::DuplicateCandidate {
                    item,
                    first: seen[idx] as usize - 1,
                    second: position,
                });
            }
            seen[idx] = position as u32 + 1;
            dense.push(idx as i64);
        }
        Ok(dense)
    }

    /// The member's tokens for this request (history must be validated and non-empty).
    fn serving_sequence(
        &self,
        history: &[Event],
        request: &RerankRequest,
    ) -> Result<TokenSequence, RerankError> {
        self.tokenizer
            .serving_sequence(&self.items, history, &request.context(history))
            .map_err(|e| RerankError::UnknownHistoryItem {
                position: e.position,
                item: e.item,
            })
    }

    /// Scores of the candidates: `[n_candidates]` (dot product of the user representation with
    /// each candidate's item vector).
    fn score_tensor(&self, batch: &TokenBatch, candidates: Tensor<1, Int>) -> Tensor<1> {
        let user = self.model.user_state(batch, &self.tables); // [1, d]
        let d = user.dims()[1];
        self.model.candidate_scores(user.reshape([d]), candidates)
    }

    /// Reranks `candidates` for a member with this `history` (oldest first). Synchronous:
    /// natively on any device; in a browser use [`Reranker::rerank_async`].
    pub fn rerank(
        &self,
        history: &[Event],
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (batch, cands) = self.prepare(history, candidates, request)?;
        ranked(candidates, self.score_tensor(&batch, cands))
    }

    /// Same as [`Reranker::rerank`], reading the scores back asynchronously (required on WebGPU).
    pub async fn rerank_async(
        &self,
        history: &[Event],
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (batch, cands) = self.prepare(history, candidates, request)?;
        ranked_async(candidates, self.score_tensor(&batch, cands)).await
    }

    /// Scores of every catalog item (row order) for several members at once: `[members][n_items]`.
    /// Used for evaluation; each entry is (history, request).
    pub fn score_catalog(
        &self,
        members: &[(&[Event], RerankRequest)],
    ) -> Result<Vec<Vec<f32>>, RerankError> {
        let mut seqs = Vec::with_capacity(members.len());
        for (history, request) in members {
            if history.is_empty() {
                return Err(RerankError::EmptyHistory);
            }
            request::validate_events(history)?;
            seqs.push(self.serving_sequence(history, request)?);
        }
        let batch = TokenBatch::new(&seqs, &self.device);
        let user = self.model.user_state(&batch, &self.tables);
        let scores = user.matmul(self.model.item_vectors().transpose());
        let flat = read_scores(scores.into_data())?;
        Ok(flat
            .chunks(self.config.n_items)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// The candidates ordered by `scores` (`[n_candidates]` on the device), read back synchronously.
fn ranked(candidates: &[u32], scores: Tensor<1>) -> Result<Vec<ScoredItem>, RerankError> {
    Ok(order(candidates, &read_scores(scores.into_data())?))
}

/// [`ranked`], reading the scores back asynchronously (required on WebGPU).
async fn ranked_async(
    candidates: &[u32],
    scores: Tensor<1>,
) -> Result<Vec<ScoredItem>, RerankError> {
    let data = scores
        .into_data_async()
        .await
        .map_err(|e| RerankError::Backend(format!("{e:?}")))?;
    Ok(order(candidates, &read_scores(data)?))
}

fn read_scores(data: TensorData) -> Result<Vec<f32>, RerankError> {
    let scores = data
        .try_into_vec::<f32>()
        .map_err(|e| RerankError::Backend(format!("{e:?}")))?;
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(RerankError::Backend(format!(
            "model produced a non-finite score at candidate {i}"
        )));
    }
    Ok(scores)
}

/// Candidates with their scores, best first; equal scores keep the input order.
fn order(candidates: &[u32], scores: &[f32]) -> Vec<ScoredItem> {
    let mut order: Vec<u32> = (0..candidates.len() as u32).collect();
    // Unstable sort with the input position as tie-break: the stable order, faster.
    order.sort_unstable_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .map(|i| ScoredItem {
            item: candidates[i as usize],
            score: scores[i as usize],
        })
        .collect()
}
