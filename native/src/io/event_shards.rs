//! Event logs as Parquet shards, written and read one member at a time, so memory stays
//! bounded whatever the log's size.
//!
//! A shard directory holds `part-NNNNN.parquet` files, read in name order. Columns: `member`
//! (uint32), `item` (uint32) and `timestamp` (int64, Unix seconds) are required; `action`,
//! `surface`, `country`, `device` (utf8), `duration_s` (float32) and `rating` (uint8) are
//! optional and nullable, a missing column or a null taking the event log's default (see
//! [`encore_core::data::event_log`]).
//!
//! **Ordering requirement.** Across the files in name order, rows are grouped by member, member
//! ids strictly increasing from one member to the next, and each member's rows are in time
//! order (non-decreasing timestamps). The reader checks both and stops at the first row that
//! breaks them, naming the file and the row (1-based within the file). [`ShardWriter`] (and so
//! `encore convert-events` and `encore generate --shards`) writes in this order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray, UInt8Array, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use encore_core::data::event_log::EventRow;
use encore_core::data::source::DataError;
use encore_core::data::split::MemberHistory;
use encore_core::{Catalog, Event};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

/// Rows per Parquet record batch, written and read: what the reader holds besides one
/// member's events.
pub const BATCH_ROWS: usize = 8192;

/// Default rows per shard file.
pub const SHARD_ROWS: usize = 1 << 20;

/// The most events one member may have in a shard directory: a longer run of one member's
/// rows is refused rather than held in memory.
pub const MAX_MEMBER_EVENTS: usize = 1 << 20;

/// Why shards could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ShardWriteError {
    /// A file or directory could not be created or written.
    #[error("cannot write {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// Parquet encoding failed.
    #[error("cannot write {path}: {error}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        error: parquet::errors::ParquetError,
    },
    /// The directory already holds shards.
    #[error("{0} already holds event shards; write to an empty or new directory")]
    NotEmpty(PathBuf),
    /// Members were pushed out of the required order.
    #[error(
        "member {member} comes after member {previous}: shards need members in increasing id \
         order"
    )]
    MemberOrder {
        /// The member pushed.
        member: u32,
        /// The member pushed before it.
        previous: u32,
    },
    /// One member's events mix members or are not in time order.
    #[error("member {member}'s events {reason}")]
    MemberEvents {
        /// The member.
        member: u32,
        /// What is wrong.
        reason: String,
    },
}

/// What [`ShardWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSummary {
    /// The shard files, in reading order.
    pub files: Vec<PathBuf>,
    /// Rows written.
    pub rows: usize,
    /// Members written.
    pub members: usize,
}

/// The shards' Arrow schema (see the module documentation).
pub fn event_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("member", DataType::UInt32, false),
        Field::new("item", DataType::UInt32, false),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("action", DataType::Utf8, true),
        Field::new("duration_s", DataType::Float32, true),
        Field::new("surface", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("device", DataType::Utf8, true),
        Field::new("rating", DataType::UInt8, true),
    ]))
}

/// Writes members' events into Parquet shards in the required order: a shard file is closed
/// (and renamed into place) at the first member boundary after `rows_per_shard` rows; rows go
/// out in record batches of [`BATCH_ROWS`].
pub struct ShardWriter {
    dir: PathBuf,
    rows_per_shard: usize,
    schema: Arc<Schema>,
    open: Option<(ArrowWriter<File>, PathBuf)>,
    pending: Vec<Event>,
    rows_in_shard: usize,
    previous_member: Option<u32>,
    summary: ShardSummary,
}

impl ShardWriter {
    /// A writer into `dir` (created if missing; refused if it already holds shards), closing
    /// a shard after `rows_per_shard` rows (at least 1).
    pub fn create(dir: &Path, rows_per_shard: usize) -> Result<Self, ShardWriteError> {
        let io = |error| ShardWriteError::Io {
            path: dir.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        if !shard_files(dir).map_err(io)?.is_empty() {
            return Err(ShardWriteError::NotEmpty(dir.to_path_buf()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            rows_per_shard: rows_per_shard.max(1),
            schema: event_schema(),
            open: None,
            pending: Vec::with_capacity(BATCH_ROWS),
            rows_in_shard: 0,
            previous_member: None,
            summary: ShardSummary {
                files: Vec::new(),
                rows: 0,
                members: 0,
            },
        })
    }

    /// Appends one member's events (all of that member, in time order; the member's id above
    /// the previous member's). An empty list writes nothing.
    pub fn push_member(&mut self, events: &[Event]) -> Result<(), ShardWriteError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let member = first.member;
        if let Some(previous) = self.previous_member
            && member <= previous
        {
            return Err(ShardWriteError::MemberOrder { member, previous });
        }
        if let Some(other) = events.iter().find(|e| e.member != member) {
            return Err(ShardWriteError::MemberEvents {
                member,
                reason: format!("include member {}'s", other.member),
            });
        }
        if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
            return Err(ShardWriteError::MemberEvents {
                member,
                reason: "are not in time order".into(),
            });
        }
        if self.rows_in_shard >= self.rows_per_shard {
            self.close_shard()?;
        }
        for e in events {
            self.pending.push(e.clone());
            if self.pending.len() == BATCH_ROWS {
                self.write_pending()?;
            }
        }
        self.rows_in_shard += events.len();
        self.summary.rows += events.len();
        self.summary.members += 1;
        self.previous_member = Some(member);
        Ok(())
    }

    /// Writes what is pending, closes the last shard and returns what was written.
    pub fn finish(mut self) -> Result<ShardSummary, ShardWriteError> {
        self.close_shard()?;
        Ok(self.summary)
    }

    fn write_pending(&mut self) -> Result<(), ShardWriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.open.is_none() {
            let path = self
                .dir
                .join(format!("part-{:05}.parquet", self.summary.files.len()));
            let partial = path.with_extension("parquet.partial");
            let file = File::create(&partial).map_err(|error| ShardWriteError::Io {
                path: partial.clone(),
                error,
            })?;
            let writer =
                ArrowWriter::try_new(file, self.schema.clone(), None).map_err(|error| {
                    ShardWriteError::Parquet {
                        path: partial.clone(),
                        error,
                    }
                })?;
            self.open = Some((writer, path));
        }
        let batch = events_batch(&self.pending, &self.schema);
        let (writer, path) = self.open.as_mut().expect("opened above");
        writer
            .write(&batch)
            .map_err(|error| ShardWriteError::Parquet {
                path: path.clone(),
                error,
            })?;
        self.pending.clear();
        Ok(())
    }

    fn close_shard(&mut self) -> Result<(), ShardWriteError> {
        self.write_pending()?;
        if let Some((writer, path)) = self.open.take() {
            let partial = path.with_extension("parquet.partial");
            writer.close().map_err(|error| ShardWriteError::Parquet {
                path: partial.clone(),
                error,
            })?;
            std::fs::rename(&partial, &path).map_err(|error| ShardWriteError::Io {
                path: path.clone(),
                error,
            })?;
            self.summary.files.push(path);
        }
        self.rows_in_shard = 0;
        Ok(())
    }
}

/// `events` as one record batch of the shard schema.
fn events_batch(events: &[Event], schema: &Arc<Schema>) -> RecordBatch {
    let strings = |f: &dyn Fn(&Event) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(events.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            events.iter().map(|e| e.member),
        )),
        Arc::new(UInt32Array::from_iter_values(events.iter().map(|e| e.item))),
        Arc::new(Int64Array::from_iter_values(
            events.iter().map(|e| e.timestamp),
        )),
        strings(&|e| e.action.name()),
        Arc::new(Float32Array::from_iter_values(
            events.iter().map(|e| e.duration_s),
        )),
        strings(&|e| e.surface.name()),
        strings(&|e| e.country.as_str()),
        strings(&|e| e.device.name()),
        Arc::new(UInt8Array::from_iter(events.iter().map(|e| e.rating))),
    ];
    RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema")
}

/// The shard files of `dir` (`*.parquet`), in name order.
pub fn shard_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// One record batch's columns, typed.
struct Columns {
    member: UInt32Array,
    item: UInt32Array,
    timestamp: Int64Array,
    action: Option<StringArray>,
    duration_s: Option<Float32Array>,
    surface: Option<StringArray>,
    country: Option<StringArray>,
    device: Option<StringArray>,
    rating: Option<UInt8Array>,
    rows: usize,
}

impl Columns {
    /// The typed columns of `batch`, or which column has the wrong type or is missing.
    fn of(batch: &RecordBatch) -> Result<Self, String> {
        fn column<T: Array + Clone + 'static>(
            batch: &RecordBatch,
            name: &str,
            want: &DataType,
            required: bool,
        ) -> Result<Option<T>, String> {
            let Some(c) = batch.column_by_name(name) else {
                return if required {
                    Err(format!("required column `{name}` ({want}) is missing"))
                } else {
                    Ok(None)
                };
            };
            c.as_any()
                .downcast_ref::<T>()
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("column `{name}` must be {want}, found {}", c.data_type()))
        }
        Ok(Self {
            member: column(batch, "member", &DataType::UInt32, true)?.expect("required"),
            item: column(batch, "item", &DataType::UInt32, true)?.expect("required"),
            timestamp: column(batch, "timestamp", &DataType::Int64, true)?.expect("required"),
            action: column(batch, "action", &DataType::Utf8, false)?,
            duration_s: column(batch, "duration_s", &DataType::Float32, false)?,
            surface: column(batch, "surface", &DataType::Utf8, false)?,
            country: column(batch, "country", &DataType::Utf8, false)?,
            device: column(batch, "device", &DataType::Utf8, false)?,
            rating: column(batch, "rating", &DataType::UInt8, false)?,
            rows: batch.num_rows(),
        })
    }

    /// Row `i` as an unchecked event row, or which required field is null.
    fn row(&self, i: usize) -> Result<EventRow, String> {
        for (name, column) in [
            ("member", &self.member as &dyn Array),
            ("item", &self.item),
            ("timestamp", &self.timestamp),
        ] {
            if column.is_null(i) {
                return Err(format!("`{name}` is null"));
            }
        }
        let text = |c: &Option<StringArray>| {
            c.as_ref()
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i).to_string())
        };
        Ok(EventRow {
            member: self.member.value(i),
            item: self.item.value(i),
            timestamp: self.timestamp.value(i),
            action: text(&self.action),
            duration_s: self
                .duration_s
                .as_ref()
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i)),
            surface: text(&self.surface),
            country: text(&self.country),
            device: text(&self.device),
            rating: self
                .rating
                .as_ref()
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i)),
        })
    }
}

/// Reads a shard directory one member at a time (see the module documentation for the
/// ordering it checks). Holds one record batch and one member's events; yields each member's
/// history, or the first error with its file and row.
pub struct ShardReader<'c> {
    catalog: &'c Catalog,
    files: Vec<PathBuf>,
    next_file: usize,
    file_name: String,
    batches: Option<ParquetRecordBatchReader>,
    columns: Option<Columns>,
    row_in_batch: usize,
    row_in_file: usize,
    member: Option<MemberHistory>,
    previous_member: Option<u32>,
    failed: bool,
}

impl<'c> ShardReader<'c> {
    /// A reader of the shards in `dir`, their items checked against `catalog`. Refuses a
    /// directory that cannot be listed or holds no `*.parquet` file.
    pub fn open(dir: &Path, catalog: &'c Catalog) -> Result<Self, DataError> {
        let name = dir.display().to_string();
        let files = shard_files(dir)
            .map_err(|e| DataError::whole_file(&name, format!("cannot list: {e}")))?;
        if files.is_empty() {
            return Err(DataError::whole_file(&name, "holds no .parquet shard"));
        }
        Ok(Self {
            catalog,
            files,
            next_file: 0,
            file_name: String::new(),
            batches: None,
            columns: None,
            row_in_batch: 0,
            row_in_file: 0,
            member: None,
            previous_member: None,
            failed: false,
        })
    }

    /// The shard files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The next row as an event, `None` after the last file.
    fn next_event(&mut self) -> Result<Option<(Event, usize)>, DataError> {
        loop {
            if let Some(columns) = &self.columns
                && self.row_in_batch < columns.rows
            {
                let row = columns.row(self.row_in_batch);
                self.row_in_batch += 1;
                self.row_in_file += 1;
                let at = self.row_in_file;
                let event = row
                    .and_then(|r| r.into_event(self.catalog))
                    .map_err(|reason| DataError::at_row(&self.file_name, at, reason))?;
                return Ok(Some((event, at)));
            }
            if let Some(batches) = &mut self.batches {
                match batches.next() {
                    Some(batch) => {
                        let batch = batch.map_err(|e| {
                            DataError::at_row(&self.file_name, self.row_in_file + 1, e.to_string())
                        })?;
                        self.columns = Some(
                            Columns::of(&batch)
                                .map_err(|r| DataError::whole_file(&self.file_name, r))?,
                        );
                        self.row_in_batch = 0;
                        continue;
                    }
                    None => self.batches = None,
                }
            }
            let Some(path) = self.files.get(self.next_file) else {
                return Ok(None);
            };
            self.next_file += 1;
            self.file_name = path.display().to_string();
            self.row_in_file = 0;
            self.columns = None;
            let file = File::open(path)
                .map_err(|e| DataError::whole_file(&self.file_name, format!("cannot read: {e}")))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
                DataError::whole_file(&self.file_name, format!("not a Parquet file: {e}"))
            })?;
            self.batches = Some(
                builder
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| DataError::whole_file(&self.file_name, e.to_string()))?,
            );
        }
    }

    fn advance(&mut self) -> Result<Option<MemberHistory>, DataError> {
        while let Some((event, row)) = self.next_event()? {
            let at = |reason: String| DataError::at_row(&self.file_name, row, reason);
            match &mut self.member {
                Some(m) if m.member == event.member => {
                    let last = m.events.last().expect("a member starts with an event");
                    if event.timestamp < last.timestamp {
                        return Err(at(format!(
                            "member {}'s timestamp {} is earlier than their previous row's {} \
                             (each member's rows must be in time order)",
                            event.member, event.timestamp, last.timestamp
                        )));
                    }
                    if m.events.len() == MAX_MEMBER_EVENTS {
                        return Err(at(format!(
                            "member {} has more than {MAX_MEMBER_EVENTS} events",
                            event.member
                        )));
                    }
                    m.events.push(event);
                }
                _ => {
                    if let Some(previous) = self.previous_member
                        && event.member <= previous
                    {
                        return Err(at(format!(
                            "member {} follows member {previous} (rows must be grouped by \
                             member, member ids increasing)",
                            event.member
                        )));
                    }
                    self.previous_member = Some(event.member);
                    let next = MemberHistory {
                        member: event.member,
                        events: vec![event],
                    };
                    if let Some(done) = self.member.replace(next) {
                        return Ok(Some(done));
                    }
                }
            }
        }
        Ok(self.member.take())
    }
}

impl Iterator for ShardReader<'_> {
    type Item = Result<MemberHistory, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.advance();
        self.failed = next.is_err();
        next.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encore_core::data::split::group_by_member;
    use encore_core::{SyntheticMembers, SyntheticWorld, SyntheticWorldConfig};

    fn world() -> SyntheticWorld {
        SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 30,
            titles: 40,
            days: 20,
            seed: 5,
            ..Default::default()
        })
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("encore-shards-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Writes one shard file `name` in `dir` with the given columns.
    fn write_file(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) {
        std::fs::create_dir_all(dir).unwrap();
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = File::create(dir.join(name)).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// The first error reading `dir` against `catalog`, as text.
    fn first_error(dir: &Path, catalog: &Catalog) -> String {
        match ShardReader::open(dir, catalog) {
            Err(e) => e.to_string(),
            Ok(reader) => reader
                .filter_map(Result::err)
                .next()
                .expect("an error")
                .to_string(),
        }
    }

    fn ids(values: &[u32]) -> ArrayRef {
        Arc::new(UInt32Array::from(values.to_vec()))
    }

    fn times(values: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    #[test]
    fn shards_round_trip_every_member_across_several_files() {
        let w = world();
        let dir = temp("round-trip");
        let mut writer = ShardWriter::create(&dir, 700).unwrap();
        let mut members = SyntheticMembers::new(&w.config);
        for events in members.by_ref() {
            writer.push_member(&events).unwrap();
        }
        let summary = writer.finish().unwrap();
        let expected = group_by_member(&w.events);
        assert_eq!(summary.rows, w.events.len());
        assert_eq!(summary.members, expected.len());
        // A shard closes at the first member boundary after 700 rows.
        assert!(summary.files.len() >= 2, "{summary:?}");
        assert!(
            summary.files.len() <= w.events.len().div_ceil(700),
            "{summary:?}"
        );
        let read: Vec<MemberHistory> = ShardReader::open(&dir, &w.catalog)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, expected, "members, their events and every field");
        // No partial file is left behind.
        assert_eq!(shard_files(&dir).unwrap(), summary.files);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            summary.files.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_writer_refuses_a_used_directory_members_out_of_order_and_unsorted_events() {
        let w = world();
        let histories = group_by_member(&w.events);
        let dir = temp("writer-refusals");
        let mut writer = ShardWriter::create(&dir, 100).unwrap();
        writer.push_member(&histories[1].events).unwrap();
        let e = writer.push_member(&histories[0].events).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "member {} comes after member {}: shards need members in increasing id order",
                histories[0].member, histories[1].member
            )
        );
        let mut unsorted = histories[2].events.clone();
        unsorted.reverse();
        let e = writer.push_member(&unsorted).unwrap_err().to_string();
        assert!(e.ends_with("events are not in time order"), "{e}");
        let mut mixed = histories[3].events.clone();
        mixed.push(histories[4].events[0].clone());
        let e = writer.push_member(&mixed).unwrap_err().to_string();
        assert!(
            e.contains(&format!("include member {}'s", histories[4].member)),
            "{e}"
        );
        writer.finish().unwrap();
        let e = ShardWriter::create(&dir, 100).err().unwrap().to_string();
        assert!(e.contains("already holds event shards"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_reader_names_the_file_and_row_of_every_broken_rule() {
        let w = world();
        let item = w.catalog.items[0].id;
        let items = [item; 4];
        let dir = temp("reader-errors");
        let case = |name: &str, columns: Vec<(&str, ArrayRef)>| -> String {
            let _ = std::fs::remove_dir_all(&dir);
            write_file(&dir, name, columns);
            first_error(&dir, &w.catalog)
        };
        let at = |name: &str, row: usize| format!("{} row {row}:", dir.join(name).display());
        // Members must increase: member 3 after member 5, on row 3.
        let e = case(
            "part-0.parquet",
            vec![
                ("member", ids(&[5, 5, 3, 3])),
                ("item", ids(&items)),
                ("timestamp", times(&[1, 2, 3, 4])),
            ],
        );
        assert!(e.starts_with(&at("part-0.parquet", 3)), "{e}");
        assert!(e.contains("member 3 follows member 5"), "{e}");
        // A member's rows in time order: row 2 goes back in time.
        let e = case(
            "part-0.parquet",
            vec![
                ("member", ids(&[1, 1, 1, 1])),
                ("item", ids(&items)),
                ("timestamp", times(&[10, 9, 11, 12])),
            ],
        );
        assert!(e.starts_with(&at("part-0.parquet", 2)), "{e}");
        assert!(e.contains("earlier than their previous row's 10"), "{e}");
        // Row checks are the event log's: an unknown item, an unknown surface.
        let e = case(
            "part-0.parquet",
            vec![
                ("member", ids(&[1, 1])),
                ("item", ids(&[item, 999_999])),
                ("timestamp", times(&[1, 2])),
            ],
        );
        assert!(e.starts_with(&at("part-0.parquet", 2)), "{e}");
        assert!(
            e.contains("item id 999999 is not in the item metadata"),
            "{e}"
        );
        let e = case(
            "part-0.parquet",
            vec![
                ("member", ids(&[1])),
                ("item", ids(&[item])),
                ("timestamp", times(&[1])),
                (
                    "surface",
                    Arc::new(StringArray::from(vec!["garden"])) as ArrayRef,
                ),
            ],
        );
        assert!(e.ends_with("unknown surface \"garden\""), "{e}");
        // A null in a required column, on its row.
        let e = case(
            "part-0.parquet",
            vec![
                ("member", ids(&[1, 1])),
                ("item", ids(&[item, item])),
                (
                    "timestamp",
                    Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
                ),
            ],
        );
        assert!(e.starts_with(&at("part-0.parquet", 2)), "{e}");
        assert!(e.contains("`timestamp` is null"), "{e}");
        // A missing or mistyped column, for the whole file.
        let e = case(
            "part-0.parquet",
            vec![("member", ids(&[1])), ("timestamp", times(&[1]))],
        );
        assert!(
            e.contains("required column `item` (UInt32) is missing"),
            "{e}"
        );
        let e = case(
            "part-0.parquet",
            vec![
                ("member", times(&[1])),
                ("item", ids(&[item])),
                ("timestamp", times(&[1])),
            ],
        );
        assert!(
            e.contains("column `member` must be UInt32, found Int64"),
            "{e}"
        );
        // Not Parquet at all; an empty directory.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("part-0.parquet"), b"member,item\n1,2\n").unwrap();
        let e = first_error(&dir, &w.catalog);
        assert!(e.contains("not a Parquet file"), "{e}");
        std::fs::remove_file(dir.join("part-0.parquet")).unwrap();
        let e = first_error(&dir, &w.catalog);
        assert!(e.ends_with("holds no .parquet shard"), "{e}");
        // Members continue across files in name order: member 2 in the second file after
        // member 7 in the first is refused on the second file's first row.
        write_file(
            &dir,
            "part-0.parquet",
            vec![
                ("member", ids(&[7])),
                ("item", ids(&[item])),
                ("timestamp", times(&[1])),
            ],
        );
        write_file(
            &dir,
            "part-1.parquet",
            vec![
                ("member", ids(&[2])),
                ("item", ids(&[item])),
                ("timestamp", times(&[1])),
            ],
        );
        let e = first_error(&dir, &w.catalog);
        assert!(e.starts_with(&at("part-1.parquet", 1)), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn optional_columns_absent_or_null_take_the_event_log_defaults() {
        let w = world();
        let item = w.catalog.items[0].id;
        let dir = temp("defaults");
        write_file(
            &dir,
            "part-0.parquet",
            vec![
                ("member", ids(&[4, 4])),
                ("item", ids(&[item, item])),
                ("timestamp", times(&[5, 6])),
                (
                    "country",
                    Arc::new(StringArray::from(vec![Some("DE"), None])) as ArrayRef,
                ),
            ],
        );
        let read: Vec<MemberHistory> = ShardReader::open(&dir, &w.catalog)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut first = Event::implicit(4, item, 5);
        first.country = "DE".into();
        assert_eq!(
            read,
            vec![MemberHistory {
                member: 4,
                events: vec![first, Event::implicit(4, item, 6)],
            }]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
