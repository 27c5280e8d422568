//! The package's JavaScript surface (wasm32 only): the `Reranker` and `Session` classes, the
//! backend choice, and the conversion of JavaScript values, whose checks live in
//! [`crate::input`].

#[path = "backend.rs"]
mod backend;
#[path = "candidates.rs"]
mod candidates;
#[path = "events.rs"]
mod events;
#[cfg(feature = "webgpu")]
#[path = "wgsl_engine_check.rs"]
mod wgsl_engine_check;

use std::cell::RefCell;
use std::rc::Rc;

use candidates::Candidates;
use encore_core::ranker::RankContext;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

pub use backend::BackendChoice;

unsafe extern "C" {
    /// Runs the module's static constructors (wasm-ld's; kept explicit, see `start`).
    fn __wasm_call_ctors();
}

#[wasm_bindgen(start)]
fn start() {
    // Calling the constructors explicitly, once, here tells wasm-ld not to wrap every export in
    // a call to them (its "command" heuristic), which re-ran them on each JS→wasm call: ~10 ms
    // per call and a registry that grew forever.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
    // The CPU backend's matrix products (burn's and the serving path's) use wasm's 128-bit
    // SIMD kernels, which the module already contains; every browser with WebAssembly SIMD
    // (all current ones) runs them, 2–4× faster than the scalar kernels gemm picks by default.
    gemm::set_wasm_simd128(true);
}

/// The TypeScript types of the package's arguments and results (the declarations of the
/// functions below name them; the parsers in `events` and `candidates` accept exactly these).
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** Where the candidates are shown. */
export type Surface = "home" | "search" | "kids" | "mobile_feed";
/** What the member did with a title. */
export type Action = "play" | "trailer" | "add_to_list";
/** The member's device. */
export type DeviceName = "tv" | "mobile" | "web" | "tablet";
/** `Reranker.load`'s backend: `"auto"` times both and keeps the faster. */
export type BackendName = "auto" | "webgpu" | "cpu";
/** One event of a member's history; only `item` and `timestamp` (Unix seconds) are required. */
export interface EncoreEvent {
  item: number;
  timestamp: number;
  action?: Action;
  /** Seconds watched. */
  duration?: number;
  surface?: Surface;
  /** ISO country code. */
  country?: string;
  device?: DeviceName;
}
/** A history as columns, one entry per event (oldest first): faster for long histories. */
export interface EventColumns {
  items: Uint32Array | number[];
  timestamps: Float64Array | number[];
  durations?: Float32Array | Float64Array | number[];
  actions?: Action[];
  surfaces?: Surface[];
  countries?: string[];
  devices?: DeviceName[];
}
/** A member's history, oldest first: event objects or columns. */
export type History = EncoreEvent[] | EventColumns;
/** The kind of a title. */
export type TitleKind = "movie" | "series" | "documentary" | "kids";
/** A title the bundle may not contain, pushed with its metadata (`reranker.genres` lists the
 * genre names it knows; `content` must have `reranker.contentDim` values). */
export type PushedTitle = {
  id: number;
  genres?: string[];
  kind: TitleKind;
  /** ISO 639-1 code of the original audio. */
  language: string;
  content?: Float32Array | number[];
  /** The title's name: what a contextual rerank (`task`) matches the query against; a
   * contextual rerank refuses a title the bundle lacks without it. */
  title?: string;
} & ({ release_year?: number } | { releaseYear?: number })
  & ({ added_at: number } | { addedAt: number });
/** A title pushed with its item vector, as the same model's export holds it in int8: one
 * whole number in -127…127 per model dimension, and the row's scale (value = q × scale). */
export interface PushedVectorTitle {
  id: number;
  vector: Int8Array | number[];
  scale: number;
}
/** Candidates pushed by the server: ids, any of which may be a title object instead. */
export type Candidates = Uint32Array | Array<number | PushedTitle | PushedVectorTitle>;
/** The request's context (each defaults to the last history event's). */
export interface RequestOptions {
  timestamp?: number;
  device?: DeviceName;
  country?: string;
  /** A surface name the bundle has no prompt set for is refused when the bundle has prompt
   * sets; `true` serves it without a prompt instead. */
  promptFallback?: boolean;
  /** The contextual ranker's task (one of `reranker.rankerTasks`): set, the bundle's ranker
   * scores the candidates (ids only) with the context below and the member's history. */
  task?: string;
  /** The query typed (at most 256 bytes, with at least one word). */
  query?: string;
  /** The title a "more like this" page starts from (in the bundle). */
  source?: number;
  /** The request's language. */
  language?: string;
  /** Personalization weight in [0, 1] (0: relevance alone); the task's default when absent. */
  alpha?: number;
  /** Titles of the history that the bundle may lack, described as pushed candidates are
   * (metadata or int8 vector), not ranked: with every title pushed, a bundle cut down to its
   * model reranks for any catalog. Not with `task`. */
  historyTitles?: Array<PushedTitle | PushedVectorTitle>;
}
/** The name of one of the bundle's prompt sets, as `reranker.promptSets` lists it (a known
 * name written in code: `'partner_row' as PromptSetName`). */
export type PromptSetName = string & { readonly __promptSetName: true };
/** One of the bundle's prompt sets. */
export interface PromptSetInfo {
  name: PromptSetName;
  /** "input": tokens before the request; "deep": per-layer keys and values. */
  form: "input" | "deep";
  /** Vectors in the prompt. */
  length: number;
}
/** What `Reranker.load` reads a bundle from: its bytes, or a response or address to stream it from. */
export type BundleSource = Uint8Array | ArrayBuffer | Response | URL | string;
/** `Reranker.load`'s options. */
export interface LoadOptions {
  /** Called as a streamed bundle arrives: bytes so far, and the total when the server sent an
   * unencoded Content-Length (else null). */
  onProgress?: (loaded: number, total: number | null) => void;
  /** Move the window this many events at a time once a history outgrows it (default 1). */
  windowStep?: number;
  /** Refuse, before allocating, a model whose weights decode to more bytes than this. */
  maxDecodedBytes?: number;
}
/** Candidates best first, with their scores. */
export interface Ranking {
  items: Uint32Array;
  scores: Float32Array;
}
"#;

#[wasm_bindgen(module = "/js/bundle.js")]
extern "C" {
    /// A bundle source → `Uint8Array` (see `wasm/js/bundle.js`).
    #[wasm_bindgen(catch, js_name = bundleBytes)]
    async fn bundle_bytes(source: JsValue, on_progress: JsValue) -> Result<JsValue, JsValue>;
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
    /// Loads a bundle: its bytes (`Uint8Array`, `ArrayBuffer`), or a `Response`, `URL` or URL
    /// string to read it from as a stream (`options.onProgress(loaded, total)` is called as
    /// it arrives). `backend`: `"auto"` (default: time a warm-up
    /// rerank on WebGPU and on the CPU backend and keep the faster), `"webgpu"` or `"cpu"`.
    /// `options` may set `{windowStep}`: once a history outgrows the model's window, the
    /// window moves this many events at a time (default 1), so a session re-encodes it once
    /// every `windowStep` appended events instead of at every one (reranks and sessions
    /// still agree; the model then sees between `window - windowStep` and `window` events);
    /// and `{maxDecodedBytes}`: a file whose weights would take more bytes than this once
    /// decoded is refused before anything is allocated (a valid file decodes to at most four
    /// times its size).
    pub async fn load(
        #[wasm_bindgen(unchecked_param_type = "BundleSource")] source: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "BackendName")] backend: Option<String>,
        #[wasm_bindgen(unchecked_optional_param_type = "LoadOptions")] options: JsValue,
    ) -> Result<Reranker, JsValue> {
        let on_progress = if options.is_object() {
            js_sys::Reflect::get(&options, &"onProgress".into())?
        } else {
            JsValue::UNDEFINED
        };
        let options = events::parse_load_options(options).map_err(error)?;
        let bytes = match source.dyn_ref::<js_sys::Uint8Array>() {
            Some(bytes) => bytes.to_vec(),
            None => js_sys::Uint8Array::new(&bundle_bytes(source, on_progress).await?).to_vec(),
        };
        let wanted = backend.as_deref().unwrap_or("auto");
        let (inner, backend, backend_reason) =
            backend::load(&bytes, wanted, options.max_decoded_bytes)
                .await
                .map_err(error)?;
        Ok(Reranker {
            inner: Rc::new(inner.with_window_step(options.window_step)),
            backend,
            backend_reason,
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.inner.gpu_unavailable() {
            Some(_) => BackendChoice::Cpu.name().to_string(),
            None => self.backend.name().to_string(),
        }
    }

    /// Why this backend was chosen, or why reranks left WebGPU for the CPU (the device was
    /// lost, or a rerank failed there: that rerank and later ones ran on the CPU).
    #[wasm_bindgen(getter, js_name = backendReason)]
    pub fn backend_reason(&self) -> String {
        match self.inner.gpu_unavailable() {
            Some(why) => {
                format!("CPU: WebGPU stopped serving ({why}); reranks run on the CPU since")
            }
            None => self.backend_reason.clone(),
        }
    }

    /// Number of items the model knows.
    #[wasm_bindgen(getter, js_name = itemCount)]
    pub fn item_count(&self) -> usize {
        self.inner.items().len()
    }

    /// Reranks `candidates` (item ids, `Uint32Array` or array; in an array, a title the
    /// bundle may not contain can be given as `{id, genres, kind, language, release_year,
    /// added_at, content?}` instead of its id, and the bundle's content encoder embeds it
    /// from that) for a member whose recent
    /// `events` (oldest first) are objects `{item, timestamp, action?, duration?, surface?,
    /// country?, device?}`, or the same as columns `{items, timestamps, durations?, actions?,
    /// surfaces?, countries?, devices?}` (typed arrays or arrays; faster for long histories), on `surface` (`"home"`, `"search"`, `"kids"`, `"mobile_feed"`, or the name of one
    /// of the bundle's prompt sets, which then steers the model; see `Reranker::request_named`).
    /// `options` may set `{timestamp, device, country}` of the request and `promptFallback`;
    /// `historyTitles` describes titles of the history the bundle lacks (title objects as
    /// above, not ranked); with a `task` (one of `rankerTasks`) the bundle's contextual ranker
    /// scores the candidates under `{query, source, language, alpha}` (a title the bundle
    /// lacks then needs its metadata with a `title` name: the query is matched against it).
    /// Resolves to `{items: Uint32Array, scores: Float32Array}`, best first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ranking>")]
    pub fn rerank(
        &self,
        #[wasm_bindgen(unchecked_param_type = "History")] events: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Candidates")] candidates: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Surface | PromptSetName")] surface: String,
        #[wasm_bindgen(unchecked_optional_param_type = "RequestOptions")] options: JsValue,
    ) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            let history = events::parse_history(events).map_err(error)?;
            let candidates = candidates::parse_candidates(candidates).map_err(error)?;
            let titles = candidates::history_titles(&options).map_err(error)?;
            let (request, context) = named_request(&inner, &surface, options)?;
            if let Some(context) = context {
                let ranked = match candidates {
                    Candidates::Ids(ids) if titles.is_empty() => {
                        inner.rerank_in_context(&history, &ids, &request, &context)
                    }
                    list => inner.rerank_pushed_in_context(
                        &history,
                        &list.into_list(),
                        &titles,
                        &request,
                        &context,
                    ),
                };
                return ranking_object(&ranked.map_err(error)?);
            }
            let ranked = match candidates {
                Candidates::Ids(ids) if titles.is_empty() => {
                    inner.rerank_async(&history, &ids, &request).await
                }
                list => {
                    let list = list.into_list();
                    inner
                        .rerank_pushed_with_history_async(&history, &list, &titles, &request)
                        .await
                }
            };
            ranking_object(&ranked.map_err(error)?)
        })
    }

    /// The bundle's prompt sets, `[{name, form, length}]` in bundle order: a `surface` argument
    /// that names one steers the model with it.
    #[wasm_bindgen(getter, js_name = promptSets, unchecked_return_type = "PromptSetInfo[]")]
    pub fn prompt_sets(&self) -> Result<JsValue, JsValue> {
        let list = js_sys::Array::new();
        for p in self.inner.prompt_sets() {
            let o = js_sys::Object::new();
            js_sys::Reflect::set(&o, &"name".into(), &p.name.as_str().into())?;
            js_sys::Reflect::set(&o, &"form".into(), &p.prompt.form().name().into())?;
            js_sys::Reflect::set(&o, &"length".into(), &(p.prompt.length() as f64).into())?;
            list.push(&o);
        }
        Ok(list.into())
    }

    /// The contextual ranker's task names (empty when the bundle has no ranker): a `task`
    /// option naming one has the ranker score the candidates.
    #[wasm_bindgen(getter, js_name = rankerTasks)]
    pub fn ranker_tasks(&self) -> Vec<String> {
        self.inner.ranker_tasks().to_vec()
    }

    /// The genres a pushed title may name (the bundle's content encoder's), or `undefined`
    /// when the bundle has no content encoder and can score only the titles it contains.
    #[wasm_bindgen(getter)]
    pub fn genres(&self) -> Option<Vec<String>> {
        self.inner.content_encoder().map(|e| e.spec.genres.clone())
    }

    /// Width of the content vector a pushed title may carry (0: none is read; `undefined`
    /// without a content encoder).
    #[wasm_bindgen(getter, js_name = contentDim)]
    pub fn content_dim(&self) -> Option<usize> {
        self.inner.content_encoder().map(|e| e.spec.content_dim)
    }

    /// How many events the window moves at a time (the `windowStep` load option, clamped to
    /// the model's window).
    #[wasm_bindgen(getter, js_name = windowStep)]
    pub fn window_step(&self) -> usize {
        self.inner.window_step()
    }

    /// `"f32"`, `"f16"` or `"int8"`: how the weight file stored its matrices.
    #[wasm_bindgen(getter)]
    pub fn quantization(&self) -> String {
        self.inner.quantization().name().to_string()
    }

    /// Starts a member session over `events` (oldest first, as for `rerank`): later
    /// `session.append(event)` calls add local events, and `session.rerank(...)` reuses the
    /// model's cached keys and values, encoding only the new tokens.
    pub fn session(
        &self,
        #[wasm_bindgen(unchecked_param_type = "History")] events: JsValue,
    ) -> Result<Session, JsValue> {
        let history = events::parse_history(events).map_err(error)?;
        let state = encore_core::MemberSession::new(history).map_err(error)?;
        Ok(Session {
            reranker: Rc::clone(&self.inner),
            state: Rc::new(RefCell::new(Some(state))),
        })
    }
}

/// `{items: Uint32Array, scores: Float32Array}`, best first.
/// The request a `rerank` call names: the surface or prompt set `name` (see
/// `Reranker::request_named`) with the call's `options`.
/// With the contextual ranker's context when the options set a `task`.
fn named_request(
    reranker: &encore_core::Reranker,
    name: &str,
    options: JsValue,
) -> Result<(encore_core::RerankRequest, Option<RankContext>), JsValue> {
    let raw = events::parse_request(options).map_err(error)?;
    let base = reranker
        .request_named(name, raw.prompt_fallback.unwrap_or(false))
        .map_err(error)?;
    let request = crate::input::request(base, &raw).map_err(error)?;
    let context = crate::input::rank_context(&raw, &request).map_err(error)?;
    Ok((request, context))
}

fn ranking_object(ranked: &[encore_core::ScoredItem]) -> Result<JsValue, JsValue> {
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
}

/// One member's history on the device, with the model's cached keys and values (see
/// `Reranker.session`).
#[wasm_bindgen]
pub struct Session {
    reranker: Rc<encore_core::Reranker>,
    /// `None` while a rerank is in flight.
    state: Rc<RefCell<Option<encore_core::MemberSession>>>,
}

#[wasm_bindgen]
impl Session {
    /// Adds a local event `{item, timestamp, action?, duration?, surface?, country?, device?}`
    /// at the end of the history; it must not be older than the last one.
    pub fn append(
        &self,
        #[wasm_bindgen(unchecked_param_type = "EncoreEvent")] event: JsValue,
    ) -> Result<(), JsValue> {
        let mut slot = self.state.borrow_mut();
        let state = slot
            .as_mut()
            .ok_or_else(|| error("the session is busy with a rerank; await it first"))?;
        let at = format!("event {}", state.len());
        let event = events::parse_event(event, &at).map_err(error)?;
        state.append(event).map_err(error)
    }

    /// Keeps the first `length` events, e.g. to drop an appended event whose item the model
    /// does not know (the rerank refused it).
    pub fn truncate(&self, length: usize) -> Result<(), JsValue> {
        let mut slot = self.state.borrow_mut();
        let state = slot
            .as_mut()
            .ok_or_else(|| error("the session is busy with a rerank; await it first"))?;
        state.truncate(length).map_err(error)
    }

    /// Events in the history.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.state.borrow().as_ref().map_or(0, |s| s.len())
    }

    /// Tokens the last rerank encoded (the rest came from the cache).
    #[wasm_bindgen(getter, js_name = lastEncodedTokens)]
    pub fn last_encoded_tokens(&self) -> usize {
        self.state
            .borrow()
            .as_ref()
            .map_or(0, |s| s.last_encoded_tokens())
    }

    /// Tokens whose keys and values are cached (after the last rerank).
    #[wasm_bindgen(getter, js_name = cachedTokens)]
    pub fn cached_tokens(&self) -> usize {
        self.state
            .borrow()
            .as_ref()
            .map_or(0, |s| s.cached_tokens())
    }

    /// Reranks `candidates` for this member on `surface` (arguments as for
    /// `Reranker.rerank`, without the events). Resolves to `{items, scores}`, best first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ranking>")]
    pub fn rerank(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Candidates")] candidates: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Surface | PromptSetName")] surface: String,
        #[wasm_bindgen(unchecked_optional_param_type = "RequestOptions")] options: JsValue,
    ) -> js_sys::Promise {
        let reranker = Rc::clone(&self.reranker);
        let slot = Rc::clone(&self.state);
        wasm_bindgen_futures::future_to_promise(async move {
            let candidates = candidates::parse_candidates(candidates).map_err(error)?;
            let titles = candidates::history_titles(&options).map_err(error)?;
            let (request, context) = named_request(&reranker, &surface, options)?;
            let mut state = slot
                .borrow_mut()
                .take()
                .ok_or_else(|| error("the session is busy with a rerank; await it first"))?;
            if let Some(context) = context {
                let ranked = match candidates {
                    Candidates::Ids(ids) if titles.is_empty() => {
                        reranker.rerank_session_in_context(&mut state, &ids, &request, &context)
                    }
                    list => reranker.rerank_session_pushed_in_context(
                        &mut state,
                        &list.into_list(),
                        &titles,
                        &request,
                        &context,
                    ),
                };
                *slot.borrow_mut() = Some(state);
                return ranking_object(&ranked.map_err(error)?);
            }
            let ranked = match candidates {
                Candidates::Ids(ids) if titles.is_empty() => {
                    reranker
                        .rerank_session_async(&mut state, &ids, &request)
                        .await
                }
                list => {
                    let list = list.into_list();
                    reranker
                        .rerank_session_pushed_with_history_async(
                            &mut state, &list, &titles, &request,
                        )
                        .await
                }
            };
            *slot.borrow_mut() = Some(state);
            ranking_object(&ranked.map_err(error)?)
        })
    }
}
