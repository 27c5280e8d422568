//! JavaScript candidates → item ids, or candidates pushed with their titles' metadata or
//! item vectors.

use encore_core::runtime::Candidate;
use wasm_bindgen::{JsCast, JsValue};

use crate::input::{self, JsTitle, TITLE_KEYS, VECTOR_TITLE_KEYS};

/// A call's candidates: ids alone (the fast path), or a list with at least one title pushed
/// with its metadata.
pub enum Candidates {
    /// Item ids the bundle must contain.
    Ids(Vec<u32>),
    /// Ids and titles with metadata (see [`Candidate`]).
    Pushed(Vec<Candidate>),
}

impl Candidates {
    /// The candidates as a list of [`Candidate`]s (ids become [`Candidate::known`]).
    pub fn into_list(self) -> Vec<Candidate> {
        match self {
            Self::Ids(ids) => ids.into_iter().map(Candidate::known).collect(),
            Self::Pushed(list) => list,
        }
    }
}

/// Parses `rerank`'s `candidates`: a `Uint32Array` or an array of ids, where any entry may
/// instead be a title object `{id, genres, kind, language, release_year, added_at, content?}`
/// (`releaseYear` and `addedAt` also read) or `{id, vector, scale}` (an int8 item vector) for
/// a title the bundle may not contain.
pub fn parse_candidates(value: JsValue) -> Result<Candidates, String> {
    if let Some(ids) = value.dyn_ref::<js_sys::Uint32Array>() {
        return Ok(Candidates::Ids(ids.to_vec()));
    }
    let array = value.dyn_ref::<js_sys::Array>().ok_or(
        "candidates must be a Uint32Array or an array of item ids, {id, genres, kind, \
         language, release_year, added_at, content?} and {id, vector, scale} objects",
    )?;
    let n = array.length();
    let mut ids = Vec::with_capacity(n as usize);
    let mut pushed: Option<Vec<Candidate>> = None;
    for i in 0..n {
        let entry = array.get(i);
        let candidate = if let Some(v) = entry.as_f64() {
            Candidate::known(input::item_id(v).map_err(|m| format!("candidate {i}: {m}"))?)
        } else if entry.is_object() {
            parse_title(entry).map_err(|m| format!("candidate {i}: {m}"))?
        } else {
            return Err(format!(
                "candidate {i} must be an item id or a title object, not {entry:?}"
            ));
        };
        match &mut pushed {
            Some(list) => list.push(candidate),
            None if candidate.metadata.is_some() || candidate.vector.is_some() => {
                let mut list: Vec<Candidate> = ids.drain(..).map(Candidate::known).collect();
                list.push(candidate);
                pushed = Some(list);
            }
            None => ids.push(candidate.id),
        }
    }
    Ok(match pushed {
        Some(list) => Candidates::Pushed(list),
        None => Candidates::Ids(ids),
    })
}

/// Parses the `historyTitles` of `rerank`'s `options` (empty when absent): titles of the
/// history that the bundle may lack, each a title object as a pushed candidate is
/// (`{id, genres, kind, …}` or `{id, vector, scale}`); described for the history, not ranked.
pub fn history_titles(options: &JsValue) -> Result<Vec<Candidate>, String> {
    if !options.is_object() {
        return Ok(Vec::new());
    }
    let value = js_sys::Reflect::get(options, &"historyTitles".into())
        .map_err(|_| "cannot read historyTitles".to_string())?;
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let array = value.dyn_ref::<js_sys::Array>().ok_or(
        "historyTitles must be an array of {id, genres, kind, language, release_year, \
         added_at, content?} and {id, vector, scale} objects",
    )?;
    (0..array.length())
        .map(|i| {
            let entry = array.get(i);
            if !entry.is_object() {
                return Err(format!(
                    "history title {i} must be a title object, not {entry:?}"
                ));
            }
            parse_title(entry).map_err(|m| format!("history title {i}: {m}"))
        })
        .collect()
}

/// Parses one title object.
fn parse_title(value: JsValue) -> Result<Candidate, String> {
    let object = value.unchecked_ref::<js_sys::Object>();
    let keys = js_sys::Object::keys(object);
    let keys: Vec<String> = keys
        .iter()
        .map(|k| k.as_string().unwrap_or_default())
        .collect();
    if keys.iter().any(|k| k == "vector") {
        input::known_keys_only(&keys, "title with a vector", VECTOR_TITLE_KEYS)?;
        return parse_vector_title(&value);
    }
    input::known_keys_only(&keys, "title", TITLE_KEYS)?;
    let content = js_sys::Reflect::get(&value, &"content".into())
        .map_err(|_| "cannot read content".to_string())?;
    let content = if content.is_undefined() || content.is_null() {
        None
    } else if let Some(f) = content.dyn_ref::<js_sys::Float32Array>() {
        Some(f.to_vec())
    } else if js_sys::Array::is_array(&content) {
        let values: Vec<f64> = serde_wasm_bindgen::from_value(content)
            .map_err(|e| format!("content must hold numbers: {e}"))?;
        Some(values.into_iter().map(|v| v as f32).collect())
    } else {
        return Err("content must be a Float32Array or an array of numbers".into());
    };
    let raw: JsTitle = serde_wasm_bindgen::from_value(value).map_err(|e| {
        format!(
            "a title needs {{id, kind, language, added_at}} (genres, release_year and content \
             optional): {e}"
        )
    })?;
    input::title(raw, content)
}

/// Parses `{id, vector, scale}`: `vector` an `Int8Array` or an array of whole numbers.
fn parse_vector_title(value: &JsValue) -> Result<Candidate, String> {
    let get = |key: &str| {
        js_sys::Reflect::get(value, &key.into()).map_err(|_| format!("cannot read {key}"))
    };
    let id = get("id")?
        .as_f64()
        .ok_or("a title with a vector needs a numeric id")?;
    let scale = get("scale")?
        .as_f64()
        .ok_or("a title with a vector needs a numeric scale")?;
    let vector = get("vector")?;
    let values: Vec<f64> = if let Some(v) = vector.dyn_ref::<js_sys::Int8Array>() {
        v.to_vec().into_iter().map(f64::from).collect()
    } else if js_sys::Array::is_array(&vector) {
        serde_wasm_bindgen::from_value(vector)
            .map_err(|e| format!("vector must hold numbers: {e}"))?
    } else {
        return Err("vector must be an Int8Array or an array of numbers".into());
    };
    input::vector_title(id, &values, scale)
}
