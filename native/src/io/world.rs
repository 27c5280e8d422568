//! The world on disk: `catalog.json` (the catalog) and `events.csv` (one event per line).

use std::path::{Path, PathBuf};

use encore_core::{Catalog, Event};

use super::{LoadError, write_atomic};

/// The two files of a world directory.
#[derive(Debug, Clone)]
pub struct WorldFiles {
    /// `DIR/catalog.json`.
    pub catalog: PathBuf,
    /// `DIR/events.csv`.
    pub events: PathBuf,
}

impl WorldFiles {
    /// The files inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            catalog: dir.join("catalog.json"),
            events: dir.join("events.csv"),
        }
    }
}

/// Writes a catalog and its events into `dir`.
pub fn write_world(dir: &Path, catalog: &Catalog, events: &[Event]) -> anyhow::Result<WorldFiles> {
    let files = WorldFiles::in_dir(dir);
    write_atomic(&files.catalog, &serde_json::to_vec_pretty(catalog)?)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    for e in events {
        w.serialize(e)?;
    }
    write_atomic(&files.events, &w.into_inner()?)?;
    Ok(files)
}

/// Reads `dir/catalog.json` and `dir/events.csv`; a bad line stops with its line number and
/// reason, and events naming unknown items are rejected.
pub fn read_world(dir: &Path) -> Result<(Catalog, Vec<Event>), LoadError> {
    let files = WorldFiles::in_dir(dir);
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| LoadError::Io {
            path: p.clone(),
            error: e,
        })
    };
    let malformed = |p: &PathBuf, reason: String| LoadError::Malformed {
        path: p.clone(),
        reason,
    };
    let catalog: Catalog = serde_json::from_slice(&read(&files.catalog)?)
        .map_err(|e| malformed(&files.catalog, e.to_string()))?;
    let catalog = catalog
        .reindexed()
        .map_err(|e| malformed(&files.catalog, e.to_string()))?;
    let bytes = read(&files.events)?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let mut events = Vec::new();
    for row in reader.deserialize::<Event>() {
        let line = events.len() + 2;
        let e = row.map_err(|e| malformed(&files.events, format!("line {line}: {e}")))?;
        if catalog.index_of(e.item).is_none() {
            return Err(malformed(
                &files.events,
                format!(
                    "line {line}: item id {} is not in {}",
                    e.item,
                    files.catalog.display()
                ),
            ));
        }
        if !e.duration_s.is_finite() {
            return Err(malformed(
                &files.events,
                format!("line {line}: duration_s is not a finite number"),
            ));
        }
        if !encore_core::data::events::timestamp_in_range(e.timestamp) {
            return Err(malformed(
                &files.events,
                format!(
                    "line {line}: timestamp {} is outside ±{} seconds",
                    e.timestamp,
                    encore_core::data::events::MAX_TIMESTAMP_S
                ),
            ));
        }
        events.push(e);
    }
    Ok((catalog, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use encore_core::{SyntheticWorld, SyntheticWorldConfig};

    #[test]
    fn world_round_trips_and_bad_lines_are_located() {
        let w = SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 10,
            titles: 40,
            days: 20,
            ..Default::default()
        });
        let dir = std::env::temp_dir().join(format!("encore-world-{}", std::process::id()));
        write_world(&dir, &w.catalog, &w.events).unwrap();
        let (c, e) = read_world(&dir).unwrap();
        assert_eq!(c, w.catalog);
        assert_eq!(e, w.events);

        let text = std::fs::read_to_string(dir.join("events.csv")).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut fields: Vec<String> = lines[3].split(',').map(String::from).collect();
        fields[3] = "dance".into(); // the action column
        lines[3] = fields.join(",");
        std::fs::write(dir.join("events.csv"), lines.join("\n")).unwrap();
        let err = read_world(&dir).unwrap_err().to_string();
        assert!(
            err.contains("events.csv") && err.contains("line 4"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
