//! Encore's on-device reranker for web apps: an ES module built with wasm-bindgen.
//!
//! ```js
//! import init, { Reranker } from './pkg/encore_wasm.js';
//! await init();
//! const reranker = await Reranker.load(new Uint8Array(await (await fetch('model.encore')).arrayBuffer()));
//! const { items, scores } = await reranker.rerank(events, candidateIds, 'home');
//! console.log(reranker.backend); // "webgpu" or "cpu"
//! ```
//!
//! Every failure (bad weight file, unknown ids, empty history, …) rejects the promise with an
//! `Error` whose message says what and where; nothing panics.

#![cfg(target_arch = "wasm32")]

mod backend;
mod events;
mod kernel_check;

use std::rc::Rc;

use encore_core::Surface;
use wasm_bindgen::prelude::*;

pub use backend::BackendChoice;

unsafe extern "C" {
    /// Runs the module's static constructors (cubecl registers its types through `inventory`).
    fn __wasm_call_ctors();
}

#[wasm_bindgen(start)]
fn start() {
    // Calling the constructors explicitly, once, here tells wasm-ld not to wrap every export in
    // a call to them (its "command" heuristic), which re-ran them on each JS→wasm call: ~10 ms
    // per call and a registry that grew forever.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

fn error(message: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&message.to_string()).into()
}

/// A loaded model, ready to rerank on the backend it reports.
#[wasm_bindgen]
pub struct Reranker {
    inner: Rc<encore_core::Reranker>,
    backend: BackendChoice,
    backend_reason: String,
}

#[wasm_bindgen]
impl Reranker {
    /// Loads a weight file (a `Uint8Array`). `backend`: `"auto"` (default: time a warm-up
    /// rerank on WebGPU and on the CPU backend and keep the faster), `"webgpu"` or `"cpu"`.
    pub async fn load(bytes: Vec<u8>, backend: Option<String>) -> Result<Reranker, JsValue> {
        let wanted = backend.as_deref().unwrap_or("auto");
        let (inner, backend, backend_reason) =
            backend::load(&bytes, wanted).await.map_err(error)?;
        Ok(Reranker {
            inner: Rc::new(inner),
            backend,
            backend_reason,
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.name().to_string()
    }

    /// Why this backend was chosen.
    #[wasm_bindgen(getter, js_name = backendReason)]
    pub fn backend_reason(&self) -> String {
        self.backend_reason.clone()
    }

    /// Number of items the model knows.
    #[wasm_bindgen(getter, js_name = itemCount)]
    pub fn item_count(&self) -> usize {
        self.inner.items().len()
    }

    /// Reranks `candidates` (item ids, `Uint32Array` or array) for a member whose recent
    /// `events` (oldest first) are objects `{item, timestamp, action?, duration?, surface?,
    /// country?, device?}`, on `surface` (`"home"`, `"search"`, `"kids"`, `"mobile_feed"`).
    /// `options` may set `{timestamp, device, country}` of the request.
    /// Resolves to `{items: Uint32Array, scores: Float32Array}`, best first.
    pub fn rerank(
        &self,
        events: JsValue,
        candidates: Vec<u32>,
        surface: String,
        options: JsValue,
    ) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            let history = events::parse_history(events).map_err(error)?;
            let surface = Surface::from_name(&surface).ok_or_else(|| {
                error(format!(
                    "unknown surface {surface:?}: use home, search, kids or mobile_feed"
                ))
            })?;
            let request = events::parse_request(surface, options).map_err(error)?;
            let ranked = inner
                .rerank_async(&history, &candidates, &request)
                .await
                .map_err(error)?;
            let items: Vec<u32> = ranked.iter().map(|s| s.item).collect();
            let scores: Vec<f32> = ranked.iter().map(|s| s.score).collect();
            let out = js_sys::Object::new();
            js_sys::Reflect::set(
                &out,
                &"items".into(),
                &js_sys::Uint32Array::from(items.as_slice()),
            )?;
            js_sys::Reflect::set(
                &out,
                &"scores".into(),
                &js_sys::Float32Array::from(scores.as_slice()),
            )?;
            Ok(out.into())
        })
    }
}
