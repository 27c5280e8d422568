//! Embeddings for other systems: each member's representation (the vector the model scores
//! candidates against) and each item's vector, with ids, the model's version and the time its
//! training data ends; written as Parquet and safetensors (`files`), and aligned across
//! retrains by an orthogonal Procrustes rotation fitted on the item vectors (`align`).

pub mod align;
pub mod files;

use anyhow::Context as _;
use encore_core::data::events::Surface;
use encore_core::data::split::MemberHistory;
use encore_core::runtime::RerankRequest;
use encore_core::weights::WeightFile;
use encore_core::{Event, Reranker};
use serde::{Deserialize, Serialize};

/// Vectors with their ids: row `i` of `vectors` (width `dim`) belongs to `ids[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingTable {
    /// External ids (item or member), one per row.
    pub ids: Vec<u32>,
    /// Width of each vector.
    pub dim: usize,
    /// Row-major `[ids.len() · dim]`.
    pub vectors: Vec<f32>,
}

impl EmbeddingTable {
    /// The vector of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Where a set of embeddings came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingSource {
    /// The model's version: its weight file's checksum (CRC-32), in hex.
    pub model_version: String,
    /// The latest event the model's training data holds (Unix seconds).
    pub training_data_until: i64,
    /// The members' representations use their events before this time (Unix seconds), asked
    /// at it; `None`: each member's whole history, asked at its last event.
    pub as_of: Option<i64>,
    /// The model version whose space these vectors were rotated into (empty: their own).
    pub aligned_to: String,
}

/// Item vectors and member representations of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Every catalog item's vector.
    pub items: EmbeddingTable,
    /// Each member's representation.
    pub members: EmbeddingTable,
    /// Their provenance.
    pub source: EmbeddingSource,
}

/// Members per forward pass.
const MEMBERS_PER_BATCH: usize = 128;

/// The item vectors of `reranker` (whose weight file is `weights`) and the representations of
/// `histories`' members on the home surface: from their events before `as_of`, asked at
/// `as_of` (members with none are left out), or from their whole history without it.
pub fn extract(
    reranker: &Reranker,
    weights: &[u8],
    histories: &[MemberHistory],
    as_of: Option<i64>,
) -> anyhow::Result<Embeddings> {
    let items = EmbeddingTable {
        ids: reranker.items().ids().to_vec(),
        dim: reranker.config().d_model,
        vectors: reranker.item_vectors()?,
    };
    let before: Vec<(u32, &[Event])> = histories
        .iter()
        .map(|h| {
            let n = match as_of {
                Some(t) => h.events.partition_point(|e| e.timestamp < t),
                None => h.events.len(),
            };
            (h.member, &h.events[..n])
        })
        .filter(|(_, events)| !events.is_empty())
        .collect();
    let mut members = EmbeddingTable {
        ids: Vec::with_capacity(before.len()),
        dim: items.dim,
        vectors: Vec::with_capacity(before.len() * items.dim),
    };
    for chunk in before.chunks(MEMBERS_PER_BATCH) {
        let asks: Vec<(&[Event], RerankRequest)> = chunk
            .iter()
            .map(|&(_, events)| {
                let request = RerankRequest {
                    timestamp: as_of,
                    ..RerankRequest::on(Surface::Home)
                };
                (events, request)
            })
            .collect();
        for ((member, _), v) in chunk.iter().zip(reranker.user_representations(&asks)?) {
            members.ids.push(*member);
            members.vectors.extend(v);
        }
    }
    let training_data_until = histories
        .iter()
        .filter_map(|h| h.events.last().map(|e| e.timestamp))
        .max()
        .unwrap_or(0);
    Ok(Embeddings {
        items,
        members,
        source: EmbeddingSource {
            model_version: format!(
                "{:08x}",
                WeightFile::stored_checksum(weights).context("the weight file is empty")?
            ),
            training_data_until,
            as_of,
            aligned_to: String::new(),
        },
    })
}
