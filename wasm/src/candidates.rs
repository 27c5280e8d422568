//! JavaScript candidates → item ids, or candidates pushed with their titles' metadata.

use encore_core::TitleMetadata;
use encore_core::data::catalog::ItemKind;
use encore_core::runtime::Candidate;
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};

/// A call's candidates: ids alone (the fast path), or a list with at least one title pushed
/// with its metadata.
pub enum Candidates {
    /// Item ids the bundle must contain.
    Ids(Vec<u32>),
    /// Ids and titles with metadata (see [`Candidate`]).
    Pushed(Vec<Candidate>),
}

/// The keys of a pushed title object.
const TITLE_KEYS: &[&str] = &[
    "id",
    "genres",
    "kind",
    "language",
    "release_year",
    "releaseYear",
    "added_at",
    "addedAt",
    "content",
];

/// A pushed title as JavaScript passes it (`content` is read separately: it may be a
/// `Float32Array`).
#[derive(Deserialize)]
struct JsTitle {
    id: f64,
    #[serde(default)]
    genres: Vec<String>,
    kind: String,
    language: String,
    #[serde(default, alias = "releaseYear")]
    release_year: Option<f64>,
    #[serde(alias = "addedAt")]
    added_at: f64,
}

fn item_id(v: f64) -> Result<u32, String> {
    if v >= 0.0 && v <= f64::from(u32::MAX) && v.fract() == 0.0 {
        Ok(v as u32)
    } else {
        Err(format!("{v} is not an item id"))
    }
}

/// Parses `rerank`'s `candidates`: a `Uint32Array` or an array of ids, where any entry may
/// instead be a title object `{id, genres, kind, language, release_year, added_at, content?}`
/// (`releaseYear` and `addedAt` also read) for a title the bundle may not contain.
pub fn parse_candidates(value: JsValue) -> Result<Candidates, String> {
    if let Some(ids) = value.dyn_ref::<js_sys::Uint32Array>() {
        return Ok(Candidates::Ids(ids.to_vec()));
    }
    let array = value.dyn_ref::<js_sys::Array>().ok_or(
        "candidates must be a Uint32Array or an array of item ids and {id, genres, kind, \
         language, release_year, added_at, content?} objects",
    )?;
    let n = array.length();
    let mut ids = Vec::with_capacity(n as usize);
    let mut pushed: Option<Vec<Candidate>> = None;
    for i in 0..n {
        let entry = array.get(i);
        let candidate = if let Some(v) = entry.as_f64() {
            Candidate::known(item_id(v).map_err(|m| format!("candidate {i}: {m}"))?)
        } else if entry.is_object() {
            parse_title(entry).map_err(|m| format!("candidate {i}: {m}"))?
        } else {
            return Err(format!(
                "candidate {i} must be an item id or a title object, not {entry:?}"
            ));
        };
        match &mut pushed {
            Some(list) => list.push(candidate),
            None if candidate.metadata.is_some() => {
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

/// Parses one title object.
fn parse_title(value: JsValue) -> Result<Candidate, String> {
    let object = value.unchecked_ref::<js_sys::Object>();
    for key in js_sys::Object::keys(object).iter() {
        let key = key.as_string().unwrap_or_default();
        if !TITLE_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "unknown key {key:?} (known: id, genres, kind, language, release_year, \
                 added_at, content)"
            ));
        }
    }
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
        },
    ))
}
