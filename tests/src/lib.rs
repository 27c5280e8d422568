//! Shared fixtures for Encore's cross-crate tests: small synthetic worlds and trained models.

use encore::backend::Backend;
use encore::training::{CheckpointPolicy, Monitor, TrainConfig, train};
use encore_core::data::split::{HeldOutEvent, MemberHistory, group_by_member, leave_last_out};
use encore_core::{SyntheticWorld, SyntheticWorldConfig};

/// A small world: ~150 members, 120 titles, 45 days.
pub fn small_world() -> SyntheticWorld {
    SyntheticWorld::generate(&SyntheticWorldConfig {
        members: 150,
        titles: 120,
        days: 45,
        seed: 3,
        ..Default::default()
    })
}

/// The world's training histories and held-out events.
pub fn split(world: &SyntheticWorld) -> (Vec<MemberHistory>, Vec<HeldOutEvent>) {
    leave_last_out(&group_by_member(&world.events))
}

/// A tiny model config (d 16, 1 layer, 2 heads, window 24).
pub fn tiny_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        d_model: 16,
        n_heads: 2,
        n_layers: 1,
        d_ff: 32,
        max_len: 24,
        ..TrainConfig::default()
    }
}

/// Trains a tiny model on the CPU and returns its weight file.
pub fn tiny_weight_file(world: &SyntheticWorld, epochs: usize) -> Vec<u8> {
    let (train_set, _) = split(world);
    let trained = train(
        &train_set,
        &world.catalog,
        &tiny_config(epochs),
        Backend::Cpu,
        CheckpointPolicy::default(),
        Monitor::default(),
    )
    .expect("training runs");
    trained.weights
}

/// A fresh temporary directory under the target dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("encore-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The workspace root.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
