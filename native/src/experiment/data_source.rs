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
                let (events, catalog_path) = (at(events), at(catalog));
                let catalog: Catalog =
                    serde_json::from_slice(&read(&catalog_path)?).with_context(|| {
                        format!("{} is not a catalog JSON file", catalog_path.display())
                    })?;
                let catalog = catalog
                    .reindexed()
                    .with_context(|| format!("{}", catalog_path.display()))?;
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
        }
    }
}
