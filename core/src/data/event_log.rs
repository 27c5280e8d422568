//! The generic event log: CSV with a header, or JSON Lines, one interaction per row.
//!
//! Required fields: `member` (u32), `item` (u32, an id of the item metadata file) and
//! `timestamp` (Unix seconds). Optional: `action` (`play`, `trailer`, `add_to_list`; default
//! `play`), `duration_s` (seconds watched, default 0), `surface` (`home`, `search`, `kids`,
//! `mobile_feed`; default `home`), `country` (ISO code, default `??`) and `device` (`tv`,
//! `mobile`, `web`, `tablet`; default `web`) and `rating` (an explicit rating, 1 to 10; the
//! model does not read it, tasks may). The item metadata file is a catalog JSON document
//! (see [`crate::Catalog`]).

use serde::Deserialize;

use super::catalog::Catalog;
use super::events::{Action, DeviceType, Event, Surface};
use super::source::{DataError, LineOptions, LineReader};

/// Format of an event log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Comma-separated values with a header row naming the fields.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl LogFormat {
    /// The format a file name implies: `.jsonl`/`.ndjson` → JSON Lines, anything else CSV.
    pub fn of_file_name(name: &str) -> Self {
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            LogFormat::JsonLines
        } else {
            LogFormat::Csv
        }
    }
}

/// The largest rating an event log may carry.
pub const MAX_RATING: u8 = 10;

/// One row of an event log as read, before it is checked: every log format (CSV, JSON Lines,
/// Parquet shards) reads its rows into this and checks them with [`EventRow::into_event`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRow {
    /// The member.
    pub member: u32,
    /// The item id (must be in the catalog).
    pub item: u32,
    /// Unix seconds.
    pub timestamp: i64,
    /// Action name; empty or absent: `play`.
    #[serde(default)]
    pub action: Option<String>,
    /// Seconds watched; absent: 0.
    #[serde(default)]
    pub duration_s: Option<f32>,
    /// Surface name; empty or absent: `home`.
    #[serde(default)]
    pub surface: Option<String>,
    /// Country code; empty or absent: `??`.
    #[serde(default)]
    pub country: Option<String>,
    /// Device name; empty or absent: `web`.
    #[serde(default)]
    pub device: Option<String>,
    /// Explicit rating, 1 to [`MAX_RATING`].
    #[serde(default)]
    pub rating: Option<u8>,
}

impl EventRow {
    /// The event this row describes, or why it is not one (unknown item, action, surface or
    /// device; a timestamp out of range; a negative or non-finite duration; a rating out of
    /// range).
    pub fn into_event(self, catalog: &Catalog) -> Result<Event, String> {
        if catalog.index_of(self.item).is_none() {
            return Err(format!("item id {} is not in the item metadata", self.item));
        }
        let pick = |v: Option<String>| v.filter(|s| !s.is_empty());
        let action = match pick(self.action) {
            None => Action::Play,
            Some(a) => Action::from_name(&a).ok_or(format!("unknown action {a:?}"))?,
        };
        let surface = match pick(self.surface) {
            None => Surface::Home,
            Some(s) => Surface::from_name(&s).ok_or(format!("unknown surface {s:?}"))?,
        };
        let device = match pick(self.device) {
            None => DeviceType::Web,
            Some(d) => DeviceType::from_name(&d).ok_or(format!("unknown device {d:?}"))?,
        };
        if !super::events::timestamp_in_range(self.timestamp) {
            return Err(format!(
                "timestamp {} is outside ±{} seconds",
                self.timestamp,
                super::events::MAX_TIMESTAMP_S
            ));
        }
        let duration_s = self.duration_s.unwrap_or(0.0);
        if !duration_s.is_finite() || duration_s < 0.0 {
            return Err(format!(
                "duration_s {duration_s} is not a finite non-negative number"
            ));
        }
        if let Some(r) = self.rating
            && !(1..=MAX_RATING).contains(&r)
        {
            return Err(format!("rating {r} is outside 1..={MAX_RATING}"));
        }
        Ok(Event {
            rating: self.rating,
            member: self.member,
            item: self.item,
            timestamp: self.timestamp,
            action,
            duration_s,
            surface,
            country: pick(self.country).unwrap_or_else(|| "??".into()),
            device,
        })
    }
}

/// Parses an event log against its item metadata. `file` names the log in errors.
/// Returns the events in file order and the number of skipped lines.
pub fn parse_event_log(
    file: &str,
    bytes: &[u8],
    format: LogFormat,
    catalog: &Catalog,
    options: LineOptions,
) -> Result<(Vec<Event>, usize), DataError> {
    let mut events = Vec::new();
    match format {
        LogFormat::JsonLines => {
            let mut reader = LineReader::new(file, bytes, options);
            while let Some((n, raw)) = reader.next_line() {
                let parsed = serde_json::from_slice::<EventRow>(raw)
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.into_event(catalog));
                if let Some(e) = reader.accept(n, parsed)? {
                    events.push(e);
                }
            }
            Ok((events, reader.skipped()))
        }
        LogFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(bytes);
            let mut skipped = 0;
            let headers = reader
                .headers()
                .map_err(|e| DataError::at(file, 1, e.to_string()))?
                .clone();
            for row in reader.records() {
                let (line, parsed) = match row {
                    Ok(rec) => {
                        let line = rec.position().map_or(0, |p| p.line() as usize);
                        let parsed = rec
                            .deserialize::<EventRow>(Some(&headers))
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.into_event(catalog));
                        (line, parsed)
                    }
                    Err(e) => (
                        e.position().map_or(0, |p| p.line() as usize),
                        Err(e.to_string()),
                    ),
                };
                match parsed {
                    Ok(e) => events.push(e),
                    Err(_) if options.skip_bad_lines => skipped += 1,
                    Err(reason) => return Err(DataError::at(file, line, reason)),
                }
            }
            Ok((events, skipped))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::catalog::{Item, ItemKind};

    fn catalog() -> Catalog {
        let item = |id| Item {
            id,
            title: format!("t{id}"),
            kind: ItemKind::Movie,
            genres: vec![],
            language: "en".into(),
            release_year: 2000,
            added_at: 0,
            content: None,
        };
        Catalog::new(vec![], vec![item(10), item(11)]).unwrap()
    }

    /// The events of a CSV log and of a JSON Lines log, which must be the same.
    fn same_from_both(csv: &[u8], jsonl: &[u8]) -> Vec<Event> {
        let c = catalog();
        let (a, _) =
            parse_event_log("a.csv", csv, LogFormat::Csv, &c, LineOptions::default()).unwrap();
        let (b, _) = parse_event_log(
            "a.jsonl",
            jsonl,
            LogFormat::JsonLines,
            &c,
            LineOptions::default(),
        )
        .unwrap();
        assert_eq!(a, b);
        a
    }

    #[test]
    fn csv_and_json_lines_give_the_same_events_with_defaults() {
        let csv = b"member,item,timestamp,action,surface\n1,10,100,trailer,search\n1,11,200,,\n";
        let jsonl = b"{\"member\":1,\"item\":10,\"timestamp\":100,\"action\":\"trailer\",\"surface\":\"search\"}\n\n{\"member\":1,\"item\":11,\"timestamp\":200}\n";
        let a = same_from_both(csv, jsonl);
        assert_eq!(a[0].action, Action::Trailer);
        assert_eq!(a[1].surface, Surface::Home);
        assert_eq!(a[1].country, "??");
        assert_eq!(a[0].rating, None);
    }

    #[test]
    fn ratings_are_optional_and_bounded() {
        let c = catalog();
        let csv = b"member,item,timestamp,rating\n1,10,100,4\n1,11,200,\n";
        let jsonl = b"{\"member\":1,\"item\":10,\"timestamp\":100,\"rating\":4}\n{\"member\":1,\"item\":11,\"timestamp\":200}\n";
        let a = same_from_both(csv, jsonl);
        assert_eq!(
            a.iter().map(|e| e.rating).collect::<Vec<_>>(),
            vec![Some(4), None]
        );
        for (bad, why) in [
            ("0", "rating 0 is outside 1..=10"),
            ("11", "rating 11 is outside"),
            ("300", "number too large"),
        ] {
            let csv = format!("member,item,timestamp,rating\n1,10,100,4\n1,11,200,{bad}\n");
            let err = parse_event_log(
                "r.csv",
                csv.as_bytes(),
                LogFormat::Csv,
                &c,
                LineOptions::default(),
            )
            .unwrap_err();
            assert_eq!(err.line, 3, "{bad}");
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_rows_are_located_or_skipped() {
        let c = catalog();
        let far = b"member,item,timestamp\n1,10,100\n1,10,-9223372036854775808\n";
        let err = parse_event_log("log.csv", far, LogFormat::Csv, &c, LineOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("log.csv line 3: timestamp -9223372036854775808 is outside"),
            "{err}"
        );
        let csv = b"member,item,timestamp\n1,10,100\n1,99,200\n1,10,x\n";
        let err = parse_event_log("log.csv", csv, LogFormat::Csv, &c, LineOptions::default())
            .unwrap_err();
        assert_eq!(err.line, 3);
        assert!(
            err.to_string().starts_with("log.csv line 3: item id 99"),
            "{err}"
        );
        let (ev, skipped) = parse_event_log(
            "log.csv",
            csv,
            LogFormat::Csv,
            &c,
            LineOptions {
                skip_bad_lines: true,
            },
        )
        .unwrap();
        assert_eq!((ev.len(), skipped), (1, 2));
        let jsonl = b"{\"member\":1,\"item\":10,\"timestamp\":1}\n{\"member\":1,\"item\":10,\"timestamp\":2,\"duration_s\":-1}\n";
        let err = parse_event_log(
            "l.jsonl",
            jsonl,
            LogFormat::JsonLines,
            &c,
            LineOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
    }
}
