//! Training checkpoints: model, optimizer and progress, written atomically after every epoch.

use std::path::Path;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::{EpochStats, TrainConfig, TrainingModel};
use crate::io::write_atomic;

/// The first seven bytes of every checkpoint; the eighth is its version.
const MAGIC: &[u8; 7] = b"ENCOREC";
/// The checkpoint version this build writes and reads (2: `TrainConfig` gained
/// `scale_embedding`, 3: `batch_by_length`, 4: `lr_schedule`, `warmup_steps`, `workers`,
/// 5: `decay_fraction`, 6: the model's shape as one `model` config and the training model's
/// record with its training-only parts apart, 7: `distill` and the distillation losses, 8:
/// `init_from` and `freeze`;
/// postcard cannot read a struct with a different field list).
const VERSION: u8 = 8;

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
        bytes.push(VERSION);
        bytes.extend(postcard::to_allocvec(self)?);
        write_atomic(path, &bytes).with_context(|| format!("writing checkpoint {}", path.display()))
    }

    /// The state of a run after its `epochs`: `model` and `optim` recorded by burn, and the
    /// exported `weights`.
    pub fn of(
        train_config: &TrainConfig,
        epochs: &[EpochStats],
        model: &TrainingModel,
        optim: &ModuleOptimizer,
        weights: Vec<u8>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            train_config: train_config.clone(),
            epochs: epochs.to_vec(),
            model_record: model
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
                .to_vec(),
            optimizer: optim
                .into_bytes()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
                .to_vec(),
            weights,
        })
    }

    /// Continues a run from the checkpoint at `path`: loads its model and optimizer state into
    /// `model` and `optim` and returns the epochs it had finished. Refused when the checkpoint
    /// was written with other training options than `cfg` (only the epoch count may change).
    pub fn resume(
        path: &Path,
        cfg: &TrainConfig,
        model: TrainingModel,
        optim: ModuleOptimizer,
    ) -> anyhow::Result<(TrainingModel, ModuleOptimizer, Vec<EpochStats>)> {
        let ck = Self::read(path)?;
        let same_run = TrainConfig {
            epochs: cfg.epochs,
            ..ck.train_config.clone()
        } == *cfg;
        anyhow::ensure!(
            same_run,
            "checkpoint {} was written with other training options; remove it or pass the same options (only --epochs may change)",
            path.display()
        );
        let model = model.load_record(
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(ck.model_record))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        );
        let optim = optim
            .from_bytes(Bytes::from_bytes_vec(ck.optimizer))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok((model, optim, ck.epochs))
    }

    /// Reads a checkpoint written by [`Checkpoint::write`].
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading checkpoint {}", path.display()))?;
        anyhow::ensure!(
            bytes.len() > MAGIC.len() && bytes.starts_with(MAGIC),
            "{} is not an Encore checkpoint",
            path.display()
        );
        let version = bytes[MAGIC.len()];
        anyhow::ensure!(
            version == VERSION,
            "checkpoint {} has version {version}; this build reads version {VERSION} only \
             (its training settings changed): start the run again without --resume",
            path.display()
        );
        postcard::from_bytes(&bytes[MAGIC.len() + 1..])
            .with_context(|| format!("checkpoint {} is corrupted", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_other_versions_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("encore-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.ckpt");
        let ck = Checkpoint {
            train_config: TrainConfig::default(),
            epochs: Vec::new(),
            model_record: vec![1, 2, 3],
            optimizer: vec![4],
            weights: vec![5, 6],
        };
        ck.write(&path).unwrap();
        assert_eq!(Checkpoint::read(&path).unwrap(), ck);

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[MAGIC.len()] = 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = Checkpoint::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("version 1") && e.contains("without --resume"),
            "{e}"
        );

        std::fs::write(&path, b"PK\x03\x04 not a checkpoint").unwrap();
        let e = Checkpoint::read(&path).unwrap_err().to_string();
        assert!(e.contains("not an Encore checkpoint"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
