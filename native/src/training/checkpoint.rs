//! Training checkpoints: model, optimizer and progress, written atomically after every epoch.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{EpochStats, TrainConfig};
use crate::io::write_atomic;

const MAGIC: &[u8; 8] = b"ENCOREC\x01";

/// Everything needed to resume training, plus the exportable weight file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The run's hyper-parameters (a resume must use the same).
    pub train_config: TrainConfig,
    /// Epochs completed so far.
    pub epochs: Vec<EpochStats>,
    /// burn's record of the model (parameters with their ids).
    pub model_record: Vec<u8>,
    /// burn's record of the optimizer state.
    pub optimizer: Vec<u8>,
    /// The model as an Encore weight file (what `encore export` writes out).
    pub weights: Vec<u8>,
}

impl Checkpoint {
    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(postcard::to_allocvec(self)?);
        write_atomic(path, &bytes).with_context(|| format!("writing checkpoint {}", path.display()))
    }

    /// Reads a checkpoint written by [`Checkpoint::write`].
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading checkpoint {}", path.display()))?;
        anyhow::ensure!(
            bytes.starts_with(MAGIC),
            "{} is not an Encore checkpoint",
            path.display()
        );
        postcard::from_bytes(&bytes[MAGIC.len()..])
            .with_context(|| format!("checkpoint {} is corrupted", path.display()))
    }
}
