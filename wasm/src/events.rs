//! JavaScript values → events and request context, with messages that say what is wrong where.

use encore_core::{Action, DeviceType, Event, RerankRequest, Surface};
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};

/// An event as JavaScript passes it; only `item` and `timestamp` are required.
#[derive(Deserialize)]
struct JsEvent {
    item: u32,
    timestamp: f64,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    surface: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    device: Option<String>,
}

/// The optional request fields.
#[derive(Deserialize, Default)]
struct JsRequest {
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

/// The keys of an event object.
const EVENT_KEYS: &[&str] = &[
    "item",
    "timestamp",
    "action",
    "duration",
    "surface",
    "country",
    "device",
];

/// Refuses an object with a key outside `known`, naming the key and `what` (the object):
/// serde reads only the fields it knows (serde_wasm_bindgen ignores `deny_unknown_fields`), so
/// a misspelt key would otherwise pass unnoticed. Anything but a plain object passes (serde
/// judges it).
fn known_keys_only(value: &JsValue, what: &str, known: &[&str]) -> Result<(), String> {
    let Some(object) = value.dyn_ref::<js_sys::Object>() else {
        return Ok(());
    };
    if js_sys::Array::is_array(value) || js_sys::ArrayBuffer::is_view(value) {
        return Ok(());
    }
    for key in js_sys::Object::keys(object).iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(format!(
                "{what}: unknown key {key:?} (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

// The parsers below say what is wrong; their callers prefix where (built only on error, so
// that a valid history of hundreds of events allocates no messages).

fn device(name: &str) -> Result<DeviceType, String> {
    DeviceType::from_name(name)
        .ok_or_else(|| format!("unknown device {name:?} (tv, mobile, web, tablet)"))
}

fn timestamp(t: f64) -> Result<i64, String> {
    if t.is_finite() && t.abs() < 1e15 {
        Ok(t as i64)
    } else {
        Err(format!("timestamp {t} is not a finite number of seconds"))
    }
}

/// Parses the `events` argument of `rerank` and `session`: an array of event objects, or the
/// same history as columns (see [`parse_columns`]).
pub fn parse_history(value: JsValue) -> Result<Vec<Event>, String> {
    if !js_sys::Array::is_array(&value) && value.is_object() {
        return parse_columns(&value);
    }
    // Only the first event's keys are checked: enumerating every event's keys would cost more
    // than the rest of the conversion, and the events of one history are built by one piece
    // of code, so a misspelt key shows in the first.
    if let Some(array) = value.dyn_ref::<js_sys::Array>()
        && array.length() > 0
    {
        known_keys_only(&array.get(0), "event 0", EVENT_KEYS)?;
    }
    let raw: Vec<JsEvent> = serde_wasm_bindgen::from_value(value)
        .map_err(|e| format!("events must be an array of {{item, timestamp, ...}} objects: {e}"))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, e)| to_event(e).map_err(|m| format!("event {i}: {m}")))
        .collect()
}

/// The optional string columns of a columnar history.
#[derive(Deserialize)]
struct JsColumns {
    #[serde(default)]
    actions: Option<Vec<String>>,
    #[serde(default)]
    surfaces: Option<Vec<String>>,
    #[serde(default)]
    countries: Option<Vec<String>>,
    #[serde(default)]
    devices: Option<Vec<String>>,
}

/// Reads column `name` of `columns` as numbers: a typed array or an array of numbers
/// (`None` when the column is absent).
fn numeric_column(columns: &JsValue, name: &str) -> Result<Option<Vec<f64>>, String> {
    let column = js_sys::Reflect::get(columns, &name.into())
        .map_err(|_| format!("cannot read column {name}"))?;
    if column.is_undefined() || column.is_null() {
        return Ok(None);
    }
    let numbers = if js_sys::Array::is_array(&column) {
        serde_wasm_bindgen::from_value::<Vec<f64>>(column)
            .map_err(|e| format!("column {name} must hold numbers: {e}"))?
    } else if column.is_object() && js_sys::ArrayBuffer::is_view(&column) {
        // Every typed array (Uint32Array, Float64Array, ...) converts to f64 exactly.
        js_sys::Float64Array::new(&column).to_vec()
    } else {
        return Err(format!(
            "column {name} must be a typed array or an array of numbers"
        ));
    };
    Ok(Some(numbers))
}

/// Parses a history given as columns, one entry per event (oldest first): `{items,
/// timestamps}` (typed arrays or arrays of numbers), optionally `durations` (numbers) and
/// `actions`, `surfaces`, `countries`, `devices` (arrays of names). Faster than an array of
/// objects for long histories: no object per event crosses into the module.
pub fn parse_columns(columns: &JsValue) -> Result<Vec<Event>, String> {
    known_keys_only(
        columns,
        "columns",
        &[
            "items",
            "timestamps",
            "durations",
            "actions",
            "surfaces",
            "countries",
            "devices",
        ],
    )?;
    let required = |name: &str| -> Result<Vec<f64>, String> {
        numeric_column(columns, name)?.ok_or_else(|| {
            format!("a columnar history needs a {name} column (events must be an array of event objects or {{items, timestamps, ...}} columns)")
        })
    };
    let items = required("items")?;
    let timestamps = required("timestamps")?;
    let durations = numeric_column(columns, "durations")?;
    let names: JsColumns = serde_wasm_bindgen::from_value(columns.clone()).map_err(|e| {
        format!("columns actions, surfaces, countries and devices must be arrays of names: {e}")
    })?;
    let n = items.len();
    let check = |name: &str, len: Option<usize>| match len {
        Some(len) if len != n => Err(format!("column {name} has {len} entries, items has {n}")),
        _ => Ok(()),
    };
    check("timestamps", Some(timestamps.len()))?;
    check("durations", durations.as_ref().map(Vec::len))?;
    check("actions", names.actions.as_ref().map(Vec::len))?;
    check("surfaces", names.surfaces.as_ref().map(Vec::len))?;
    check("countries", names.countries.as_ref().map(Vec::len))?;
    check("devices", names.devices.as_ref().map(Vec::len))?;
    let name_at = |column: &Option<Vec<String>>, i: usize| column.as_ref().map(|c| c[i].clone());
    (0..n)
        .map(|i| {
            let item = items[i];
            if !(item >= 0.0 && item <= u32::MAX as f64 && item.fract() == 0.0) {
                return Err(format!("event {i}: item {item} is not an item id"));
            }
            to_event(JsEvent {
                item: item as u32,
                timestamp: timestamps[i],
                action: name_at(&names.actions, i),
                duration: durations.as_ref().map(|d| d[i]),
                surface: name_at(&names.surfaces, i),
                country: name_at(&names.countries, i),
                device: name_at(&names.devices, i),
            })
            .map_err(|m| format!("event {i}: {m}"))
        })
        .collect()
}

/// Parses one event object (`Session.append`); `at` names it in errors.
pub fn parse_event(value: JsValue, at: &str) -> Result<Event, String> {
    known_keys_only(&value, at, EVENT_KEYS)?;
    let raw: JsEvent = serde_wasm_bindgen::from_value(value)
        .map_err(|e| format!("{at} must be an {{item, timestamp, ...}} object: {e}"))?;
    to_event(raw).map_err(|m| format!("{at}: {m}"))
}

fn to_event(e: JsEvent) -> Result<Event, String> {
    let duration = e.duration.unwrap_or(0.0);
    if !duration.is_finite() {
        return Err("duration is not a finite number".into());
    }
    Ok(Event {
        member: 0,
        item: e.item,
        timestamp: timestamp(e.timestamp)?,
        action: match e.action.as_deref() {
            None => Action::Play,
            Some(a) => Action::from_name(a)
                .ok_or_else(|| format!("unknown action {a:?} (play, trailer, add_to_list)"))?,
        },
        duration_s: duration as f32,
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

/// `Reranker.load`'s options.
#[derive(Deserialize, Default)]
struct JsLoadOptions {
    #[serde(default, rename = "windowStep")]
    window_step: Option<f64>,
    #[serde(default, rename = "maxDecodedBytes")]
    max_decoded_bytes: Option<f64>,
}

/// What `Reranker.load`'s `options` set.
pub struct LoadOptions {
    /// Events the window moves at a time once a history outgrows it (1 when absent).
    pub window_step: usize,
    /// Bytes the model's decoded weights may take at most (no limit when absent).
    pub max_decoded_bytes: u64,
}

/// Parses `Reranker.load`'s `options` (`{windowStep?, maxDecodedBytes?, onProgress?}`; the
/// function is read by `Reranker.load` itself).
pub fn parse_load_options(value: JsValue) -> Result<LoadOptions, String> {
    let raw: JsLoadOptions = if value.is_undefined() || value.is_null() {
        JsLoadOptions::default()
    } else {
        known_keys_only(
            &value,
            "load options",
            &["windowStep", "maxDecodedBytes", "onProgress"],
        )?;
        serde_wasm_bindgen::from_value(value)
            .map_err(|e| format!("load options must be {{windowStep?, maxDecodedBytes?}}: {e}"))?
    };
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

/// Parses the optional `options` argument of `rerank`.
pub fn parse_request(surface: Surface, value: JsValue) -> Result<RerankRequest, String> {
    let raw: JsRequest = if value.is_undefined() || value.is_null() {
        JsRequest::default()
    } else {
        known_keys_only(&value, "options", &["timestamp", "device", "country"])?;
        serde_wasm_bindgen::from_value(value)
            .map_err(|e| format!("options must be {{timestamp?, device?, country?}}: {e}"))?
    };
    let at = |m: String| format!("options: {m}");
    Ok(RerankRequest {
        surface,
        timestamp: raw.timestamp.map(timestamp).transpose().map_err(at)?,
        device: raw.device.as_deref().map(device).transpose().map_err(at)?,
        country: raw.country,
    })
}
