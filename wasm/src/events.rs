//! JavaScript values → events and request context, with messages that say what is wrong where.

use encore_core::{Action, DeviceType, Event, RerankRequest, Surface};
use serde::Deserialize;
use wasm_bindgen::JsValue;

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

/// Parses the `events` argument of `rerank`.
pub fn parse_history(value: JsValue) -> Result<Vec<Event>, String> {
    let raw: Vec<JsEvent> = serde_wasm_bindgen::from_value(value)
        .map_err(|e| format!("events must be an array of {{item, timestamp, ...}} objects: {e}"))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, e)| to_event(e).map_err(|m| format!("event {i}: {m}")))
        .collect()
}

/// Parses one event object (`Session.append`); `at` names it in errors.
pub fn parse_event(value: JsValue, at: &str) -> Result<Event, String> {
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

/// Parses the optional `options` argument of `rerank`.
pub fn parse_request(surface: Surface, value: JsValue) -> Result<RerankRequest, String> {
    let raw: JsRequest = if value.is_undefined() || value.is_null() {
        JsRequest::default()
    } else {
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
