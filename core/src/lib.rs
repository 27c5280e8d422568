//! Encore's core: the event schema and catalog, the deterministic synthetic world, the event
//! tokenizer, the foundation model (burn), the bundle format, the serving description
//! ([`serving::ServingModel`]) and the on-device reranker with its two engines.
//!
//! Nothing here touches files or the network: inputs and outputs are values and byte slices,
//! so the same code runs natively and in the browser. The burn backend is chosen by the caller
//! through a runtime [`burn::tensor::Device`].

pub mod data;
pub mod metrics;
pub mod model;
pub mod ranker;
pub mod runtime;
pub mod serving;
pub mod tokenizer;
pub mod weights;

pub use data::catalog::{Catalog, Item, ItemKind};
pub use data::events::{Action, DeviceType, Event, Surface};
pub use data::synthetic::{SyntheticMembers, SyntheticWorld, SyntheticWorldConfig};
pub use model::{FoundationModel, FoundationModelConfig};
pub use runtime::{
    Candidate, MemberRequest, MemberSession, PushedVector, RerankError, RerankRequest, Reranker,
    ScoredItem,
};
pub use serving::TitleMetadata;
pub use tokenizer::{EventTokenizer, TokenBatch, TokenSequence};
pub use weights::{WeightFile, WeightFileError};
