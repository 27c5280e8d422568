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

/// The optional string columns of a columnar history.
#[derive(Debug, Default, Deserialize)]
pub struct JsColumns {
    /// Action names.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// Surface names.
    #[serde(default)]
    pub surfaces: Option<Vec<String>>,
    /// Country codes.
    #[serde(default)]
    pub countries: Option<Vec<String>>,
    /// Device names.
    #[serde(default)]
    pub devices: Option<Vec<String>>,
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

/// One event (its position is the caller's to add to a message).
pub fn to_event(e: JsEvent) -> Result<Event, String> {
    // Durations are kept as 32-bit floats: a finite number past f32's range (1e96) is as
    // unusable as an infinite one.
    let duration = e.duration.unwrap_or(0.0) as f32;
    if !duration.is_finite() {
        return Err("duration is not a finite number (at most 3.4e38)".into());
    }
    Ok(Event {
        rating: None,
        member: 0,
        item: e.item,
        timestamp: timestamp(e.timestamp)?,
        action: match e.action.as_deref() {
            None => Action::Play,
            Some(a) => Action::from_name(a)
                .ok_or_else(|| format!("unknown action {a:?} (play, trailer, add_to_list)"))?,
        },
        duration_s: duration,
        surface: match e.surface.as_deref() {
            None => Surface::Home,
            Some(s) => Surface::from_name(s).ok_or_else(|| format!("unknown surface {s:?}"))?,
        },
        country: e.country.unwrap_or_else(|| "??".into()),
        device: match e.device.as_deref() {
            None => DeviceType::Web,
            Some(d) => device(d)?,
        },
    })
}

/// A history given as columns (`items` and `timestamps` as numbers, `durations` as numbers
/// when given, the names in `names`): every column as long as `items`, each event checked.
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
    check("timestamps", Some(timestamps.len()))?;
    check("durations", durations.map(<[f64]>::len))?;
    check("actions", names.actions.as_ref().map(Vec::len))?;
    check("surfaces", names.surfaces.as_ref().map(Vec::len))?;
    check("countries", names.countries.as_ref().map(Vec::len))?;
    check("devices", names.devices.as_ref().map(Vec::len))?;
    let name_at = |column: &Option<Vec<String>>, i: usize| column.as_ref().map(|c| c[i].clone());
    (0..n)
        .map(|i| {
            let item = item_id(items[i])
                .map_err(|_| format!("event {i}: item {} is not an item id", items[i]))?;
            to_event(JsEvent {
                item,
                timestamp: timestamps[i],
                action: name_at(&names.actions, i),
                duration: durations.map(|d| d[i]),
                surface: name_at(&names.surfaces, i),
                country: name_at(&names.countries, i),
                device: name_at(&names.devices, i),
            })
            .map_err(|m| format!("event {i}: {m}"))
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
