//! Training's cost curves (see [`super::BenchArgs::training_curves`]): peak memory against the
//! event count, and throughput, memory and bundle size against the catalog size. Synthetic
//! worlds written as Parquet shards, each trained on for one epoch by a child `encore train
//! --config` process.

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

/// Titles each choice of a big catalog's world weighs (see
/// `SyntheticWorldConfig::choice_pool`).
const CHOICE_POOL: usize = 2000;

/// Writes the first members of the synthetic world of `titles` titles until `events` events
/// (at least) into `dir` (catalog.json, events/); returns the members written and their event
/// count.
fn write_world(events: usize, titles: usize, dir: &Path) -> anyhow::Result<(usize, usize)> {
    let config = SyntheticWorldConfig {
        members: events, // an upper bound: the loop stops at the event count
        titles,
        choice_pool: if titles > CHOICE_POOL { CHOICE_POOL } else { 0 },
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

/// Writes `label.toml` in `world` (the `[data]` table `data`, then `training`: the split,
/// training and objective tables) and runs it in a child process; returns its summary. A run
/// whose `label.toml` already holds this text and whose `summary.json` exists (a sweep started
/// again after a failure) is read, not run again.
fn run_config(
    world: &Path,
    label: &str,
    data: &str,
    training: &str,
) -> anyhow::Result<(RunSummary, std::path::PathBuf)> {
    let out = world.join(format!("run-{label}"));
    let config = world.join(format!("{label}.toml"));
    let text = format!(
        "[data]\n{data}\n{training}\n[run]\nout = {out:?}\neval_every = 0\n\
         backend = \"cpu\"\n"
    );
    let summary = out.join("summary.json");
    if std::fs::read_to_string(&config).is_ok_and(|t| t == text) && summary.exists() {
        eprintln!(
            "{}: finished before, read from {}",
            label,
            summary.display()
        );
        let bytes = std::fs::read(&summary)?;
        return Ok((serde_json::from_slice(&bytes)?, out));
    }
    // A summary left by an earlier configuration must not pass for this one's.
    if summary.exists() {
        std::fs::remove_file(&summary)?;
    }
    std::fs::write(&config, text)?;
    Ok((train_child(&config, &out)?, out))
}

/// The `[data]` table of the shards in `world`.
fn shards_table(world: &Path) -> String {
    format!(
        "source = \"event-shards\"\ndir = {:?}\ncatalog = {:?}\n",
        world.join("events"),
        world.join("catalog.json")
    )
}

/// The sweeps of `sweeps` (`events`, `catalogs`, `windows`) under `dir`: one world per size of
/// `events` (600 titles), trained streamed and from memory; one world per size of `catalogs`
/// (the first `events` size), trained streamed with the item encoder and ID-only; one world of
/// long histories trained from memory with each window of `windows`.
pub fn training_curves(
    sweeps: &[String],
    events: &[usize],
    catalogs: &[usize],
    windows: &[usize],
    dir: &Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !events.is_empty() && !catalogs.is_empty() && !windows.is_empty(),
        "--training-curves needs --events, --catalogs and --windows"
    );
    if let Some(s) = sweeps
        .iter()
        .find(|s| !["events", "catalogs", "windows"].contains(&s.as_str()))
    {
        anyhow::bail!("unknown sweep {s:?}: use events, catalogs or windows");
    }
    let dir = std::path::absolute(dir)?;
    let wanted = |name: &str| sweeps.iter().any(|s| s == name);
    if wanted("events") {
        memory_curve(events, &dir)?;
    }
    if wanted("catalogs") {
        catalog_curve(events[0], catalogs, &dir)?;
    }
    if wanted("windows") {
        window_curve(windows, &dir)?;
    }
    Ok(())
}

/// Training tokens/s and peak memory against the window: 60 members over [`history_days`] days
/// (about 1.6 events a day each, so that the largest window fills), trained from memory, each
/// window L with batches of about 8,000 tokens.
fn window_curve(windows: &[usize], dir: &Path) -> anyhow::Result<()> {
    let world = dir.join("long-histories");
    std::fs::create_dir_all(&world)?;
    let days = history_days(windows.iter().copied().max().unwrap_or(0));
    let data = format!("source = \"synthetic\"\nmembers = 60\ndays = {days}\n");
    let data = data.as_str();
    let (mut speed, mut memory) = (Vec::new(), Vec::new());
    for &l in windows {
        let batch = (8000 / l).max(1);
        let training = TRAINING
            .replace("history_window = 50", &format!("history_window = {l}"))
            .replace("batch_size = 64", &format!("batch_size = {batch}"))
            .replace("max_len = 64", &format!("max_len = {l}"));
        let (summary, _) = run_config(&world, &format!("window-{l}"), data, &training)?;
        let peak = summary.peak_resident_bytes.unwrap_or(0) as f64 / 1048576.0;
        println!(
            "RESULT training-window window={l} batch={batch} tokens_per_s={:.0} train_s={:.1} \
             peak_rss={peak:.1} MiB",
            summary.tokens_per_s, summary.train_seconds
        );
        speed.push((l as f64, summary.tokens_per_s / 1000.0));
        memory.push((l as f64, peak));
    }
    super::curves::plot(
        &dir.join("training-vs-window.svg"),
        "training (one epoch, ≈ 8,000 tokens a batch) against the window",
        "window (events)",
        "thousand tokens/s or MiB",
        &[("tokens/s ÷ 1000", speed), ("peak RSS (MiB)", memory)],
    )?;
    println!("drawn to {}", dir.join("training-vs-window.svg").display());
    Ok(())
}

/// Days of the long-history world: 3,600 (about 5,700 events a member), or more so that a
/// member's history holds about 1.2 windows of `largest` events.
fn history_days(largest: usize) -> usize {
    3600.max(largest * 3 / 4)
}

/// Throughput, peak memory and bundle sizes against the catalog size (`events` events each).
fn catalog_curve(events: usize, catalogs: &[usize], dir: &Path) -> anyhow::Result<()> {
    use encore_core::weights::{Quantization, load_model, requantize, retain_items};
    let mut series: Vec<(&str, Vec<(f64, f64)>)> = vec![
        ("tokens/s ÷ 1000, item encoder", Vec::new()),
        ("tokens/s ÷ 1000, ID-only", Vec::new()),
        ("peak RSS (MiB), item encoder", Vec::new()),
        ("bundle, int8 (MB)", Vec::new()),
        ("model alone, int8 (MB)", Vec::new()),
    ];
    for &titles in catalogs {
        let world = dir.join(format!("catalog-{titles}"));
        let (members, written) = write_world(events, titles, &world)?;
        for (label, content) in [("encoder", true), ("id-only", false)] {
            let training = TRAINING.replace(
                "content_embeddings = true",
                &format!("content_embeddings = {content}"),
            );
            let (summary, out) = run_config(&world, label, &shards_table(&world), &training)?;
            let peak = summary.peak_resident_bytes.unwrap_or(0) as f64 / 1048576.0;
            let x = titles as f64;
            let k = if content { 0 } else { 1 };
            series[k].1.push((x, summary.tokens_per_s / 1000.0));
            let mut sizes = String::new();
            if content {
                series[2].1.push((x, peak));
                let f32_bytes = std::fs::read(out.join("model.encore"))?;
                let int8 = requantize(&f32_bytes, Quantization::Int8)?;
                let loaded = load_model(&int8, &burn::tensor::Device::flex())?;
                let first = loaded.items.ids()[0];
                let alone = retain_items(loaded, |id| id == first);
                let alone = alone.to_bundle(&alone.prompts, Quantization::Int8);
                series[3].1.push((x, int8.len() as f64 / 1e6));
                series[4].1.push((x, alone.len() as f64 / 1e6));
                sizes = format!(
                    " bundle_f32={} bundle_int8={} model_alone_int8={}",
                    f32_bytes.len(),
                    int8.len(),
                    alone.len()
                );
            }
            println!(
                "RESULT training-catalog titles={titles} item_encoder={content} events={written} \
                 members={members} tokens_per_s={:.0} train_s={:.1} peak_rss={peak:.1} MiB{sizes}",
                summary.tokens_per_s, summary.train_seconds
            );
        }
    }
    super::curves::plot(
        &dir.join("training-vs-catalog.svg"),
        "training (one epoch) and the bundle against the catalog size",
        "titles",
        "thousand tokens/s, MiB or MB",
        &series,
    )?;
    println!("drawn to {}", dir.join("training-vs-catalog.svg").display());
    Ok(())
}

/// The events sweep: one world per size of `events` under `dir`, trained streamed and from
/// memory.
fn memory_curve(events: &[usize], dir: &Path) -> anyhow::Result<()> {
    let (mut streamed, mut in_memory) = (Vec::new(), Vec::new());
    for &n in events {
        let world = dir.join(format!("world-{n}"));
        let titles = SyntheticWorldConfig::default().titles;
        let (members, written) = write_world(n, titles, &world)?;
        for (label, data, points) in [
            ("streamed", shards_table(&world), &mut streamed),
            (
                "in-memory",
                format!("source = \"synthetic\"\nmembers = {members}\n"),
                &mut in_memory,
            ),
        ] {
            let (summary, _) = run_config(&world, label, &data, TRAINING)?;
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
