//! Where an experiment's events come from: the synthetic world, MovieLens-1M/100K, or a generic
//! event log with its item metadata.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use encore_core::data::event_log::{LogFormat, parse_event_log};
use encore_core::data::movielens::{MovieLens, attach_content_vectors, parse_ml1m, parse_ml100k};
use encore_core::data::source::LineOptions;
use encore_core::{Catalog, Event, SyntheticWorld, SyntheticWorldConfig};
use serde::{Deserialize, Serialize};

/// The `[data]` table of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataSource {
    /// The embedded synthetic world.
    Synthetic {
        /// World seed.
        #[serde(default = "default_seed")]
        seed: u64,
        /// Members.
        #[serde(default = "default_members")]
        members: usize,
        /// Titles.
        #[serde(default = "default_titles")]
        titles: usize,
        /// Days simulated.
        #[serde(default = "default_days")]
        days: u32,
    },
    /// MovieLens-1M: `dir` holds ratings.dat and movies.dat (and, with `text_embeddings`,
    /// movie_text_emb.f32 / movie_text_emb.ids).
    #[serde(rename = "movielens-1m")]
    Movielens1m {
        /// The data set's directory (relative paths are relative to the config file).
        dir: PathBuf,
        /// Attach the 384-d text vectors as content.
        #[serde(default)]
        text_embeddings: bool,
        /// Skip and count malformed lines instead of stopping.
        #[serde(default)]
        skip_bad_lines: bool,
    },
    /// MovieLens-100K: `dir` holds u.data and u.item.
    #[serde(rename = "movielens-100k")]
    Movielens100k {
        /// The data set's directory.
        dir: PathBuf,
        /// Skip and count malformed lines instead of stopping.
        #[serde(default)]
        skip_bad_lines: bool,
    },
    /// A generic event log (CSV with a header, or JSON Lines) and a catalog JSON file.
    EventLog {
        /// The event log (`.csv`, or `.jsonl` / `.ndjson`).
        events: PathBuf,
        /// The item metadata (catalog JSON).
        catalog: PathBuf,
        /// Skip and count malformed lines instead of stopping.
        #[serde(default)]
        skip_bad_lines: bool,
    },
    /// An event log as Parquet shards (see [`crate::io::event_shards`] for the columns and the
    /// ordering they must follow) and a catalog JSON file, streamed: training holds one chunk
    /// of windows at a time, not the log.
    EventShards {
        /// The directory of `*.parquet` shards.
        dir: PathBuf,
        /// The item metadata (catalog JSON).
        catalog: PathBuf,
        /// Training windows gathered, shuffled and batched together (default 4,096): the
        /// memory a streamed run holds besides the model.
        #[serde(default = "default_chunk_windows")]
        chunk_windows: usize,
        /// Members whose held-out event is evaluated: the first this many with one
        /// (default 2,000).
        #[serde(default = "default_eval_members")]
        eval_members: usize,
    },
}

fn default_chunk_windows() -> usize {
    4096
}
fn default_eval_members() -> usize {
    2000
}

/// Reads a catalog JSON file and indexes it.
pub fn read_catalog(path: &Path) -> anyhow::Result<Catalog> {
    let catalog: Catalog = serde_json::from_slice(&read(path)?)
        .with_context(|| format!("{} is not a catalog JSON file", path.display()))?;
    catalog
        .reindexed()
        .with_context(|| format!("{}", path.display()))
}

fn default_seed() -> u64 {
    SyntheticWorldConfig::default().seed
}
fn default_members() -> usize {
    SyntheticWorldConfig::default().members
}
fn default_titles() -> usize {
    SyntheticWorldConfig::default().titles
}
fn default_days() -> u32 {
    SyntheticWorldConfig::default().days
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::Synthetic {
            seed: default_seed(),
            members: default_members(),
            titles: default_titles(),
            days: default_days(),
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A loaded data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The items.
    pub catalog: Catalog,
    /// Every event, in file order.
    pub events: Vec<Event>,
    /// Malformed lines skipped.
    pub skipped_lines: usize,
}

impl DataSource {
    /// True for the MovieLens sources (which use the leave-one-out protocol with exclusions).
    pub fn is_movielens(&self) -> bool {
        matches!(
            self,
            DataSource::Movielens1m { .. } | DataSource::Movielens100k { .. }
        )
    }

    /// Loads the data; relative paths are resolved against `base`.
    pub fn load(&self, base: &Path) -> anyhow::Result<Dataset> {
        let at = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let opts = |skip: bool| LineOptions {
            skip_bad_lines: skip,
        };
        let with_dir = |dir: &Path, e: encore_core::data::source::DataError| {
            anyhow::anyhow!("{}: {e}", dir.display())
        };
        match self {
            DataSource::Synthetic {
                seed,
                members,
                titles,
                days,
            } => {
                let w = SyntheticWorld::generate(&SyntheticWorldConfig {
                    seed: *seed,
                    members: *members,
                    titles: *titles,
                    days: *days,
                    ..Default::default()
                });
                Ok(Dataset {
                    catalog: w.catalog,
                    events: w.events,
                    skipped_lines: 0,
                })
            }
            DataSource::Movielens1m {
                dir,
                text_embeddings,
                skip_bad_lines,
            } => {
                let dir = at(dir);
                let MovieLens {
                    mut catalog,
                    events,
                    skipped_lines,
                } = parse_ml1m(
                    &read(&dir.join("movies.dat"))?,
                    &read(&dir.join("ratings.dat"))?,
                    opts(*skip_bad_lines),
                )
                .map_err(|e| with_dir(&dir, e))?;
                if *text_embeddings {
                    attach_content_vectors(
                        &mut catalog,
                        &read(&dir.join("movie_text_emb.ids"))?,
                        &read(&dir.join("movie_text_emb.f32"))?,
                        384,
                    )
                    .map_err(|e| with_dir(&dir, e))?;
                }
                Ok(Dataset {
                    catalog,
                    events,
                    skipped_lines,
                })
            }
            DataSource::Movielens100k {
                dir,
                skip_bad_lines,
            } => {
                let dir = at(dir);
                let ml = parse_ml100k(
                    &read(&dir.join("u.item"))?,
                    &read(&dir.join("u.data"))?,
                    opts(*skip_bad_lines),
                )
                .map_err(|e| with_dir(&dir, e))?;
                Ok(Dataset {
                    catalog: ml.catalog,
                    events: ml.events,
                    skipped_lines: ml.skipped_lines,
                })
            }
            DataSource::EventLog {
                events,
                catalog,
                skip_bad_lines,
            } => {
                let (events, catalog) = (at(events), read_catalog(&at(catalog))?);
                let name = events.display().to_string();
                let (events, skipped_lines) = parse_event_log(
                    &name,
                    &read(&events)?,
                    LogFormat::of_file_name(&name),
                    &catalog,
                    opts(*skip_bad_lines),
                )?;
                Ok(Dataset {
                    catalog,
                    events,
                    skipped_lines,
                })
            }
            DataSource::EventShards { dir, .. } => anyhow::bail!(
                "{}: event shards are streamed, not loaded: `encore train --config` trains on \
                 them; the commands that need every event in memory (eval, ablate, prompt-tune, \
                 …) take a CSV or JSON Lines event log",
                dir.display()
            ),
        }
    }

    /// For Parquet event shards: the shard directory and catalog file (relative paths resolved
    /// against `base`), windows per chunk and members evaluated.
    pub fn shards(&self, base: &Path) -> Option<(PathBuf, PathBuf, usize, usize)> {
        match self {
            DataSource::EventShards {
                dir,
                catalog,
                chunk_windows,
                eval_members,
            } => Some((
                base.join(dir),
                base.join(catalog),
                *chunk_windows,
                *eval_members,
            )),
            _ => None,
        }
    }
}
