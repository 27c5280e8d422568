//! The contextual ranker's training side: impressions → input rows with a foundation model's
//! features (`features`), and the training loop (`train`). The model is
//! [`encore_core::ranker::Ranker`].

pub mod features;
pub mod train;

pub use features::{FeatureBuilder, RankerRows};
pub use train::{RankerTrainConfig, logits, train_ranker};
