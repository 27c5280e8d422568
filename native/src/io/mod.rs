//! Files: the world (catalog JSON + events CSV), event logs as Parquet shards, checkpoints and
//! weight files, written atomically.

mod atomic;
pub mod event_shards;
mod world;

pub use atomic::write_atomic;
pub use world::{WorldFiles, read_world, write_world};

use std::path::PathBuf;

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The weight file was rejected.
    #[error("{path}: {error}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// Why.
        error: encore_core::WeightFileError,
    },
    /// A data file is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where and why.
        reason: String,
    },
}
