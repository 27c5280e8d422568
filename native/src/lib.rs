//! Encore natively: training, evaluation and the desktop reranking library.
//!
//! A desktop app needs only [`load_reranker`] and [`encore_core::Reranker::rerank`]:
//!
//! ```no_run
//! use encore::{backend::Backend, load_reranker};
//! use encore_core::{RerankRequest, Surface};
//! # fn main() -> anyhow::Result<()> {
//! let reranker = load_reranker("model.encore", Backend::Cpu)?;
//! # let history: Vec<encore_core::Event> = vec![]; let candidates = vec![1000, 1001];
//! let ordered = reranker.rerank(&history, &candidates, &RerankRequest::on(Surface::Home))?;
//! # Ok(()) }
//! ```

pub mod backend;
pub mod batch;
pub mod browser_fixture;
pub mod cli;
pub mod embeddings;
pub mod evaluation;
pub mod experiment;
pub mod io;
pub mod prompting;
pub mod ranking;
pub mod training;

use std::path::Path;

pub use encore_core;

/// Reads a weight file and loads it onto the chosen backend.
pub fn load_reranker(
    path: impl AsRef<Path>,
    backend: backend::Backend,
) -> Result<encore_core::Reranker, io::LoadError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io::LoadError::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    encore_core::Reranker::from_bytes(&bytes, &backend.device()).map_err(|e| {
        io::LoadError::Weights {
            path: path.to_path_buf(),
            error: e,
        }
    })
}
