//! The on-device reranker: load a weight file, take a member's recent events and the
//! candidates a server pushed, and return the candidates ordered by the model's score.
//!
//! Stateless reranks live here; member sessions (cached keys and values) in `session`, many
//! members at once in `batch`, request types and refusals in `request`.

pub mod backend_choice;
mod batch;
mod contextual;
pub mod engines;
mod pushed;
mod request;
mod session;

pub use contextual::ContextualRanker;
pub use engines::cpu::{CpuEngine, CpuKvCache};
pub use pushed::{Candidate, PushedVector};
pub use request::{MemberRequest, RerankError, RerankRequest, ScoredItem};
pub use session::MemberSession;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use burn::backend::DispatchDevice;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::catalog::ItemVocabulary;
use crate::data::events::Event;
use crate::model::{FoundationModel, FoundationModelConfig, KvCache, NamedPromptSet, TokenTables};
use crate::serving::{ServingContentEncoder, ServingModel};
use crate::tokenizer::{EventTokenizer, TokenBatch, TokenSequence};
use crate::weights::{
    Quantization, RankerBundle, ServingRankerBundle, WeightFileError, load_model_within,
    load_serving_within,
};

/// Members per forward pass in [`Reranker::rerank_batch`].
pub const BATCH_CHUNK: usize = 16;

/// Most candidates one call accepts.
pub const MAX_CANDIDATES: usize = 10_000;

/// A loaded model ready to rerank on one device.
#[derive(Debug)]
pub struct Reranker {
    /// The model in burn's form with its stacked token tables, for the forwards that run
    /// through burn (other devices, the batch and catalog calls): given at construction, or
    /// built from `source` the first time one of them runs. A CPU reranker loaded from bytes
    /// reranks without it.
    device_model: OnceLock<DeviceModel>,
    /// The weight file a reranker loaded from bytes came from (to build `device_model`).
    source: Option<Arc<[u8]>>,
    config: FoundationModelConfig,
    items: ItemVocabulary,
    tokenizer: EventTokenizer,
    device: Device,
    /// Distinguishes rerankers, so that a session never reuses another model's cache.
    id: u64,
    /// How the weight file stored the matrices.
    quantization: Quantization,
    /// Embeds pushed titles the bundle does not contain from their metadata (when the bundle
    /// carries the item content encoder).
    content_encoder: Option<Arc<ServingContentEncoder>>,
    /// On the CPU backend: the CPU engine over the serving description, where CPU reranks
    /// run (see [`CpuEngine`]).
    host: Option<CpuEngine>,
    /// The prompt sets a request may select by name (see [`crate::model::PromptSet`]).
    prompts: Vec<NamedPromptSet>,
    /// The contextual ranker, when the bundle carries one (see [`ContextualRanker`]).
    ranker: Option<Arc<ContextualRanker>>,
    /// Where stateless reranks run when set: the WGSL engine on a wgpu device (see
    /// [`Reranker::with_wgsl_engine`]).
    #[cfg(feature = "wgsl-engine")]
    wgsl: Option<engines::wgsl::WgslEngine>,
}

static NEXT_RERANKER_ID: AtomicU64 = AtomicU64::new(0);

/// A model in burn's form and its stacked token tables (built once per set of weights).
#[derive(Debug)]
struct DeviceModel {
    model: FoundationModel,
    tables: TokenTables,
}

impl DeviceModel {
    /// `model` with its token tables.
    fn of(model: FoundationModel) -> Self {
        let tables = model.token_tables();
        Self { model, tables }
    }
}

/// Whether this build runs a reranker's forward through burn on some devices: with burn's GPU
/// backends (the `gpu` feature). Without them (the wasm package) every device is burn's CPU
/// backend, every reranker runs the CPU engine, and the forwards through burn are left out of
/// the build (a fifth of the package's code).
const BURN_FORWARD: bool = cfg!(feature = "gpu");

/// Stops a call into a forward through burn in a build without them (see [`BURN_FORWARD`]): no
/// reranker of such a build gets there, so the forward's code is left out.
#[inline(always)]
fn burn_forward_in_this_build() {
    if !BURN_FORWARD {
        unreachable!("a build without burn's GPU backends serves every reranker on the CPU engine");
    }
}

/// True for a device whose reranks the CPU engine runs: burn's CPU backend without autodiff,
/// and every device of a build without burn's GPU backends.
fn is_host(device: &Device) -> bool {
    !BURN_FORWARD
        || (!device.is_autodiff() && matches!(device.as_dispatch(), DispatchDevice::Flex(_)))
}

impl Reranker {
    /// Loads and validates a weight file onto `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, WeightFileError> {
        Self::from_bytes_within(bytes, device, u64::MAX)
    }

    /// [`Reranker::from_bytes`], refusing (before allocating) a model whose weights would take
    /// more than `max_decoded_bytes` once decoded (see
    /// [`load_model_within`](crate::weights::load_model_within)).
    pub fn from_bytes_within(
        bytes: &[u8],
        device: &Device,
        max_decoded_bytes: u64,
    ) -> Result<Self, WeightFileError> {
        if !is_host(device) {
            let loaded = load_model_within(bytes, device, max_decoded_bytes)?;
            let ranker = loaded.ranker.as_ref().map(RankerBundle::to_serving);
            return Self::new(loaded.model, loaded.config, loaded.items).with_bundle_parts(
                loaded.quantization,
                loaded.content_encoder,
                loaded.prompts,
                ranker,
            );
        }
        // On the CPU the serving description is read straight from the weights; the model in
        // burn's form is built from the same bytes only if a call needs it.
        let loaded = load_serving_within(bytes, device, max_decoded_bytes)?;
        Self::assemble(
            OnceLock::new(),
            Some(Arc::from(bytes)),
            Some(loaded.model),
            loaded.config,
            loaded.items,
            device.clone(),
        )
        .with_bundle_parts(
            loaded.quantization,
            loaded.content_encoder,
            loaded.prompts,
            loaded.ranker,
        )
    }

    /// This reranker with a bundle's other parts: how it stored its matrices, its content
    /// encoder, its prompt sets and its contextual ranker (whose probe is checked).
    fn with_bundle_parts(
        self,
        quantization: Quantization,
        content_encoder: Option<ServingContentEncoder>,
        prompts: Vec<NamedPromptSet>,
        ranker: Option<ServingRankerBundle>,
    ) -> Result<Self, WeightFileError> {
        let mut reranker = self.with_prompts(prompts);
        reranker.quantization = quantization;
        reranker.content_encoder = content_encoder.map(Arc::new);
        match ranker {
            Some(bundle) => reranker.with_serving_ranker(bundle),
            None => Ok(reranker),
        }
    }

    /// Wraps an in-memory model (its device is the model's).
    pub fn new(
        model: FoundationModel,
        config: FoundationModelConfig,
        items: ItemVocabulary,
    ) -> Self {
        let device = model.embedding.item.weight.val().device();
        let device_model = DeviceModel::of(model);
        let serving = is_host(&device)
            .then(|| ServingModel::from_model(&device_model.model, &device_model.tables));
        Self::assemble(
            OnceLock::from(device_model),
            None,
            serving,
            config,
            items,
            device,
        )
    }

    /// A reranker over `device_model` (or the weight file `source` to build it from) with
    /// the CPU engine over `serving` when given.
    fn assemble(
        device_model: OnceLock<DeviceModel>,
        source: Option<Arc<[u8]>>,
        serving: Option<ServingModel>,
        config: FoundationModelConfig,
        items: ItemVocabulary,
        device: Device,
    ) -> Self {
        Self {
            host: serving.map(|s| CpuEngine::new(Arc::new(s))),
            tokenizer: config.tokenizer(),
            device_model,
            source,
            config,
            items,
            device,
            id: NEXT_RERANKER_ID.fetch_add(1, Ordering::Relaxed),
            quantization: Quantization::F32,
            content_encoder: None,
            prompts: Vec::new(),
            ranker: None,
            #[cfg(feature = "wgsl-engine")]
            wgsl: None,
        }
    }

    /// The model in burn's form and its token tables, built from the weight file on first use
    /// by a reranker loaded from bytes.
    fn device_model(&self) -> &DeviceModel {
        self.device_model.get_or_init(|| {
            let bytes = self
                .source
                .as_deref()
                .expect("a reranker without its model keeps the weight file it came from");
            let loaded = load_model_within(bytes, &self.device, u64::MAX)
                .expect("the weight file passed every check when it was loaded");
            DeviceModel::of(loaded.model)
        })
    }

    /// The model in burn's form (see [`Reranker::device_model`]).
    fn model(&self) -> &FoundationModel {
        &self.device_model().model
    }

    /// The model's stacked token tables (see [`Reranker::device_model`]).
    fn tables(&self) -> &TokenTables {
        &self.device_model().tables
    }

    /// The same reranker with `prompts` selectable by name (replacing any it had; see
    /// [`RerankRequest::prompt`]). Sessions of the old reranker start over.
    ///
    /// # Panics
    /// If two prompt sets share a name, or a prompt set does not fit the model (width, layers).
    pub fn with_prompts(mut self, prompts: Vec<NamedPromptSet>) -> Self {
        for (i, named) in prompts.iter().enumerate() {
            assert!(
                !prompts[..i].iter().any(|p| p.name == named.name),
                "two prompt sets named {:?}",
                named.name
            );
            let expected = crate::weights::expected_prompt_tensors(
                named.prompt.form(),
                named.prompt.length(),
                &self.config,
            );
            let shapes: Vec<Vec<usize>> = named
                .prompt
                .named_tensors()
                .into_iter()
                .map(|(_, s, _)| s)
                .collect();
            let wanted: Vec<Vec<usize>> = expected.into_iter().map(|(_, s)| s).collect();
            assert_eq!(
                shapes, wanted,
                "prompt set {:?} does not fit the model",
                named.name
            );
        }
        // (The CPU engine's description is rebuilt only when a prompt set comes or goes.)
        if let Some(host) = &self.host
            && !(prompts.is_empty() && self.prompts.is_empty())
        {
            let model = host.model().clone().with_prompts(&prompts);
            self.host = Some(CpuEngine::new(Arc::new(model)));
        }
        self.prompts = prompts;
        self.id = NEXT_RERANKER_ID.fetch_add(1, Ordering::Relaxed);
        self
    }

    /// The prompt sets requests may select, in bundle order.
    pub fn prompt_sets(&self) -> &[NamedPromptSet] {
        &self.prompts
    }

    /// The request for the surface or task named `name`, as the packages take it: the prompt
    /// set of that name when the bundle has one (on the surface of that name, or home for an
    /// application's own name); otherwise, in a bundle with prompt sets, a refusal naming
    /// them, unless `fallback` asks for the model without a prompt; in a bundle without
    /// prompt sets, the built-in surface of that name. Every other field is taken from the
    /// history, as [`RerankRequest::on`] does.
    pub fn request_named(&self, name: &str, fallback: bool) -> Result<RerankRequest, RerankError> {
        let surface = crate::data::events::Surface::from_name(name);
        if self.prompts.iter().any(|p| p.name == name) {
            let on = surface.unwrap_or(crate::data::events::Surface::Home);
            return Ok(RerankRequest::on(on).with_prompt(name));
        }
        match surface {
            Some(s) if self.prompts.is_empty() || fallback => Ok(RerankRequest::on(s)),
            None if fallback => Ok(RerankRequest::on(crate::data::events::Surface::Home)),
            _ if !self.prompts.is_empty() => Err(RerankError::UnknownPromptSet {
                name: name.to_string(),
                known: self.prompts.iter().map(|p| p.name.clone()).collect(),
            }),
            _ => Err(RerankError::UnknownSurface {
                name: name.to_string(),
            }),
        }
    }

    /// The index of the prompt set `request` selects, if any; an unknown name is refused by
    /// name.
    fn prompt_of(&self, request: &RerankRequest) -> Result<Option<usize>, RerankError> {
        let Some(name) = &request.prompt else {
            return Ok(None);
        };
        match self.prompts.iter().position(|p| &p.name == name) {
            Some(i) => Ok(Some(i)),
            None => Err(RerankError::UnknownPromptSet {
                name: name.clone(),
                known: self.prompts.iter().map(|p| p.name.clone()).collect(),
            }),
        }
    }

    /// Tokens that prompt set `prompt` runs through the layers with the request token (an
    /// input form's vectors; none for the deep form or no prompt).
    fn prompt_tokens(&self, prompt: Option<usize>) -> usize {
        prompt.map_or(0, |p| self.prompts[p].prompt.tokens())
    }

    /// The user representation `[1, 1, d]` of the tokens `seq` (the last one the request
    /// token) on the device through burn, under prompt set `prompt` when given, encoding after
    /// the tokens `cache` holds (an empty cache for a stateless call).
    fn device_user(
        &self,
        seq: &TokenSequence,
        cache: Option<&mut KvCache>,
        prompt: Option<usize>,
    ) -> Tensor<3> {
        burn_forward_in_this_build();
        let Some(p) = prompt else {
            let batch = TokenBatch::new(std::slice::from_ref(seq), &self.device);
            return self.model().forward(&batch, self.tables(), cache, true);
        };
        let mut fresh = KvCache::new(self.config.n_layers);
        let cache = cache.unwrap_or(&mut fresh);
        let n = seq.len();
        if n > 1 {
            let events = TokenBatch::new(&[seq.slice(0..n - 1)], &self.device);
            self.model()
                .forward(&events, self.tables(), Some(&mut *cache), true);
        }
        let request = TokenBatch::new(&[seq.slice(n - 1..n)], &self.device);
        self.model()
            .forward_prompted(&request, self.tables(), cache, &self.prompts[p].prompt)
    }

    /// The same reranker embedding pushed titles it does not contain with `encoder` (see
    /// [`Reranker::rerank_pushed`]).
    ///
    /// # Panics
    /// If the encoder's width is not the model's.
    pub fn with_content_encoder(mut self, encoder: ServingContentEncoder) -> Self {
        assert_eq!(
            encoder.spec.d_model, self.config.d_model,
            "content encoder width"
        );
        self.content_encoder = Some(Arc::new(encoder));
        self
    }

    /// The item content encoder the bundle carried, if any.
    pub fn content_encoder(&self) -> Option<&ServingContentEncoder> {
        self.content_encoder.as_deref()
    }

    /// This CPU reranker with its stateless reranks moved to `gpu`, run by the WGSL engine
    /// over the same serving description (no burn backend on the GPU: the browser package's
    /// WebGPU path). The host embeds the tokens; one submission runs the layers and scores the
    /// candidates. Sessions and batches stay on the CPU: one appended token costs less there
    /// than a GPU round trip. Refused for a reranker not on the CPU backend.
    #[cfg(feature = "wgsl-engine")]
    pub fn with_wgsl_engine(
        mut self,
        gpu: encore_shaders::plain_wgpu::GpuDevice,
    ) -> Result<Self, RerankError> {
        let host = self.host.as_ref().ok_or(RerankError::NotOnCpu)?;
        self.wgsl = Some(engines::wgsl::WgslEngine::new(
            gpu,
            host.model(),
            MAX_CANDIDATES,
        )?);
        Ok(self)
    }

    /// The GPU adapter stateless reranks run on, when [`Reranker::with_wgsl_engine`] set one.
    pub fn wgsl_adapter(&self) -> Option<&str> {
        #[cfg(feature = "wgsl-engine")]
        return self.wgsl.as_ref().map(|w| w.adapter());
        #[cfg(not(feature = "wgsl-engine"))]
        None
    }

    /// The serving description this reranker's CPU engine executes (on the CPU backend).
    pub fn serving_model(&self) -> Option<&ServingModel> {
        self.host.as_ref().map(CpuEngine::model)
    }

    /// The same reranker with a serving window that moves `step` events at a time once a
    /// history outgrows it (clamped to `1..=max_len - 1`; see
    /// [`EventTokenizer::window_start`]). Stateless reranks and sessions use the same window,
    /// so they still agree; a session then re-encodes its window once every `step` appended
    /// events instead of at every one. Sessions of the old reranker start over.
    pub fn with_window_step(mut self, step: usize) -> Self {
        self.tokenizer = self.tokenizer.with_window_step(step);
        self.id = NEXT_RERANKER_ID.fetch_add(1, Ordering::Relaxed);
        self
    }

    /// How many events the serving window moves at a time (see [`Reranker::with_window_step`]).
    pub fn window_step(&self) -> usize {
        self.tokenizer.window_step
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the weight file stored its matrices (f32 for an in-memory model).
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// The model's shape.
    pub fn config(&self) -> &FoundationModelConfig {
        &self.config
    }

    /// The item ids the model knows, in row order.
    pub fn items(&self) -> &ItemVocabulary {
        &self.items
    }

    /// Validates inputs and builds the model's input tokens and the candidates' dense indices.
    fn prepare(
        &self,
        history: &[Event],
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<(TokenSequence, Vec<i64>), RerankError> {
        request::validate(history, candidates, request)?;
        let rows = self.candidate_rows(candidates)?;
        Ok((self.serving_sequence(history, request)?, rows))
    }

    /// Dense row indices (from [`Reranker::candidate_rows`]) on the device.
    fn upload_rows(&self, rows: Vec<i64>) -> Tensor<1, Int> {
        let n = rows.len();
        Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &self.device)
    }

    /// The candidates' dense row indices; refuses unknown and duplicate ids.
    fn candidate_rows(&self, candidates: &[u32]) -> Result<Vec<i64>, RerankError> {
        let mut dense = Vec::with_capacity(candidates.len());
        // One bit per item row: whether a candidate before has it.
        let mut seen = vec![0u64; self.items.len().div_ceil(64)];
        for (position, &item) in candidates.iter().enumerate() {
            let idx = self
                .items
                .index_of(item)
                .ok_or(RerankError::UnknownCandidate { position, item })?;
            let (word, bit) = (idx / 64, 1u64 << (idx % 64));
            if seen[word] & bit != 0 {
                let first = candidates.iter().position(|&c| c == item).unwrap_or(0);
                return Err(RerankError::DuplicateCandidate {
                    item,
                    first,
                    second: position,
                });
            }
            seen[word] |= bit;
            dense.push(idx as i64);
        }
        Ok(dense)
    }

    /// The member's tokens for this request (history must be validated and non-empty).
    fn serving_sequence(
        &self,
        history: &[Event],
        request: &RerankRequest,
    ) -> Result<TokenSequence, RerankError> {
        request.validate()?;
        self.tokenizer
            .serving_sequence(&self.items, history, &request.context(history))
            .map_err(|e| RerankError::UnknownHistoryItem {
                position: e.position,
                item: e.item,
            })
    }

    /// Scores of the candidates (dense rows, then the `extra` item vectors `[m, d]` of pushed
    /// titles the bundle does not contain): the dot product of the user representation with
    /// each candidate's item vector. With a WGSL engine attached the host embeds the tokens
    /// and the GPU runs the rest (calls without extra vectors; those with them run on the CPU
    /// engine); otherwise on the CPU the whole rerank runs in host memory
    /// ([`CpuEngine::encode`]), elsewhere on the device through burn.
    fn scores(
        &self,
        seq: TokenSequence,
        rows: Vec<i64>,
        extra: &[f32],
        prompt: Option<usize>,
    ) -> Result<Scores, RerankError> {
        #[cfg(feature = "wgsl-engine")]
        if let (Some(gpu), Some(host), true) = (self.serving_wgsl(), &self.host, extra.is_empty()) {
            // An input prompt's tokens are rows like any other; a deep prompt's keys and
            // values are the request token's extra keys in every layer.
            let fields = seq.field_rows();
            let model = host.model();
            let embedded = prompt
                .and_then(|p| model.embed_with_prompt(&fields, &[], p))
                .unwrap_or_else(|| model.embed_at(&fields, 0));
            let deep = prompt
                .map(|p| &model.prompts[p])
                .filter(|p| p.deep_keys() > 0)
                .map(|p| engines::wgsl::DeepPrompt {
                    length: p.deep_keys(),
                    keys: &p.keys,
                    values: &p.values,
                });
            let rows: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            return Ok(Scores::Pending(gpu.submit(&embedded, &rows, deep)?));
        }
        if let Some(host) = &self.host {
            let user = host.encode_prompted(&seq.field_rows(), extra, prompt);
            return Ok(Scores::Host(host_scores(host, &user, &rows, extra)));
        }
        burn_forward_in_this_build();
        let user = self.device_user(&seq, None, prompt);
        Ok(self.score_user(self.model().user_representation(user), rows, extra))
    }

    /// Scores of the candidates (dense rows, then the `extra` vectors `[m, d]`) against one
    /// user representation `[1, d]` on the device (the CPU backend scores in host memory
    /// instead, see [`host_scores`]).
    fn score_user(&self, user: Tensor<2>, rows: Vec<i64>, extra: &[f32]) -> Scores {
        burn_forward_in_this_build();
        let d = user.dims()[1];
        let mut parts = Vec::with_capacity(2);
        if !rows.is_empty() {
            parts.push(
                self.model()
                    .candidate_scores(user.clone().reshape([d]), self.upload_rows(rows)),
            );
        }
        if !extra.is_empty() {
            let m = extra.len() / d;
            let vectors =
                Tensor::<2>::from_data(TensorData::new(extra.to_vec(), [m, d]), &self.device);
            parts.push(user.matmul(vectors.transpose()).reshape([m]));
        }
        Scores::Device(Tensor::cat(parts, 0))
    }

    /// Reranks `candidates` for a member with this `history` (oldest first). Synchronous:
    /// natively on any device; in a browser use [`Reranker::rerank_async`].
    pub fn rerank(
        &self,
        history: &[Event],
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (seq, rows) = self.prepare(history, candidates, request)?;
        let prompt = self.prompt_of(request)?;
        let retry = self.gpu_retry(&seq, &rows);
        match ranked(candidates, self.scores(seq, rows, &[], prompt)?) {
            Err(e) if retry.is_some() => {
                let (seq, rows) = self.leave_gpu(e, retry)?;
                ranked(candidates, self.scores(seq, rows, &[], prompt)?)
            }
            result => result,
        }
    }

    /// Same as [`Reranker::rerank`], reading the scores back asynchronously (required on WebGPU).
    pub async fn rerank_async(
        &self,
        history: &[Event],
        candidates: &[u32],
        request: &RerankRequest,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (seq, rows) = self.prepare(history, candidates, request)?;
        let prompt = self.prompt_of(request)?;
        let retry = self.gpu_retry(&seq, &rows);
        match ranked_async(candidates, self.scores(seq, rows, &[], prompt)?).await {
            Err(e) if retry.is_some() => {
                let (seq, rows) = self.leave_gpu(e, retry)?;
                ranked_async(candidates, self.scores(seq, rows, &[], prompt)?).await
            }
            result => result,
        }
    }

    /// The WGSL engine, while it serves.
    #[cfg(feature = "wgsl-engine")]
    fn serving_wgsl(&self) -> Option<&engines::wgsl::WgslEngine> {
        self.wgsl.as_ref().filter(|w| w.unavailable().is_none())
    }

    /// Why stateless reranks no longer run on the GPU the WGSL engine was attached to (its
    /// device was lost, or a call failed there; they run on the CPU engine since), `None` while
    /// they do or when no engine was attached.
    pub fn gpu_unavailable(&self) -> Option<String> {
        #[cfg(feature = "wgsl-engine")]
        return self.wgsl.as_ref().and_then(|w| w.unavailable());
        #[cfg(not(feature = "wgsl-engine"))]
        None
    }

    /// A copy of a call's tokens and rows, kept when the call goes to the WGSL engine so that
    /// it can be run again on the CPU engine if the GPU fails.
    #[allow(clippy::ptr_arg)]
    fn gpu_retry(&self, seq: &TokenSequence, rows: &Vec<i64>) -> Option<(TokenSequence, Vec<i64>)> {
        #[cfg(feature = "wgsl-engine")]
        if self.serving_wgsl().is_some() && self.host.is_some() {
            return Some((seq.clone(), rows.clone()));
        }
        let _ = (seq, rows);
        None
    }

    /// After a call failed with `error` on the WGSL engine: a failure of the engine stops it
    /// (later calls run on the CPU engine) and gives back the call's inputs to run again there;
    /// any other error is returned.
    fn leave_gpu(
        &self,
        error: RerankError,
        retry: Option<(TokenSequence, Vec<i64>)>,
    ) -> Result<(TokenSequence, Vec<i64>), RerankError> {
        match (error, retry) {
            #[cfg(feature = "wgsl-engine")]
            (RerankError::WgslEngine(e), Some(inputs)) => {
                if let Some(engine) = &self.wgsl {
                    engine.stop(format!("a rerank failed on the GPU ({e})"));
                }
                Ok(inputs)
            }
            (error, _) => Err(error),
        }
    }

    /// The user representations `[members, d_model]` of several members at once on the device;
    /// each entry is (history, request).
    fn user_batch(&self, members: &[(&[Event], RerankRequest)]) -> Result<Tensor<2>, RerankError> {
        let mut seqs = Vec::with_capacity(members.len());
        let mut prompts = Vec::with_capacity(members.len());
        for (history, request) in members {
            // A member without history only under a prompt set, with the request's time.
            request.check_history(history)?;
            request::validate_events(history)?;
            seqs.push(self.serving_sequence(history, request)?);
            prompts.push(self.prompt_of(request)?);
        }
        let batch = TokenBatch::new(&seqs, &self.device);
        if prompts.iter().all(Option::is_none) {
            return Ok(self.model().user_representation(self.model().forward(
                &batch,
                self.tables(),
                None,
                true,
            )));
        }
        // Members under a prompt: training's batched form of the prompted forward, one
        // prompt set at a time (its request position is each sequence's last token).
        let d = self.config.d_model;
        let requests: Vec<Vec<usize>> = seqs.iter().map(|s| vec![s.len() - 1]).collect();
        let mut users = Tensor::<2>::zeros([seqs.len(), d], &self.device);
        let mut distinct = prompts.clone();
        distinct.sort();
        distinct.dedup();
        for p in distinct {
            let prompt = p.map(|i| &self.prompts[i].prompt);
            let all = self
                .model()
                .forward_prompted_batch(&batch, self.tables(), &requests, prompt)
                .reshape([seqs.len(), d]);
            let rows: Vec<i64> = (0..seqs.len())
                .filter(|&r| prompts[r] == p)
                .map(|r| r as i64)
                .collect();
            let n = rows.len();
            let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &self.device);
            users = users.select_assign(
                0,
                index.clone(),
                all.select(0, index),
                burn::tensor::IndexingUpdateOp::Add,
            );
        }
        Ok(users)
    }

    /// The user representation (the vector candidates are scored against) of several members
    /// at once: `[members][d_model]`; each entry is (history, request).
    pub fn user_representations(
        &self,
        members: &[(&[Event], RerankRequest)],
    ) -> Result<Vec<Vec<f32>>, RerankError> {
        let flat = read_scores(self.user_batch(members)?.into_data())?;
        Ok(flat
            .chunks(self.config.d_model)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Every catalog item's vector, row-major `[n_items · d_model]` in the order of
    /// [`Reranker::items`].
    pub fn item_vectors(&self) -> Result<Vec<f32>, RerankError> {
        read_scores(self.model().item_vectors().into_data())
    }

    /// Scores of every catalog item (row order) for several members at once: `[members][n_items]`.
    /// Used for evaluation; each entry is (history, request).
    pub fn score_catalog(
        &self,
        members: &[(&[Event], RerankRequest)],
    ) -> Result<Vec<Vec<f32>>, RerankError> {
        let user = self.user_batch(members)?;
        let scores = user.matmul(self.model().item_vectors().transpose());
        let flat = finite(read_scores(scores.into_data())?)?;
        Ok(flat
            .chunks(self.config.n_items)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// Candidate scores `[n_candidates]`: on the device, or already in host memory.
enum Scores {
    /// A device tensor, still to be read back.
    Device(Tensor<1>),
    /// Computed in host memory (the CPU session step).
    Host(Vec<f32>),
    /// On their way back from the WGSL engine.
    #[cfg(feature = "wgsl-engine")]
    Pending(encore_shaders::plain_wgpu::PendingScores),
}

/// Scores from the CPU engine: the candidates' rows, then the `extra` vectors `[m, d]`.
fn host_scores(host: &CpuEngine, user: &[f32], rows: &[i64], extra: &[f32]) -> Vec<f32> {
    let mut scores = host.scores(user, rows);
    if !extra.is_empty() {
        scores.extend(
            extra
                .chunks(user.len())
                .map(|v| v.iter().zip(user).map(|(a, b)| a * b).sum::<f32>()),
        );
    }
    scores
}

/// The candidates ordered by `scores`, read back synchronously.
fn ranked(candidates: &[u32], scores: Scores) -> Result<Vec<ScoredItem>, RerankError> {
    Ok(order(candidates, &finite(read(scores)?)?))
}

/// Scores read back synchronously.
fn read(scores: Scores) -> Result<Vec<f32>, RerankError> {
    Ok(match scores {
        Scores::Device(t) => read_scores(t.into_data())?,
        Scores::Host(v) => v,
        #[cfg(all(feature = "wgsl-engine", not(target_arch = "wasm32")))]
        Scores::Pending(p) => p.wait().map_err(engines::wgsl::WgslEngineError::from)?,
        #[cfg(all(feature = "wgsl-engine", target_arch = "wasm32"))]
        Scores::Pending(_) => return Err(RerankError::SyncReadOnWebGpu),
    })
}

/// [`ranked`], reading device scores back asynchronously (required on WebGPU).
async fn ranked_async(candidates: &[u32], scores: Scores) -> Result<Vec<ScoredItem>, RerankError> {
    Ok(order(candidates, &finite(read_async(scores).await?)?))
}

/// Scores read back asynchronously (required on WebGPU).
async fn read_async(scores: Scores) -> Result<Vec<f32>, RerankError> {
    Ok(match scores {
        Scores::Device(t) => read_scores(
            t.into_data_async()
                .await
                .map_err(|e| RerankError::ReadBack(format!("{e:?}")))?,
        )?,
        Scores::Host(v) => v,
        #[cfg(feature = "wgsl-engine")]
        Scores::Pending(p) => p
            .read()
            .await
            .map_err(engines::wgsl::WgslEngineError::from)?,
    })
}

fn read_scores(data: TensorData) -> Result<Vec<f32>, RerankError> {
    data.try_into_vec::<f32>()
        .map_err(|e| RerankError::ReadBack(format!("{e:?}")))
}

/// The scores, unless one is not finite.
fn finite(scores: Vec<f32>) -> Result<Vec<f32>, RerankError> {
    if let Some(candidate) = scores.iter().position(|s| !s.is_finite()) {
        return Err(RerankError::NonFiniteScore { candidate });
    }
    Ok(scores)
}

/// Candidates with their scores, best first; equal scores keep the input order.
fn order(candidates: &[u32], scores: &[f32]) -> Vec<ScoredItem> {
    // One integer key per candidate: the score's bits mapped so that integer order is float
    // order (descending), then the input position. Sorting plain integers is several times
    // faster than comparing floats through a closure, and gives the same order for finite
    // scores.
    let mut keys: Vec<u64> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| (u64::from(!ascending_bits(*s)) << 32) | i as u64)
        .collect();
    keys.sort_unstable();
    keys.into_iter()
        .map(|k| {
            let i = (k & 0xffff_ffff) as usize;
            ScoredItem {
                item: candidates[i],
                score: scores[i],
            }
        })
        .collect()
}

/// `f32` bits mapped to a `u32` whose integer order is the float's total order.
fn ascending_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn order_is_a_stable_descending_sort() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Ties, both zeros, negatives, large and tiny magnitudes.
        let pool = [
            0.0f32,
            -0.0,
            1.5,
            -1.5,
            1e-30,
            -1e30,
            3.25,
            3.25,
            f32::MAX,
            f32::MIN,
        ];
        for n in [0, 1, 2, 17, 500] {
            let scores: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.random_range(0..3) == 0 {
                        pool[rng.random_range(0..pool.len())]
                    } else {
                        rng.random_range(-4.0f32..4.0)
                    }
                })
                .collect();
            let candidates: Vec<u32> = (0..n as u32).map(|i| 1000 + i).collect();
            let mut reference: Vec<usize> = (0..n).collect();
            reference.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            let ours: Vec<u32> = order(&candidates, &scores).iter().map(|s| s.item).collect();
            let expected: Vec<u32> = reference.iter().map(|&i| candidates[i]).collect();
            assert_eq!(ours, expected, "n = {n}");
        }
        // All scores equal: the input order stays.
        let same: Vec<u32> = order(&[7, 3, 9], &[2.0; 3])
            .iter()
            .map(|s| s.item)
            .collect();
        assert_eq!(same, [7, 3, 9]);
    }
}
