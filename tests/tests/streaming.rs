//! Training from Parquet event shards, streamed: the same run as from memory when one chunk
//! holds every window, learning with small chunks, and the refusals.

use encore::backend::Backend;
use encore::experiment::HeldOutShards;
use encore::io::event_shards::ShardWriter;
use encore::training::{CheckpointPolicy, Monitor, TrainConfig, train, train_streaming};
use encore_core::data::split::{Holdout, LeaveOneOut, group_by_member};
use encore_core::{SyntheticMembers, SyntheticWorld};
use encore_tests::{one_test_at_a_time, small_world, temp_dir, tiny_config};

/// The small world written as shards of at most ~2,000 rows, and its test split.
fn sharded(world: &SyntheticWorld, name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name).join("events");
    let mut writer = ShardWriter::create(&dir, 2000).unwrap();
    for events in SyntheticMembers::new(&world.config) {
        writer.push_member(&events).unwrap();
    }
    assert!(writer.finish().unwrap().files.len() > 3);
    dir
}

const SPLIT: LeaveOneOut = LeaveOneOut {
    holdout: Holdout::Test,
    history_window: 200,
};

fn streamed(
    shards: &HeldOutShards<'_>,
    world: &SyntheticWorld,
    cfg: &TrainConfig,
    chunk: usize,
) -> anyhow::Result<encore::training::TrainedModel> {
    train_streaming(
        shards,
        chunk,
        &world.catalog,
        cfg,
        Backend::Cpu,
        CheckpointPolicy::default(),
        Monitor::default(),
    )
}

#[test]
fn a_stream_in_one_chunk_trains_exactly_like_memory_and_small_chunks_still_learn() {
    // Training seeds burn's process-wide generator: the other test's runs must not interleave.
    let _turn = one_test_at_a_time();
    let world = small_world();
    let dir = sharded(&world, "stream-vs-memory");
    let shards = HeldOutShards {
        dir: dir.clone(),
        catalog: &world.catalog,
        split: SPLIT,
    };
    let cfg = tiny_config(3);
    let (train_set, _) = SPLIT.split(&group_by_member(&world.events));
    let memory = train(
        &train_set,
        &world.catalog,
        &cfg,
        Backend::Cpu,
        CheckpointPolicy::default(),
        Monitor::default(),
    )
    .unwrap();
    // One chunk holding every window: the same windows in the same order, the same batches.
    let one_chunk = streamed(&shards, &world, &cfg, usize::MAX).unwrap();
    for (a, b) in memory.epochs.iter().zip(&one_chunk.epochs) {
        assert_eq!((a.loss, a.tokens), (b.loss, b.tokens), "epoch {}", a.epoch);
    }
    assert_eq!(
        one_chunk.weights, memory.weights,
        "the same model, byte for byte"
    );
    // Chunks of 64 windows: batches never mix chunks, every target is still seen once per
    // epoch, and the model learns.
    let chunked = streamed(&shards, &world, &cfg, 64).unwrap();
    assert_eq!(chunked.epochs[0].tokens, memory.epochs[0].tokens);
    assert!(
        chunked.epochs[2].loss < chunked.epochs[0].loss * 0.95,
        "{:?}",
        chunked.epochs.iter().map(|e| e.loss).collect::<Vec<_>>()
    );
    assert_ne!(chunked.weights, memory.weights);
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn a_streamed_run_refuses_distillation_a_zero_chunk_and_a_broken_shard_by_name() {
    let _turn = one_test_at_a_time();
    let world = small_world();
    let dir = sharded(&world, "stream-refusals");
    let shards = HeldOutShards {
        dir: dir.clone(),
        catalog: &world.catalog,
        split: SPLIT,
    };
    let e = streamed(&shards, &world, &tiny_config(1), 0).unwrap_err();
    assert_eq!(e.to_string(), "windows per chunk must be positive");
    let mut cfg = tiny_config(1);
    cfg.distill = Some(toml_distill());
    let e = streamed(&shards, &world, &cfg, 64).unwrap_err().to_string();
    assert!(
        e.contains("not available when training from a stream"),
        "{e}"
    );
    // A shard that is not Parquet stops the run with its name, before any training.
    let broken = dir.join("part-00001.parquet");
    std::fs::write(&broken, b"not parquet").unwrap();
    let e = format!(
        "{:#}",
        streamed(&shards, &world, &tiny_config(1), 64).unwrap_err()
    );
    assert!(e.contains(&broken.display().to_string()), "{e}");
    assert!(e.contains("not a Parquet file"), "{e}");
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

/// A distillation table (its teacher is never read: the stream refuses it first).
fn toml_distill() -> encore::training::distill::DistillConfig {
    encore::training::distill::DistillConfig {
        teacher: "teacher.encore".into(),
        ..Default::default()
    }
}
