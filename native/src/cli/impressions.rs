//! `encore impressions`: an impression log (JSON Lines) generated from a data set's events,
//! for the contextual ranker (see [`encore_core::data::impressions`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use encore_core::data::impressions::{
    ImpressionConfig, generate_impressions, write_impression_log,
};
use encore_core::data::split::group_by_member;

use super::DataArgs;
use crate::experiment::ExperimentConfig;
use crate::io::write_atomic;

/// `encore impressions`.
#[derive(Debug, Args)]
pub struct ImpressionsArgs {
    /// Experiment file whose `[data]` to read (e.g. `native/configs/ml-1m.toml` for
    /// MovieLens-1M-S); without it, `--data` or the embedded synthetic world.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output file (JSON Lines).
    #[arg(long, default_value = "artifacts/impressions.jsonl")]
    pub out: PathBuf,
    /// Candidates per impression.
    #[arg(long, default_value_t = ImpressionConfig::default().candidates)]
    pub candidates: usize,
    /// Share of the events not on the search surface that become searches.
    #[arg(long, default_value_t = ImpressionConfig::default().search_share)]
    pub search_share: f64,
    /// Share that become home-row impressions.
    #[arg(long, default_value_t = ImpressionConfig::default().row_share)]
    pub row_share: f64,
    /// Share that become "more like this" impressions.
    #[arg(long, default_value_t = ImpressionConfig::default().more_like_this_share)]
    pub more_like_this_share: f64,
    /// Seed.
    #[arg(long, default_value_t = ImpressionConfig::default().seed)]
    pub seed: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// Runs `encore impressions`.
pub fn run(a: &ImpressionsArgs) -> anyhow::Result<()> {
    let shares = [a.search_share, a.row_share, a.more_like_this_share];
    anyhow::ensure!(
        shares.iter().all(|s| (0.0..=1.0).contains(s)) && shares.iter().sum::<f64>() <= 1.0,
        "--search-share, --row-share and --more-like-this-share must lie in [0, 1] and sum to at \
         most 1 (given {shares:?})"
    );
    anyhow::ensure!(
        (1..=encore_core::data::impressions::MAX_IMPRESSION_CANDIDATES).contains(&a.candidates),
        "--candidates must be 1 to {}",
        encore_core::data::impressions::MAX_IMPRESSION_CANDIDATES
    );
    let (catalog, events) = match &a.config {
        Some(path) => {
            let cfg = ExperimentConfig::read(path)?;
            let data = cfg.data.load(path.parent().unwrap_or(Path::new(".")))?;
            (data.catalog, data.events)
        }
        None => a.data.load()?,
    };
    // One member after another, each in time order (the "more like this" source is the
    // member's previous title).
    let events: Vec<_> = group_by_member(&events)
        .into_iter()
        .flat_map(|h| h.events)
        .collect();
    let cfg = ImpressionConfig {
        candidates: a.candidates,
        search_share: a.search_share,
        row_share: a.row_share,
        more_like_this_share: a.more_like_this_share,
        seed: a.seed,
        ..ImpressionConfig::default()
    };
    let made = generate_impressions(&catalog, &events, &cfg);
    let bytes = write_impression_log(&made.impressions);
    write_atomic(&a.out, &bytes).with_context(|| format!("cannot write {}", a.out.display()))?;
    let count = |task: &str| made.impressions.iter().filter(|r| r.task == task).count();
    println!(
        "wrote {} ({} impressions from {} events: {} searches, {} home rows, {} more-like-this; \
         {} drawn events dropped: their title was not among the candidates)",
        a.out.display(),
        made.impressions.len(),
        events.len(),
        count("search"),
        count("home_row"),
        count("more_like_this"),
        made.dropped
    );
    Ok(())
}
