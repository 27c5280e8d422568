//! Arbitrary JSON as the values JavaScript passes the wasm package (events, a columnar
//! history, request options, `Reranker.load`'s options, pushed titles), through the package's
//! own checks (`encore_wasm::input`, the code that decides once the JavaScript layer has read
//! a value): each is accepted as valid runtime input (times in range, finite durations, known
//! names, ids that are ids) or refused with a message, never a panic; an unknown key is refused
//! exactly when the object has one.
#![no_main]

use encore_core::Surface;
use encore_core::data::events::timestamp_in_range;
use encore_wasm::input::{
    self, COLUMN_KEYS, EVENT_KEYS, JsColumns, JsEvent, JsLoadOptions, JsRequest, JsTitle,
    LOAD_OPTION_KEYS, REQUEST_KEYS, TITLE_KEYS,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn valid(e: &encore_core::Event) {
    assert!(timestamp_in_range(e.timestamp), "{e:?}");
    assert!(e.duration_s.is_finite(), "{e:?}");
}

/// A JSON array of numbers, as a typed array column would arrive.
fn numbers(v: Option<&Value>) -> Option<Vec<f64>> {
    v?.as_array()?.iter().map(Value::as_f64).collect()
}

fn event(v: &Value) {
    if let Ok(raw) = serde_json::from_value::<JsEvent>(v.clone())
        && let Ok(e) = input::to_event(raw)
    {
        valid(&e);
    }
}

fn object(map: &serde_json::Map<String, Value>, v: &Value) {
    for known in [
        EVENT_KEYS,
        COLUMN_KEYS,
        REQUEST_KEYS,
        LOAD_OPTION_KEYS,
        TITLE_KEYS,
    ] {
        let refused = input::known_keys_only(map.keys(), "object", known).is_err();
        assert_eq!(refused, map.keys().any(|k| !known.contains(&k.as_str())));
    }
    event(v);
    if let (Some(items), Some(timestamps)) =
        (numbers(map.get("items")), numbers(map.get("timestamps")))
        && let Ok(names) = serde_json::from_value::<JsColumns>(v.clone())
    {
        let durations = numbers(map.get("durations"));
        if let Ok(events) =
            input::columns_to_events(&items, &timestamps, durations.as_deref(), &names)
        {
            assert_eq!(events.len(), items.len());
            for (e, &id) in events.iter().zip(&items) {
                assert_eq!(f64::from(e.item), id);
                valid(e);
            }
        }
    }
    if let Ok(raw) = serde_json::from_value::<JsRequest>(v.clone())
        && let Ok(r) = input::request(encore_core::RerankRequest::on(Surface::Home), &raw)
    {
        assert!(r.timestamp.is_none_or(timestamp_in_range));
        assert!(r.validate().is_ok());
        if let Ok(Some(ctx)) = input::rank_context(&raw, &r) {
            assert_eq!(Some(&ctx.task), raw.task.as_ref());
            assert_eq!(ctx.country, r.country);
        }
    }
    if let Ok(raw) = serde_json::from_value::<JsLoadOptions>(v.clone())
        && let Ok(o) = input::load_options(raw)
    {
        assert!(o.window_step >= 1 && o.max_decoded_bytes >= 1);
    }
    if let Ok(raw) = serde_json::from_value::<JsTitle>(v.clone()) {
        let id = raw.id;
        let content =
            numbers(map.get("content")).map(|c| c.into_iter().map(|x| x as f32).collect());
        if let Ok(candidate) = input::title(raw, content) {
            assert_eq!(f64::from(candidate.id), id);
            let m = candidate.metadata.expect("a pushed title has metadata");
            assert!(timestamp_in_range(m.added_at) && m.release_year <= 9999);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match &value {
        Value::Array(entries) => {
            for entry in entries {
                event(entry);
                if let Value::Object(map) = entry {
                    object(map, entry);
                }
            }
        }
        Value::Object(map) => object(map, &value),
        _ => {
            let _ = value
                .as_f64()
                .map(input::item_id)
                .map(|id| id.map(|id| assert!(f64::from(id) == value.as_f64().unwrap())));
            let _ = value.as_f64().map(input::timestamp);
        }
    }
});
