//! The checks of what JavaScript passes, on plain Rust values: an event, a history's columns,
//! a request's options, `Reranker.load`'s options and a pushed title, each turned into the
//! runtime's types or refused with a message saying what is wrong. The JavaScript layer reads
//! values into these shapes (serde from `JsValue`, typed arrays copied); these functions are all
//! that then decides, and they compile on every target, so that they are fuzzed natively
//! (`tests/fuzz/fuzz_targets/js_input.rs`).

use encore_core::data::catalog::ItemKind;
use encore_core::ranker::RankContext;
use encore_core::runtime::Candidate;
use encore_core::{Action, DeviceType, Event, RerankRequest, Surface, TitleMetadata};
use serde::Deserialize;

/// An event as JavaScript passes it; only `item` and `timestamp` are required.
#[derive(Debug, Deserialize)]
pub struct JsEvent {
    /// Item id.
    pub item: u32,
    /// Unix seconds.
    pub timestamp: f64,
    /// Action name.
    #[serde(default)]
    pub action: Option<String>,
    /// Seconds watched.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Surface name.
    #[serde(default)]
    pub surface: Option<String>,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// Device name.
    #[serde(default)]
    pub device: Option<String>,
}

/// The keys of an event object.
pub const EVENT_KEYS: &[&str] = &[
    "item",
    "timestamp",
    "action",
    "duration",
    "surface",
    "country",
    "device",
];

/// The keys of a columnar history.
pub const COLUMN_KEYS: &[&str] = &[
    "items",
    "timestamps",
    "durations",
    "actions",
    "surfaces",
    "countries",
    "devices",
];

/// One string column of a columnar history: its distinct names, and for each event the position
/// of its name among them. A history's few distinct names are checked once each, and no string
/// is made per event.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct NameColumn {
    /// The distinct names, in order of first use.
    pub names: Vec<String>,
    /// Per event (oldest first): the position of its name in `names`.
    pub codes: Vec<u32>,
}

impl From<Vec<String>> for NameColumn {
    /// The column of `entries`, one per event.
    fn from(entries: Vec<String>) -> Self {
        let mut column = NameColumn::default();
        for entry in entries {
            let code = match column.names.iter().position(|n| *n == entry) {
                Some(code) => code,
                None => {
                    column.names.push(entry);
                    column.names.len() - 1
                }
            };
            column.codes.push(code as u32);
        }
        column
    }
}

impl NameColumn {
    /// Reads each distinct name once with `read`: the values (or refusals) by name position.
    fn read<T>(&self, read: impl Fn(&str) -> Result<T, String>) -> Vec<Result<T, String>> {
        self.names.iter().map(|n| read(n)).collect()
    }

    /// The read value of event `i`'s name, from `read`'s output; a code past the names is
    /// refused, naming the column (`what`) and the entry.
    fn at<'a, T>(
        &self,
        values: &'a [Result<T, String>],
        i: usize,
        what: &str,
    ) -> Result<&'a T, String> {
        let code = self.codes[i];
        match values.get(code as usize) {
            Some(Ok(value)) => Ok(value),
            Some(Err(m)) => Err(m.clone()),
            None => Err(format!(
                "column {what}: entry {i} refers to name {code} of {}",
                values.len()
            )),
        }
    }
}

/// The optional string columns of a columnar history.
#[derive(Debug, Default, Deserialize)]
pub struct JsColumns {
    /// Action names.
    #[serde(default)]
    pub actions: Option<NameColumn>,
    /// Surface names.
    #[serde(default)]
    pub surfaces: Option<NameColumn>,
    /// Country codes.
    #[serde(default)]
    pub countries: Option<NameColumn>,
    /// Device names.
    #[serde(default)]
    pub devices: Option<NameColumn>,
}

/// The optional request fields.
#[derive(Debug, Deserialize, Default)]
pub struct JsRequest {
    /// Unix seconds of the request.
    #[serde(default)]
    pub timestamp: Option<f64>,
    /// Device name.
    #[serde(default)]
    pub device: Option<String>,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// Serve a surface name the bundle has no prompt set for without a prompt, instead of
    /// refusing it (see `Reranker::request_named`).
    #[serde(default, rename = "promptFallback")]
    pub prompt_fallback: Option<bool>,
    /// The contextual ranker's task (`search`, `home_row`, …): set, the bundle's ranker
    /// scores the candidates.
    #[serde(default)]
    pub task: Option<String>,
    /// The query typed (with `task`).
    #[serde(default)]
    pub query: Option<String>,
    /// The title a "more like this" page starts from (with `task`).
    #[serde(default)]
    pub source: Option<f64>,
    /// The request's language (with `task`).
    #[serde(default)]
    pub language: Option<String>,
    /// Personalization weight α ∈ [0, 1] (with `task`; the task's default when absent).
    #[serde(default)]
    pub alpha: Option<f64>,
}

/// The keys of a request's options.
pub const REQUEST_KEYS: &[&str] = &[
    "timestamp",
    "device",
    "country",
    "promptFallback",
    "task",
    "query",
    "source",
    "language",
    "alpha",
    "historyTitles",
];

/// The contextual ranker's context of `rerank`'s options on `request`: `None` without a
/// `task`; the ranker's other keys without one are refused.
pub fn rank_context(
    raw: &JsRequest,
    request: &RerankRequest,
) -> Result<Option<RankContext>, String> {
    let Some(task) = raw.task.clone() else {
        let stray = [
            ("query", raw.query.is_some()),
            ("source", raw.source.is_some()),
            ("language", raw.language.is_some()),
            ("alpha", raw.alpha.is_some()),
        ];
        if let Some((key, _)) = stray.iter().find(|(_, given)| *given) {
            return Err(format!(
                "options: {key} is read by the contextual ranker and needs a task"
            ));
        }
        return Ok(None);
    };
    let source = raw
        .source
        .map(item_id)
        .transpose()
        .map_err(|m| format!("options: source: {m}"))?;
    Ok(Some(RankContext {
        task,
        query: raw.query.clone(),
        source,
        country: request.country.clone(),
        language: raw.language.clone(),
        surface: Some(request.surface),
        device: request.device,
        // NaN stays NaN and is refused by the ranker by name.
        alpha: raw.alpha.map(|a| a as f32),
    }))
}

/// `Reranker.load`'s options (`onProgress` is read by `Reranker.load` itself).
#[derive(Debug, Deserialize, Default)]
pub struct JsLoadOptions {
    /// See [`LoadOptions::window_step`].
    #[serde(default, rename = "windowStep")]
    pub window_step: Option<f64>,
    /// See [`LoadOptions::max_decoded_bytes`].
    #[serde(default, rename = "maxDecodedBytes")]
    pub max_decoded_bytes: Option<f64>,
}

/// The keys of `Reranker.load`'s options.
pub const LOAD_OPTION_KEYS: &[&str] = &["windowStep", "maxDecodedBytes", "onProgress"];

/// What `Reranker.load`'s `options` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Events the window moves at a time once a history outgrows it (1 when absent).
    pub window_step: usize,
    /// Bytes the model's decoded weights may take at most (no limit when absent).
    pub max_decoded_bytes: u64,
}

/// A pushed title as JavaScript passes it (`content` is read separately: it may be a
/// `Float32Array`).
#[derive(Debug, Deserialize)]
pub struct JsTitle {
    /// Item id (a JavaScript number).
    pub id: f64,
    /// Genre names.
    #[serde(default)]
    pub genres: Vec<String>,
    /// Kind name.
    pub kind: String,
    /// ISO 639-1 language code.
    pub language: String,
    /// Release year.
    #[serde(default, alias = "releaseYear")]
    pub release_year: Option<f64>,
    /// Unix seconds the title joined the catalog.
    #[serde(alias = "addedAt")]
    pub added_at: f64,
    /// The title's name (what a search matches; read by the contextual ranker).
    #[serde(default)]
    pub title: Option<String>,
}

/// The keys of a pushed title object.
pub const TITLE_KEYS: &[&str] = &[
    "id",
    "genres",
    "kind",
    "language",
    "release_year",
    "releaseYear",
    "added_at",
    "addedAt",
    "content",
    "title",
];

/// Refuses the first of `keys` outside `known`, naming it and `what` (the object).
pub fn known_keys_only<S: AsRef<str>>(
    keys: impl IntoIterator<Item = S>,
    what: &str,
    known: &[&str],
) -> Result<(), String> {
    for key in keys {
        let key = key.as_ref();
        if !known.contains(&key) {
            return Err(format!(
                "{what}: unknown key {key:?} (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// A device name.
pub fn device(name: &str) -> Result<DeviceType, String> {
    DeviceType::from_name(name)
        .ok_or_else(|| format!("unknown device {name:?} (tv, mobile, web, tablet)"))
}

/// Seconds as JavaScript gives them (a finite number within ±10^15).
pub fn timestamp(t: f64) -> Result<i64, String> {
    if t.is_finite() && t.abs() < 1e15 {
        Ok(t as i64)
    } else {
        Err(format!("timestamp {t} is not a finite number of seconds"))
    }
}

/// An item id given as a JavaScript number.
pub fn item_id(v: f64) -> Result<u32, String> {
    if v >= 0.0 && v <= f64::from(u32::MAX) && v.fract() == 0.0 {
        Ok(v as u32)
    } else {
        Err(format!("{v} is not an item id"))
    }
}

/// An event's duration: a finite number of seconds (0 when absent).
fn duration(d: Option<f64>) -> Result<f32, String> {
    // Durations are kept as 32-bit floats: a finite number past f32's range (1e96) is as
    // unusable as an infinite one.
    let duration = d.unwrap_or(0.0) as f32;
    if duration.is_finite() {
        Ok(duration)
    } else {
        Err("duration is not a finite number (at most 3.4e38)".into())
    }
}

/// An action name.
fn action(name: &str) -> Result<Action, String> {
    Action::from_name(name)
        .ok_or_else(|| format!("unknown action {name:?} (play, trailer, add_to_list)"))
}

/// A surface name.
fn surface(name: &str) -> Result<Surface, String> {
    Surface::from_name(name).ok_or_else(|| format!("unknown surface {name:?}"))
}

/// One event (its position is the caller's to add to a message).
pub fn to_event(e: JsEvent) -> Result<Event, String> {
    let duration_s = duration(e.duration)?;
    Ok(Event {
        rating: None,
        member: 0,
        item: e.item,
        timestamp: timestamp(e.timestamp)?,
        action: e.action.as_deref().map_or(Ok(Action::Play), action)?,
        duration_s,
        surface: e.surface.as_deref().map_or(Ok(Surface::Home), surface)?,
        country: e.country.unwrap_or_else(|| "??".into()),
        device: e.device.as_deref().map_or(Ok(DeviceType::Web), device)?,
    })
}

/// A name column with each distinct name read ([`NameColumn::read`]).
type ReadColumn<'a, T> = Option<(&'a NameColumn, Vec<Result<T, String>>)>;

/// Event `i`'s value in `column` (`absent` when the history has no such column).
fn value<T: Copy>(
    column: &ReadColumn<'_, T>,
    i: usize,
    what: &str,
    absent: T,
) -> Result<T, String> {
    match column {
        Some((c, values)) => c.at(values, i, what).copied(),
        None => Ok(absent),
    }
}

/// A history given as columns (`items` and `timestamps` as numbers, `durations` as numbers
/// when given, the names in `names`): every column as long as `items`, each event checked; the
/// first event with a fault is named, with the fault an event object would get.
pub fn columns_to_events(
    items: &[f64],
    timestamps: &[f64],
    durations: Option<&[f64]>,
    names: &JsColumns,
) -> Result<Vec<Event>, String> {
    let n = items.len();
    let check = |name: &str, len: Option<usize>| match len {
        Some(len) if len != n => Err(format!("column {name} has {len} entries, items has {n}")),
        _ => Ok(()),
    };
    let codes = |c: &Option<NameColumn>| c.as_ref().map(|c| c.codes.len());
    check("timestamps", Some(timestamps.len()))?;
    check("durations", durations.map(<[f64]>::len))?;
    check("actions", codes(&names.actions))?;
    check("surfaces", codes(&names.surfaces))?;
    check("countries", codes(&names.countries))?;
    check("devices", codes(&names.devices))?;
    // Each column's distinct names are read once; every event then looks its value up, so a
    // refused name is reported at the first event that has it, in the order an event object's
    // fields are checked.
    let actions: ReadColumn<Action> = names.actions.as_ref().map(|c| (c, c.read(action)));
    let surfaces: ReadColumn<Surface> = names.surfaces.as_ref().map(|c| (c, c.read(surface)));
    let devices: ReadColumn<DeviceType> = names.devices.as_ref().map(|c| (c, c.read(device)));
    let countries: ReadColumn<String> = names
        .countries
        .as_ref()
        .map(|c| (c, c.read(|n| Ok(n.to_owned()))));
    (0..n)
        .map(|i| {
            let at = |m: String| {
                if m.starts_with("column ") {
                    m
                } else {
                    format!("event {i}: {m}")
                }
            };
            let item = item_id(items[i])
                .map_err(|_| format!("event {i}: item {} is not an item id", items[i]))?;
            let timestamp = timestamp(timestamps[i]).map_err(at)?;
            let action = value(&actions, i, "actions", Action::Play).map_err(at)?;
            let duration_s = duration(durations.map(|d| d[i])).map_err(at)?;
            let surface = value(&surfaces, i, "surfaces", Surface::Home).map_err(at)?;
            let country = match &countries {
                Some((c, values)) => c.at(values, i, "countries").map_err(at)?.clone(),
                None => "??".into(),
            };
            let device = value(&devices, i, "devices", DeviceType::Web).map_err(at)?;
            Ok(Event {
                rating: None,
                member: 0,
                item,
                timestamp,
                action,
                duration_s,
                surface,
                country,
                device,
            })
        })
        .collect()
}

/// `Reranker.load`'s options.
pub fn load_options(raw: JsLoadOptions) -> Result<LoadOptions, String> {
    let window_step = match raw.window_step {
        None => 1,
        Some(s) if s.fract() == 0.0 && (1.0..=1e6).contains(&s) => s as usize,
        Some(s) => {
            return Err(format!(
                "load options: windowStep must be a whole number from 1, not {s}"
            ));
        }
    };
    // 2^53: the largest whole number a JavaScript number holds exactly.
    let max_decoded_bytes = match raw.max_decoded_bytes {
        None => u64::MAX,
        Some(b) if b.fract() == 0.0 && (1.0..=9_007_199_254_740_992.0).contains(&b) => b as u64,
        Some(b) => {
            return Err(format!(
                "load options: maxDecodedBytes must be a whole number of bytes from 1, not {b}"
            ));
        }
    };
    Ok(LoadOptions {
        window_step,
        max_decoded_bytes,
    })
}

/// `base` (the surface and prompt set a request names, see `Reranker::request_named`) with
/// `rerank`'s options.
pub fn request(base: RerankRequest, raw: &JsRequest) -> Result<RerankRequest, String> {
    let at = |m: String| format!("options: {m}");
    Ok(RerankRequest {
        timestamp: raw.timestamp.map(timestamp).transpose().map_err(at)?,
        device: raw.device.as_deref().map(device).transpose().map_err(at)?,
        country: raw.country.clone(),
        ..base
    })
}

/// The keys of a title pushed with its item vector.
pub const VECTOR_TITLE_KEYS: &[&str] = &["id", "vector", "scale"];

/// A title pushed with its item vector: `values` whole numbers in −127…127 (int8) and a
/// finite, non-negative `scale` (the length is checked against the model when reranking).
pub fn vector_title(id: f64, values: &[f64], scale: f64) -> Result<Candidate, String> {
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.fract() == 0.0 && (-127.0..=127.0).contains(*v)))
    {
        return Err(format!(
            "vector value {i} is {v}; a pushed vector holds whole numbers from -127 to 127"
        ));
    }
    let scale_f32 = scale as f32;
    if !(scale_f32.is_finite() && scale >= 0.0) {
        return Err(format!("scale {scale} is not a finite non-negative number"));
    }
    Ok(Candidate::with_vector(
        item_id(id)?,
        encore_core::PushedVector {
            values: values.iter().map(|&v| v as i8).collect(),
            scale: scale_f32,
        },
    ))
}

/// A pushed title with its `content` vector (when given).
pub fn title(raw: JsTitle, content: Option<Vec<f32>>) -> Result<Candidate, String> {
    let kind = ItemKind::from_name(&raw.kind).ok_or_else(|| {
        format!(
            "unknown kind {:?} (movie, series, documentary, kids)",
            raw.kind
        )
    })?;
    let release_year = match raw.release_year {
        None => 0,
        Some(y) if y.fract() == 0.0 && (0.0..=9999.0).contains(&y) => y as u16,
        Some(y) => return Err(format!("release_year {y} is not a year")),
    };
    if !(raw.added_at.is_finite() && raw.added_at.abs() < 1e15) {
        return Err(format!(
            "added_at {} is not a finite number of seconds",
            raw.added_at
        ));
    }
    Ok(Candidate::with_metadata(
        item_id(raw.id)?,
        TitleMetadata {
            genres: raw.genres,
            kind,
            language: raw.language,
            release_year,
            added_at: raw.added_at as i64,
            content,
            title: raw.title,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_duration(d: f64) -> Result<Event, String> {
        to_event(JsEvent {
            item: 1,
            timestamp: 1.7e9,
            action: None,
            duration: Some(d),
            surface: None,
            country: None,
            device: None,
        })
    }

    fn names(entries: &[&str]) -> Option<NameColumn> {
        Some(NameColumn::from(
            entries.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn a_name_column_codes_each_entry_by_its_distinct_name() {
        let column = names(&["home", "search", "home", "", "search"]).unwrap();
        assert_eq!(column.names, ["home", "search", ""]);
        assert_eq!(column.codes, [0, 1, 0, 2, 1]);
        assert_eq!(NameColumn::from(Vec::new()), NameColumn::default());
    }

    #[test]
    fn columns_give_the_events_their_objects_give() {
        let items = [3.0, 9.0, 3.0, 12.0];
        let timestamps = [1.0e9, 1.1e9, 1.2e9, 1.3e9];
        let durations = [60.0, 0.0, 5.5, 1e3];
        let actions = ["play", "trailer", "add_to_list", "play"];
        let surfaces = ["home", "search", "kids", "search"];
        let countries = ["US", "DE", "US", "ZZZ"];
        let devices = ["tv", "web", "mobile", "tv"];
        let columns = JsColumns {
            actions: names(&actions),
            surfaces: names(&surfaces),
            countries: names(&countries),
            devices: names(&devices),
        };
        let got = columns_to_events(&items, &timestamps, Some(&durations), &columns).unwrap();
        let want: Vec<Event> = (0..4)
            .map(|i| {
                to_event(JsEvent {
                    item: items[i] as u32,
                    timestamp: timestamps[i],
                    action: Some(actions[i].into()),
                    duration: Some(durations[i]),
                    surface: Some(surfaces[i].into()),
                    country: Some(countries[i].into()),
                    device: Some(devices[i].into()),
                })
                .unwrap()
            })
            .collect();
        assert_eq!(got, want);
        // Absent columns take the defaults of absent fields.
        let bare = columns_to_events(&items, &timestamps, None, &JsColumns::default()).unwrap();
        for (e, w) in bare.iter().zip(&want) {
            let default = to_event(JsEvent {
                item: w.item,
                timestamp: w.timestamp as f64,
                action: None,
                duration: None,
                surface: None,
                country: None,
                device: None,
            })
            .unwrap();
            assert_eq!(*e, default);
            assert_eq!((e.country.as_str(), e.surface), ("??", Surface::Home));
        }
    }

    #[test]
    fn a_columnar_fault_is_named_at_its_first_event_in_field_order() {
        let items = [3.0, 9.0, 3.0];
        let good = [1.0e9, 1.1e9, 1.2e9];
        let nan = [1.0e9, f64::NAN, 1.2e9];
        let with = |f: fn(&mut JsColumns)| {
            let mut c = JsColumns::default();
            f(&mut c);
            c
        };
        let cases: Vec<([f64; 3], JsColumns, &str)> = vec![
            // An unknown name is reported at the first event that has it, even when another
            // event shares it.
            (
                good,
                with(|c| c.surfaces = names(&["home", "attic", "attic"])),
                "event 1: unknown surface \"attic\"",
            ),
            // An earlier event's bad timestamp comes first.
            (
                nan,
                with(|c| c.surfaces = names(&["home", "home", "attic"])),
                "event 1: timestamp NaN is not a finite number of seconds",
            ),
            // Within one event, the timestamp before the action, the action before the surface.
            (
                nan,
                with(|c| c.actions = names(&["play", "jump", "play"])),
                "event 1: timestamp NaN",
            ),
            (
                good,
                with(|c| {
                    c.actions = names(&["play", "jump", "play"]);
                    c.surfaces = names(&["home", "attic", "attic"]);
                }),
                "event 1: unknown action \"jump\"",
            ),
            (
                good,
                with(|c| c.devices = names(&["tv", "tv", "fridge"])),
                "event 2: unknown device \"fridge\"",
            ),
            // A code past the column's names (the JavaScript side's fault) is refused by entry.
            (
                good,
                with(|c| {
                    c.countries = Some(NameColumn {
                        names: vec!["US".into()],
                        codes: vec![0, 1, 0],
                    })
                }),
                "column countries: entry 1 refers to name 1 of 1",
            ),
            // A column of another length is refused before any event.
            (
                nan,
                with(|c| c.devices = names(&["tv"])),
                "column devices has 1 entries, items has 3",
            ),
        ];
        for (timestamps, columns, want) in cases {
            let m = columns_to_events(&items, &timestamps, None, &columns).unwrap_err();
            assert!(m.starts_with(want), "{m:?} does not start with {want:?}");
        }
    }

    #[test]
    fn a_pushed_vector_holds_int8_values_and_a_finite_scale() {
        let c = vector_title(7.0, &[-127.0, 0.0, 5.0], 0.5).unwrap();
        assert_eq!(c.id, 7);
        assert_eq!(
            c.vector,
            Some(encore_core::PushedVector {
                values: vec![-127, 0, 5],
                scale: 0.5
            })
        );
        assert_eq!(c.metadata, None);
        for (values, scale, why) in [
            (vec![128.0], 1.0, "vector value 0 is 128"),
            (vec![1.0, 2.5], 1.0, "vector value 1 is 2.5"),
            (
                vec![1.0],
                -1.0,
                "scale -1 is not a finite non-negative number",
            ),
            (
                vec![1.0],
                1e39,
                "scale 1000000000000000000000000000000000000000 is not",
            ),
            (vec![1.0], f64::NAN, "scale NaN is not"),
        ] {
            let e = vector_title(7.0, &values, scale).unwrap_err();
            assert!(e.starts_with(why), "{values:?} {scale}: {e}");
        }
        assert!(
            vector_title(-1.0, &[1.0], 1.0).is_err(),
            "ids are checked as ids"
        );
    }

    #[test]
    fn a_duration_must_be_finite_as_the_32_bit_float_it_is_kept_as() {
        assert_eq!(with_duration(1e30).unwrap().duration_s, 1e30f32);
        for bad in [1e96, -1e39, f64::NAN, f64::INFINITY] {
            let err = with_duration(bad).unwrap_err();
            assert!(
                err.contains("duration is not a finite number"),
                "{bad}: {err}"
            );
        }
    }
}
