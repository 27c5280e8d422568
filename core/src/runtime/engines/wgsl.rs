//! The WGSL engine: the serving description ([`ServingModel`]) executed by Encore's WGSL
//! kernels on a plain wgpu device (`encore_shaders::plain_wgpu`), without burn's backend: the
//! browser package's WebGPU path.
//!
//! Everything is bound at construction, as in wgpu's `repeated_compute` example: the weights
//! are uploaded once, the activations live in buffers sized for a full window, and each step
//! of [`LayerStep::ORDER`] of every layer gets its bind group and its slot in one parameter
//! buffer. A rerank writes the embedded tokens (the host embeds: a few table rows per token),
//! the candidate rows and the parameter blocks, records every dispatch in that order, and
//! submits once; one read brings the scores back.
//!
//! Held to the CPU engine within 1e-4 by the tests crate (`parity`, `wgsl_engine`), natively
//! on any wgpu adapter and in the browser by the harness.

use std::num::NonZeroU64;

use encore_shaders::plain_wgpu::{
    GpuDevice, GpuError, KernelParams, MAX_ROW_ATTENTION_HEAD_DIM, PendingScores, Pipelines,
};
use wgpu::util::DeviceExt;

use crate::serving::{LayerStep, ServingModel};

/// Bytes between the parameter blocks of two dispatches (WebGPU's minimum uniform and storage
/// offset alignment).
const SLOT: u64 = 256;

/// Why the WGSL engine cannot run a model or a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WgslEngineError {
    /// The GPU could not be opened or read.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// A shape the kernels do not take.
    #[error("{what} is {got}; the WGSL engine takes {limit}")]
    Shape {
        /// What is out of range.
        what: &'static str,
        /// Its value.
        got: usize,
        /// The accepted range, in words.
        limit: String,
    },
}

/// One step of one layer, bound.
#[derive(Debug)]
struct BoundStep {
    step: LayerStep,
    layer: usize,
    group: wgpu::BindGroup,
}

/// The serving forward of one model on one wgpu device.
#[derive(Debug)]
pub struct WgslEngine {
    gpu: GpuDevice,
    pipelines: Pipelines,
    d_model: usize,
    n_heads: usize,
    max_len: usize,
    n_items: usize,
    epsilon: f32,
    /// Feed-forward width of each layer.
    d_ff: Vec<usize>,
    max_candidates: usize,
    /// The residual stream `[max_len, d]` (the embedded tokens are written here).
    x: wgpu::Buffer,
    /// The last token's state after the embedding and after each layer `[layers + 1, d]`.
    lasts: wgpu::Buffer,
    /// Per layer, a deep prompt's keys and values `[MAX_PROMPT_LENGTH, 2d]` (k | v per row),
    /// seen by the request token.
    prefixes: Vec<wgpu::Buffer>,
    /// Candidate rows `[max_candidates]` and their scores.
    rows: wgpu::Buffer,
    scores: wgpu::Buffer,
    /// One parameter block of [`SLOT`] bytes per dispatch.
    params: wgpu::Buffer,
    /// Every layer's steps in [`LayerStep::ORDER`], first layer first.
    steps: Vec<BoundStep>,
    user: wgpu::BindGroup,
    score: wgpu::BindGroup,
    /// Why the engine stopped serving (a call failed on the device), `None` while it serves.
    failure: std::sync::Mutex<Option<String>>,
}

impl WgslEngine {
    /// Uploads `model` to `gpu` and binds every dispatch of a forward, for up to
    /// `max_candidates` candidates per call.
    pub fn new(
        gpu: GpuDevice,
        model: &ServingModel,
        max_candidates: usize,
    ) -> Result<Self, WgslEngineError> {
        let d = model.d_model;
        if model.head_dim() > MAX_ROW_ATTENTION_HEAD_DIM {
            return Err(WgslEngineError::Shape {
                what: "the head width",
                got: model.head_dim(),
                limit: format!("at most {MAX_ROW_ATTENTION_HEAD_DIM}"),
            });
        }
        // Natively a buffer or pipeline the device refuses is a typed error, not a panic (in a
        // browser such errors reach the console; the shapes were checked above).
        #[cfg(not(target_arch = "wasm32"))]
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let device = &gpu.device;
        let pipelines = Pipelines::new(device);
        let storage = |label: &str, values: &[f32]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(values),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let scratch = |label: &str, bytes: usize, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(4) as u64,
                usage: wgpu::BufferUsages::STORAGE | usage,
                mapped_at_creation: false,
            })
        };
        // Room for a window and an input prompt's tokens.
        let n = model.max_len + crate::model::MAX_PROMPT_LENGTH;
        let n_layers = model.layers.len();
        let max_ff = model.layers.iter().map(|l| l.d_ff()).max().unwrap_or(0);
        let copy = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let x = scratch("x", 4 * n * d, copy);
        let normed = scratch("normed", 4 * n * d, copy);
        let qkv = scratch("qkv", 4 * n * 3 * d, copy);
        let ctx = scratch("ctx", 4 * n * d, copy);
        let hidden = scratch("hidden", 4 * n * max_ff, copy);
        let lasts = scratch("lasts", 4 * (n_layers + 1) * d, copy);
        let user_vec = scratch("user", 4 * d, copy);
        let rows = scratch("rows", 4 * max_candidates, copy);
        let scores = scratch("scores", 4 * max_candidates, copy);
        let slots = LayerStep::ORDER.len() * n_layers + 2;
        let params = scratch(
            "params",
            SLOT as usize * slots,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let prefixes: Vec<wgpu::Buffer> = (0..n_layers)
            .map(|l| {
                let bytes = 4 * crate::model::MAX_PROMPT_LENGTH * 2 * d;
                scratch(&format!("prefix {l}"), bytes, wgpu::BufferUsages::COPY_DST)
            })
            .collect();
        let items = storage("items", model.item_vectors());
        let mix = storage("mix", &model.mix);
        let bind = |pipeline: &wgpu::ComputePipeline, slot: usize, buffers: &[&wgpu::Buffer]| {
            let layout = pipeline.get_bind_group_layout(0);
            let params = wgpu::BufferBinding {
                buffer: &params,
                offset: slot as u64 * SLOT,
                size: NonZeroU64::new(16),
            };
            let entries: Vec<wgpu::BindGroupEntry> = buffers
                .iter()
                .map(|b| b.as_entire_binding())
                .chain([wgpu::BindingResource::Buffer(params)])
                .enumerate()
                .map(|(i, resource)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource,
                })
                .collect();
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &entries,
            })
        };
        let mut steps = Vec::with_capacity(slots - 2);
        for (l, layer) in model.layers.iter().enumerate() {
            for step in LayerStep::ORDER {
                let slot = steps.len();
                let norm = |name: &str, n: &crate::serving::NormWeights| {
                    vec![
                        storage(&format!("{name}.gamma"), &n.gamma),
                        storage(&format!("{name}.beta"), &n.beta),
                    ]
                };
                let linear = |name: &str, l: &crate::serving::LinearWeights| {
                    vec![
                        storage(&format!("{name}.weight"), &l.weight),
                        storage(&format!("{name}.bias"), &l.bias),
                    ]
                };
                let weights = match step {
                    LayerStep::NormAttn => norm("norm_attn", &layer.norm_attn),
                    LayerStep::QueryKeyValue => linear("qkv", &layer.query_key_value),
                    LayerStep::Attention => Vec::new(),
                    LayerStep::Output => linear("output", &layer.output),
                    LayerStep::NormFf => norm("norm_ff", &layer.norm_ff),
                    LayerStep::FfIn => linear("ff_in", &layer.ff_in),
                    LayerStep::FfOut => linear("ff_out", &layer.ff_out),
                };
                // Each step reads its input, its weights, and writes its output.
                let (input, output) = match step {
                    LayerStep::NormAttn | LayerStep::NormFf => (&x, &normed),
                    LayerStep::QueryKeyValue => (&normed, &qkv),
                    LayerStep::Attention => (&qkv, &ctx),
                    LayerStep::Output => (&ctx, &x),
                    LayerStep::FfIn => (&normed, &hidden),
                    LayerStep::FfOut => (&hidden, &x),
                };
                // Attention reads the layer's deep-prompt keys and values beside its input.
                let extra: &[wgpu::Buffer] = match step {
                    LayerStep::Attention => std::slice::from_ref(&prefixes[l]),
                    _ => &weights,
                };
                let bound: Vec<&wgpu::Buffer> = std::iter::once(input)
                    .chain(extra)
                    .chain([output])
                    .collect();
                steps.push(BoundStep {
                    step,
                    layer: l,
                    group: bind(pipeline_of(&pipelines, step), slot, &bound),
                });
            }
        }
        let ng = storage("norm.gamma", &model.norm.gamma);
        let nb = storage("norm.beta", &model.norm.beta);
        let user = bind(
            &pipelines.user,
            slots - 2,
            &[&lasts, &mix, &ng, &nb, &user_vec],
        );
        let score = bind(
            &pipelines.scores,
            slots - 1,
            &[&items, &user_vec, &rows, &scores],
        );
        #[cfg(not(target_arch = "wasm32"))]
        encore_shaders::plain_wgpu::scope_result(scope)?;
        Ok(Self {
            failure: std::sync::Mutex::new(None),
            pipelines,
            d_model: d,
            n_heads: model.n_heads,
            max_len: n,
            n_items: model.n_items,
            epsilon: model.epsilon,
            d_ff: model.layers.iter().map(|l| l.d_ff()).collect(),
            max_candidates,
            x,
            lasts,
            prefixes,
            rows,
            scores,
            params,
            steps,
            user,
            score,
            gpu,
        })
    }

    /// The adapter this runs on.
    pub fn adapter(&self) -> &str {
        &self.gpu.adapter
    }

    /// Why this engine no longer serves: its device was lost, or a call failed on it (see
    /// [`WgslEngine::stop`]); `None` while it serves.
    pub fn unavailable(&self) -> Option<String> {
        if let Some(why) = self.failure.lock().ok().and_then(|f| f.clone()) {
            return Some(why);
        }
        self.gpu
            .lost_reason()
            .map(|why| format!("the GPU device was lost ({why})"))
    }

    /// Stops serving for good, recording `why` (the first reason is kept).
    pub fn stop(&self, why: String) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(why);
        }
    }

    /// The parameter block of `step` of `layer` for `m` tokens, the last of which sees
    /// `prefix` deep-prompt keys and values.
    fn step_params(&self, step: LayerStep, layer: usize, m: u32, prefix: u32) -> KernelParams {
        let d = self.d_model as u32;
        let ff = self.d_ff[layer] as u32;
        let linear = |inner, cols, gelu, accumulate| KernelParams::Linear {
            rows: m,
            inner,
            cols,
            gelu,
            accumulate,
        };
        match step {
            LayerStep::NormAttn | LayerStep::NormFf => KernelParams::LayerNorm {
                rows: m,
                width: d,
                epsilon: self.epsilon,
            },
            LayerStep::QueryKeyValue => linear(d, 3 * d, false, false),
            LayerStep::Attention => KernelParams::Attention {
                rows: m,
                d,
                n_heads: self.n_heads as u32,
                prefix,
            },
            // The residual connections: accumulate into the stream.
            LayerStep::Output => linear(d, d, false, true),
            LayerStep::FfIn => linear(d, ff, true, false),
            LayerStep::FfOut => linear(ff, d, false, true),
        }
    }

    /// Starts a forward over `embedded` (`[m, d_model]`: the embedded tokens, oldest first,
    /// positions included) and the scoring of the dense item `rows`; read the scores with
    /// [`PendingScores::read`] (or [`PendingScores::wait`] natively). With `deep`, a deep
    /// prompt's keys and values `[n_layers, P, d]` each, which the last token (the request)
    /// attends to in every layer besides the window's.
    pub fn submit(
        &self,
        embedded: &[f32],
        rows: &[u32],
        deep: Option<DeepPrompt<'_>>,
    ) -> Result<PendingScores, WgslEngineError> {
        let d = self.d_model;
        let m = embedded.len() / d;
        let prefix = deep.map_or(0, |p| p.length);
        if let Some(p) = deep {
            let values = self.prefixes.len() * prefix * d;
            if prefix > crate::model::MAX_PROMPT_LENGTH
                || p.keys.len() != values
                || p.values.len() != values
            {
                return Err(WgslEngineError::Shape {
                    what: "the deep prompt (keys)",
                    got: p.keys.len(),
                    limit: format!(
                        "{} layers × at most {} vectors of width {d}, as many values",
                        self.prefixes.len(),
                        crate::model::MAX_PROMPT_LENGTH
                    ),
                });
            }
        }
        if m == 0 || m > self.max_len || embedded.len() % d != 0 {
            return Err(WgslEngineError::Shape {
                what: "the embedded window (values)",
                got: embedded.len(),
                limit: format!("1 to {} tokens of width {d}", self.max_len),
            });
        }
        if rows.len() > self.max_candidates {
            return Err(WgslEngineError::Shape {
                what: "the candidate count",
                got: rows.len(),
                limit: format!("at most {}", self.max_candidates),
            });
        }
        if let Some(&r) = rows.iter().find(|&&r| r as usize >= self.n_items) {
            return Err(WgslEngineError::Shape {
                what: "a candidate row",
                got: r as usize,
                limit: format!("below {}", self.n_items),
            });
        }
        if rows.is_empty() {
            return Ok(PendingScores::ready(Vec::new()));
        }
        let mut blocks: Vec<KernelParams> = self
            .steps
            .iter()
            .map(|s| self.step_params(s.step, s.layer, m as u32, prefix as u32))
            .collect();
        let user = KernelParams::User {
            states: self.d_ff.len() as u32 + 1,
            d: d as u32,
            epsilon: self.epsilon,
        };
        let score = KernelParams::Scores {
            count: rows.len() as u32,
            d: d as u32,
        };
        blocks.extend([user, score]);
        let mut param_bytes = vec![0u8; blocks.len() * SLOT as usize];
        for (block, slot) in blocks
            .iter()
            .zip(param_bytes.chunks_exact_mut(SLOT as usize))
        {
            slot[..16].copy_from_slice(bytemuck::cast_slice(&block.block()));
        }
        // Whatever the GPU refuses from here on comes back as a typed error with the scores.
        let scope = self
            .gpu
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let queue = &self.gpu.queue;
        queue.write_buffer(&self.x, 0, bytemuck::cast_slice(embedded));
        queue.write_buffer(&self.rows, 0, bytemuck::cast_slice(rows));
        queue.write_buffer(&self.params, 0, &param_bytes);
        if let Some(p) = deep {
            // Row k of a layer's prefix: its k-th key, then its k-th value.
            for (l, buffer) in self.prefixes.iter().enumerate() {
                let layer = l * prefix * d..(l + 1) * prefix * d;
                let (keys, values) = (&p.keys[layer.clone()], &p.values[layer]);
                let rows: Vec<f32> = keys
                    .chunks_exact(d)
                    .zip(values.chunks_exact(d))
                    .flat_map(|(k, v)| k.iter().chain(v).copied())
                    .collect();
                queue.write_buffer(buffer, 0, bytemuck::cast_slice(&rows));
            }
        }

        let mut encoder = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let row_bytes = 4 * d as u64;
        let last = (m as u64 - 1) * row_bytes;
        // The last token's state after the embedding, then after each layer.
        encoder.copy_buffer_to_buffer(&self.x, last, &self.lasts, 0, row_bytes);
        let p = &self.pipelines;
        for (layer, steps) in self.steps.chunks(LayerStep::ORDER.len()).enumerate() {
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for (bound, block) in steps.iter().zip(&blocks[layer * steps.len()..]) {
                    pass.set_pipeline(pipeline_of(p, bound.step));
                    pass.set_bind_group(0, &bound.group, &[]);
                    pass.dispatch_workgroups(block.workgroups(), 1, 1);
                }
            }
            let to = (layer as u64 + 1) * row_bytes;
            encoder.copy_buffer_to_buffer(&self.x, last, &self.lasts, to, row_bytes);
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&p.user);
            pass.set_bind_group(0, &self.user, &[]);
            pass.dispatch_workgroups(user.workgroups(), 1, 1);
            pass.set_pipeline(&p.scores);
            pass.set_bind_group(0, &self.score, &[]);
            pass.dispatch_workgroups(score.workgroups(), 1, 1);
        }
        let bytes = 4 * rows.len() as u64;
        // A read-back buffer per call: a second call may start while the first is mapped.
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scores read-back"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(&self.scores, 0, &staging, 0, bytes);
        queue.submit([encoder.finish()]);
        Ok(PendingScores::map(staging, &self.gpu.device, scope))
    }
}

/// A deep prompt as the WGSL engine takes it: `length` vectors per layer, its keys and values
/// `[n_layers, length, d]` each (see [`crate::serving::ServingPrompt`]).
#[derive(Debug, Clone, Copy)]
pub struct DeepPrompt<'a> {
    /// Vectors per layer.
    pub length: usize,
    /// Every layer's keys.
    pub keys: &'a [f32],
    /// Every layer's values.
    pub values: &'a [f32],
}

/// The kernel that runs `step`.
fn pipeline_of(pipelines: &Pipelines, step: LayerStep) -> &wgpu::ComputePipeline {
    match step {
        LayerStep::NormAttn | LayerStep::NormFf => &pipelines.layer_norm,
        LayerStep::Attention => &pipelines.attention,
        LayerStep::QueryKeyValue | LayerStep::Output | LayerStep::FfIn | LayerStep::FfOut => {
            &pipelines.linear
        }
    }
}
