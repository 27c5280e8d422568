//! `encore convert-events` (a CSV or JSON Lines event log → Parquet shards) and the shard
//! output of `encore generate --shards`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use encore_core::data::event_log::{LogFormat, parse_event_log};
use encore_core::data::source::LineOptions;
use encore_core::data::split::group_by_member;
use encore_core::{SyntheticMembers, SyntheticWorldConfig};

use crate::io::event_shards::{SHARD_ROWS, ShardSummary, ShardWriter};
use crate::io::write_atomic;

/// `encore convert-events`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The event log (`.csv` with a header, or `.jsonl` / `.ndjson`).
    #[arg(long)]
    pub events: PathBuf,
    /// The item metadata (catalog JSON) the log's items are checked against.
    #[arg(long)]
    pub catalog: PathBuf,
    /// Output directory for the shards (new or empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Rows per shard file (a shard closes at the first member boundary after this many).
    #[arg(long, default_value_t = SHARD_ROWS)]
    pub rows_per_shard: usize,
    /// Skip and count malformed lines instead of stopping.
    #[arg(long)]
    pub skip_bad_lines: bool,
}

/// Converts an event log into shards in the required order (members by id, each member's
/// events in time order, ties in file order). The log is read into memory once.
pub fn convert(a: &ConvertArgs) -> anyhow::Result<()> {
    let catalog = crate::experiment::read_catalog(&a.catalog)?;
    let name = a.events.display().to_string();
    let bytes =
        std::fs::read(&a.events).with_context(|| format!("cannot read {}", a.events.display()))?;
    let (events, skipped) = parse_event_log(
        &name,
        &bytes,
        LogFormat::of_file_name(&name),
        &catalog,
        LineOptions {
            skip_bad_lines: a.skip_bad_lines,
        },
    )?;
    drop(bytes);
    let mut members = group_by_member(&events);
    drop(events);
    members.sort_by_key(|m| m.member);
    let mut writer = ShardWriter::create(&a.out, a.rows_per_shard)?;
    for m in &members {
        writer.push_member(&m.events)?;
    }
    report(&writer.finish()?, &a.out);
    if skipped > 0 {
        println!("skipped {skipped} malformed lines");
    }
    Ok(())
}

/// Writes the synthetic world of `config` as `out/catalog.json` and Parquet shards in
/// `out/events/`, one member at a time: memory holds the catalog and one member's events.
pub fn generate_shards(
    config: &SyntheticWorldConfig,
    out: &Path,
    rows_per_shard: usize,
) -> anyhow::Result<ShardSummary> {
    let mut members = SyntheticMembers::new(config);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let catalog_path = out.join("catalog.json");
    write_atomic(&catalog_path, &serde_json::to_vec(&members.catalog)?)
        .with_context(|| format!("cannot write {}", catalog_path.display()))?;
    let dir = out.join("events");
    let mut writer = ShardWriter::create(&dir, rows_per_shard)?;
    for events in members.by_ref() {
        writer.push_member(&events)?;
    }
    let summary = writer.finish()?;
    report(&summary, &dir);
    Ok(summary)
}

fn report(summary: &ShardSummary, dir: &Path) {
    println!(
        "wrote {} events of {} members to {} shard(s) in {}",
        summary.rows,
        summary.members,
        summary.files.len(),
        dir.display()
    );
}
