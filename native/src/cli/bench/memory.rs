//! Training's peak memory against the event count (see [`super::BenchArgs::memory_curve`]):
//! synthetic worlds written as Parquet shards, each trained on for one epoch by a child
//! `encore train --config` process, streamed and from memory.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use encore_core::{SyntheticMembers, SyntheticWorldConfig};

use crate::io::event_shards::{SHARD_ROWS, ShardWriter};
use crate::io::write_atomic;

/// The model and objectives of every run (small, so that the data's memory shows).
const TRAINING: &str = r#"
[split]
holdout = "validation"
history_window = 50

[training]
epochs = 1
batch_size = 64
content_embeddings = true

[training.model]
d_model = 32
n_heads = 2
n_layers = 2
d_ff = 64
max_len = 64
rollup_window_s = 0

[training.objectives]
softmax = "sampled"
uniform_negatives = 256
in_batch_negatives = 0
mtp_items = 1
"#;

/// Writes the first members of the default synthetic world until `events` events (at least)
/// into `dir` (catalog.json, events/); returns the members written and their event count.
fn write_world(events: usize, dir: &Path) -> anyhow::Result<(usize, usize)> {
    let config = SyntheticWorldConfig {
        members: events, // an upper bound: the loop stops at the event count
        ..Default::default()
    };
    let mut members = SyntheticMembers::new(&config);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(
        &dir.join("catalog.json"),
        &serde_json::to_vec(&members.catalog)?,
    )?;
    let mut writer = ShardWriter::create(&dir.join("events"), SHARD_ROWS)?;
    let (mut n_members, mut n_events) = (0, 0);
    for member in members.by_ref() {
        writer.push_member(&member)?;
        n_members += 1;
        n_events += member.len();
        if n_events >= events {
            break;
        }
    }
    writer.finish()?;
    Ok((n_members, n_events))
}

/// What the bench reads of a run's `summary.json`.
#[derive(serde::Deserialize)]
struct RunSummary {
    peak_resident_bytes: Option<u64>,
    tokens_per_s: f64,
    train_seconds: f64,
    cases: usize,
}

/// Runs `encore train --config config` in a child process and reads its summary.
fn train_child(config: &Path, out: &Path) -> anyhow::Result<RunSummary> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let status = Command::new(exe)
        .arg("train")
        .arg("--config")
        .arg(config)
        .status()
        .context("cannot start a training process")?;
    anyhow::ensure!(status.success(), "training on {} failed", config.display());
    let summary = std::fs::read(out.join("summary.json"))
        .with_context(|| format!("no summary in {}", out.display()))?;
    Ok(serde_json::from_slice(&summary)?)
}

/// The sweep: one world per size of `events` under `dir`, trained streamed and from memory.
pub fn memory_curve(events: &[usize], dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!events.is_empty(), "--memory-curve needs --events");
    let dir = std::path::absolute(dir)?;
    let (mut streamed, mut in_memory) = (Vec::new(), Vec::new());
    for &n in events {
        let world = dir.join(format!("world-{n}"));
        let (members, written) = write_world(n, &world)?;
        for (label, data, points) in [
            (
                "streamed",
                format!(
                    "source = \"event-shards\"\ndir = {:?}\ncatalog = {:?}\n",
                    world.join("events"),
                    world.join("catalog.json")
                ),
                &mut streamed,
            ),
            (
                "in-memory",
                format!("source = \"synthetic\"\nmembers = {members}\n"),
                &mut in_memory,
            ),
        ] {
            let out = world.join(format!("run-{label}"));
            let config = world.join(format!("{label}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[data]\n{data}\n{TRAINING}\n[run]\nout = {out:?}\neval_every = 0\n\
                     backend = \"cpu\"\n"
                ),
            )?;
            let summary = train_child(&config, &out)?;
            let peak = summary
                .peak_resident_bytes
                .context("this system does not report peak memory")?;
            println!(
                "RESULT memory-{label} events={written} members={members} peak_rss={:.1} MiB \
                 tokens_per_s={:.0} train_s={:.1} cases={}",
                peak as f64 / 1048576.0,
                summary.tokens_per_s,
                summary.train_seconds,
                summary.cases
            );
            points.push((written as f64, peak as f64 / 1048576.0));
        }
    }
    super::curves::plot(
        &dir.join("memory-vs-events.svg"),
        "training's peak resident memory against the event count (one epoch)",
        "events",
        "peak RSS (MiB)",
        &[
            ("streamed from Parquet shards", streamed),
            ("in memory", in_memory),
        ],
    )?;
    println!("drawn to {}", dir.join("memory-vs-events.svg").display());
    Ok(())
}
