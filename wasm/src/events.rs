//! JavaScript values → events and request context: read into [`crate::input`]'s shapes, which
//! check them and say what is wrong where.

use encore_core::Event;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use crate::input::{self, EVENT_KEYS, JsColumns, JsEvent, JsLoadOptions, LoadOptions, NameColumn};

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
    let keys = js_sys::Object::keys(object);
    let keys = keys.iter().map(|k| k.as_string().unwrap_or_default());
    input::known_keys_only(keys, what, known)
}

/// Parses the `events` argument of `rerank` and `session`: an array of event objects, or the
/// same history as columns (see [`parse_columns`]).
pub fn parse_history(value: JsValue) -> Result<Vec<Event>, String> {
    let Some(array) = value.dyn_ref::<js_sys::Array>() else {
        if value.is_object() {
            return parse_columns(&value);
        }
        return Err(format!(
            "events must be an array of {{item, timestamp, ...}} objects or {{items, timestamps, ...}} columns, not a {}",
            value.js_typeof().as_string().unwrap_or_default()
        ));
    };
    // Only the first event's keys are checked: enumerating every event's keys would cost more
    // than the rest of the conversion, and the events of one history are built by one piece
    // of code, so a misspelt key shows in the first.
    if array.length() > 0 {
        known_keys_only(&array.get(0), "event 0", EVENT_KEYS)?;
    }
    // Events whose fields have the types the columns carry cross as columns, the fast way in;
    // anything else is read object by object, which names the event and what is wrong.
    if let Some(columns) = event_columns(array) {
        return read_columns(&columns);
    }
    array
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let raw: JsEvent = serde_wasm_bindgen::from_value(event).map_err(|e| {
                format!("event {i} must be an {{item, timestamp, ...}} object: {e}")
            })?;
            input::to_event(raw).map_err(|m| format!("event {i}: {m}"))
        })
        .collect()
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
/// `actions`, `surfaces`, `countries`, `devices` (arrays of names). A key outside these is
/// refused by name.
pub fn parse_columns(columns: &JsValue) -> Result<Vec<Event>, String> {
    known_keys_only(columns, "columns", input::COLUMN_KEYS)?;
    read_columns(columns)
}

/// [`parse_columns`] without the key check, for the columns `eventColumns` built (their keys
/// are its own).
fn read_columns(columns: &JsValue) -> Result<Vec<Event>, String> {
    let required = |name: &str| -> Result<Vec<f64>, String> {
        numeric_column(columns, name)?.ok_or_else(|| {
            format!("a columnar history needs a {name} column (events must be an array of event objects or {{items, timestamps, ...}} columns)")
        })
    };
    let items = required("items")?;
    let timestamps = required("timestamps")?;
    let durations = numeric_column(columns, "durations")?;
    let names = JsColumns {
        actions: name_column(columns, "actions")?,
        surfaces: name_column(columns, "surfaces")?,
        countries: name_column(columns, "countries")?,
        devices: name_column(columns, "devices")?,
    };
    input::columns_to_events(&items, &timestamps, durations.as_deref(), &names)
}

#[wasm_bindgen(module = "/js/columns.js")]
extern "C" {
    /// Writes into `codes` the position of each entry of `column` among its distinct names and
    /// returns those names joined by `separator`; `None` when an entry is not a string or
    /// contains the separator (see `wasm/js/columns.js`).
    #[wasm_bindgen(js_name = codeNames)]
    fn code_names(column: &js_sys::Array, separator: &str, codes: &mut [u32]) -> Option<String>;

    /// An array of event objects as a columnar history, or `None` when an event has a field of
    /// a type the columns cannot carry as the object would (see `wasm/js/columns.js`).
    #[wasm_bindgen(js_name = eventColumns)]
    fn event_columns(events: &js_sys::Array) -> Option<js_sys::Object>;
}

/// What joins a column's distinct names on their way into the module: the ASCII unit separator.
const NAME_SEPARATOR: char = '\u{1f}';

/// Reads column `name` of `columns` as names: an array of strings (`None` when the column is
/// absent). The names cross into the module as codes and the distinct names; a column whose
/// entries are not all strings is read entry by entry, to name the bad one.
fn name_column(columns: &JsValue, name: &str) -> Result<Option<NameColumn>, String> {
    let column = js_sys::Reflect::get(columns, &name.into())
        .map_err(|_| format!("cannot read column {name}"))?;
    if column.is_undefined() || column.is_null() {
        return Ok(None);
    }
    let array = column
        .dyn_ref::<js_sys::Array>()
        .ok_or_else(|| format!("column {name} must be an array of names"))?;
    let mut codes = vec![0u32; array.length() as usize];
    let mut separator = [0u8; 4];
    if let Some(joined) = code_names(
        array,
        NAME_SEPARATOR.encode_utf8(&mut separator),
        &mut codes,
    ) {
        let names = if codes.is_empty() {
            Vec::new()
        } else {
            joined.split(NAME_SEPARATOR).map(str::to_owned).collect()
        };
        return Ok(Some(NameColumn { names, codes }));
    }
    array
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry
                .as_string()
                .ok_or_else(|| format!("column {name}: entry {i} is not a name"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|entries| Some(NameColumn::from(entries)))
}

/// Parses one event object (`Session.append`); `at` names it in errors.
pub fn parse_event(value: JsValue, at: &str) -> Result<Event, String> {
    known_keys_only(&value, at, EVENT_KEYS)?;
    let raw: JsEvent = serde_wasm_bindgen::from_value(value)
        .map_err(|e| format!("{at} must be an {{item, timestamp, ...}} object: {e}"))?;
    input::to_event(raw).map_err(|m| format!("{at}: {m}"))
}

/// Parses `Reranker.load`'s `options` (`{windowStep?, maxDecodedBytes?, onProgress?}`; the
/// function is read by `Reranker.load` itself).
pub fn parse_load_options(value: JsValue) -> Result<LoadOptions, String> {
    let raw: JsLoadOptions = if value.is_undefined() || value.is_null() {
        JsLoadOptions::default()
    } else {
        known_keys_only(&value, "load options", input::LOAD_OPTION_KEYS)?;
        serde_wasm_bindgen::from_value(value)
            .map_err(|e| format!("load options must be {{windowStep?, maxDecodedBytes?}}: {e}"))?
    };
    input::load_options(raw)
}

/// Parses the optional `options` argument of `rerank`.
pub fn parse_request(value: JsValue) -> Result<input::JsRequest, String> {
    if value.is_undefined() || value.is_null() {
        return Ok(input::JsRequest::default());
    }
    known_keys_only(&value, "options", input::REQUEST_KEYS)?;
    serde_wasm_bindgen::from_value(value).map_err(|e| {
        format!("options must be {{timestamp?, device?, country?, promptFallback?}}: {e}")
    })
}
