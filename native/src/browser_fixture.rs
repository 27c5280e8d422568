//! Inputs for the browser harness (`tests/browser/`): a weight file and rerank cases with the
//! native results they must reproduce.

use std::path::Path;

use encore_core::{Event, RerankRequest, Reranker, ScoredItem};
use serde::Serialize;
use serde_json::{Value, json};

use crate::io::write_atomic;

/// One rerank call and what the native reranker returned for it.
#[derive(Debug, Clone, Serialize)]
pub struct BrowserCase {
    /// Events as JavaScript passes them.
    pub events: Vec<Value>,
    /// Candidate ids in the server's order.
    pub candidates: Vec<u32>,
    /// Surface name, or the prompt set's name.
    pub surface: String,
    /// Request options (`timestamp`, `device`, `country`; `promptFallback` for a bundle with
    /// prompt sets).
    pub options: Value,
    /// Native result: ids best first.
    pub expected_items: Vec<u32>,
    /// Native result: scores best first.
    pub expected_scores: Vec<f32>,
}

/// An event in the shape the wasm package takes.
pub fn js_event(e: &Event) -> Value {
    json!({
        "item": e.item, "timestamp": e.timestamp, "action": e.action.name(), "duration": e.duration_s,
        "surface": e.surface.name(), "country": e.country, "device": e.device.name(),
    })
}

/// Reranks natively and records the case.
pub fn case(
    reranker: &Reranker,
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> anyhow::Result<BrowserCase> {
    let ranked: Vec<ScoredItem> = reranker.rerank(history, candidates, request)?;
    let mut options = json!({
        "timestamp": request.timestamp, "device": request.device.map(|d| d.name()), "country": request.country,
    });
    // A bundle with prompt sets refuses a surface without one unless asked not to.
    if !reranker.prompt_sets().is_empty() {
        options["promptFallback"] = json!(true);
    }
    Ok(BrowserCase {
        events: history.iter().map(js_event).collect(),
        candidates: candidates.to_vec(),
        // The page names a prompt set by the surface argument.
        surface: request
            .prompt
            .clone()
            .unwrap_or_else(|| request.surface.name().to_string()),
        options,
        expected_items: ranked.iter().map(|s| s.item).collect(),
        expected_scores: ranked.iter().map(|s| s.score).collect(),
    })
}

/// Writes `dir/model.encore` and `dir/cases.json`.
pub fn write(dir: &Path, weights: &[u8], cases: &[BrowserCase]) -> anyhow::Result<()> {
    write_atomic(&dir.join("model.encore"), weights)?;
    write_atomic(&dir.join("cases.json"), &serde_json::to_vec(cases)?)?;
    Ok(())
}
