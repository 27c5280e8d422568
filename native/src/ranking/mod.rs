//! The contextual ranker's training side: impressions → input rows with a foundation model's
//! features (`features`), and the training loop (`train`). The model is
//! [`encore_core::ranker::Ranker`].

pub mod bundle;
pub mod features;
pub mod train;

pub use bundle::{
    RANKER_TASKS, RankerFit, RankerShape, fit_ranker, model_rows, training_impressions, with_ranker,
};
pub use encore_core::ranker::RankerRows;
pub use features::FeatureBuilder;
pub use train::{RankerTrainConfig, logits, train_ranker};
