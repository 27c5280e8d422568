//! The serving transformer run by Encore's WGSL kernels alone, on a plain wgpu device.
//!
//! burn's wgpu backend brings CubeCL (its compiler, its kernel library and the IR behind them):
//! about 10 MB of the 15 MB browser module, 2 MB of its gzipped download. For serving, one
//! fixed forward suffices: layer norm, linear (with GELU or a residual add), fused causal
//! attention over the heads side by side, the layer mix with the final norm, and the candidate
//! gather + dot. These five kernels on wgpu directly give the browser package WebGPU for a few
//! hundred kilobytes. The host computes the token embedding (a few table rows per token) and
//! uploads it; one submission then runs every layer and scores the candidates, and one read
//! brings the scores back.
//!
//! Held to the CPU forward within 1e-4 by the tests crate (`wgsl_transformer`), natively on
//! any wgpu adapter and in the browser by the harness.

mod device;
mod pipelines;
mod readback;
mod weights;

pub use device::GpuDevice;
pub use readback::PendingScores;
pub use weights::{LayerWeights, LinearWeights, NormWeights, TransformerWeights};

use pipelines::Pipelines;
use readback::Pending;

use std::num::NonZeroU64;

use wgpu::util::DeviceExt;

/// Invocations per workgroup of the row kernels.
const WORKGROUP: u32 = 64;
/// Bytes between the parameter blocks of two dispatches (WebGPU's minimum uniform and storage
/// offset alignment).
const SLOT: u64 = 256;
/// Dispatches per layer: norm, q|k|v, attention, output (+ residual), norm, ff in (GELU),
/// ff out (+ residual).
const STEPS_PER_LAYER: usize = 7;
/// Largest head width the attention kernel holds in registers (`MAX_HEAD_DIM` in its WGSL).
pub const MAX_TRANSFORMER_HEAD_DIM: usize = 128;
/// Flags of `linear.wgsl`.
const GELU: u32 = 1;
const ACCUMULATE: u32 = 2;

/// Why the WGSL transformer cannot run.
#[derive(Debug, thiserror::Error)]
pub enum TransformerError {
    /// No GPU adapter.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused a device.
    #[error("the GPU device could not be opened: {0}")]
    NoDevice(String),
    /// A shape the kernels do not take.
    #[error("{what} is {got}; the WGSL transformer takes {limit}")]
    Shape {
        /// What is out of range.
        what: &'static str,
        /// Its value.
        got: usize,
        /// The accepted range, in words.
        limit: String,
    },
    /// The weights disagree with the shape they state.
    #[error("transformer weights: {0}")]
    Weights(String),
    /// The scores could not be read back.
    #[error("reading the scores back failed: {0}")]
    Readback(String),
}

/// One layer's bound dispatches, in order.
#[derive(Debug)]
struct LayerDispatches {
    norm_attn: wgpu::BindGroup,
    query_key_value: wgpu::BindGroup,
    attention: wgpu::BindGroup,
    output: wgpu::BindGroup,
    norm_ff: wgpu::BindGroup,
    ff_in: wgpu::BindGroup,
    ff_out: wgpu::BindGroup,
    /// Feed-forward width.
    ff: usize,
}

/// The serving forward of a model on one wgpu device: weights uploaded once, activations in
/// buffers sized for a full window, every dispatch bound at construction. A rerank writes the
/// embedded tokens, the candidate rows and the shapes, and submits once.
#[derive(Debug)]
pub struct WgslTransformer {
    gpu: GpuDevice,
    pipelines: Pipelines,
    d_model: usize,
    heads: usize,
    max_len: usize,
    n_items: usize,
    max_candidates: usize,
    epsilon: f32,
    /// The residual stream `[max_len, d]` (the embedded tokens are written here).
    x: wgpu::Buffer,
    /// The last token's state after the embedding and after each layer `[layers + 1, d]`.
    lasts: wgpu::Buffer,
    /// Candidate rows `[max_candidates]` and their scores.
    rows: wgpu::Buffer,
    scores: wgpu::Buffer,
    /// One parameter block of [`SLOT`] bytes per dispatch.
    params: wgpu::Buffer,
    layers: Vec<LayerDispatches>,
    user: wgpu::BindGroup,
    score: wgpu::BindGroup,
}

impl WgslTransformer {
    /// Uploads `weights` to `gpu` and binds every dispatch of a forward, for up to
    /// `max_candidates` candidates per call.
    pub fn new(
        gpu: GpuDevice,
        weights: &TransformerWeights,
        max_candidates: usize,
    ) -> Result<Self, TransformerError> {
        let w = weights;
        let d = w.d_model;
        if d == 0 || w.heads == 0 || d % w.heads != 0 {
            return Err(TransformerError::Weights(format!(
                "d_model {d} is not a multiple of {} heads",
                w.heads
            )));
        }
        let head_dim = d / w.heads;
        if head_dim > MAX_TRANSFORMER_HEAD_DIM {
            return Err(TransformerError::Shape {
                what: "the head width",
                got: head_dim,
                limit: format!("at most {MAX_TRANSFORMER_HEAD_DIM}"),
            });
        }
        if w.mix.len() != w.layers.len() + 1 || w.items.len() % d != 0 {
            return Err(TransformerError::Weights(format!(
                "{} mix weights for {} layers, {} item values for width {d}",
                w.mix.len(),
                w.layers.len(),
                w.items.len()
            )));
        }
        for (l, layer) in w.layers.iter().enumerate() {
            let ff = layer.ff_in.out;
            let shapes = [
                ("q|k|v", &layer.query_key_value, d, 3 * d),
                ("output", &layer.output, d, d),
                ("ff_in", &layer.ff_in, d, ff),
                ("ff_out", &layer.ff_out, ff, d),
            ];
            for (name, linear, inner, out) in shapes {
                if linear.out != out || linear.inner() != inner || linear.bias.len() != out {
                    return Err(TransformerError::Weights(format!(
                        "layer {l} {name}: expected [{inner}, {out}]"
                    )));
                }
            }
        }
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
        let n = w.max_len;
        let max_ff = w.layers.iter().map(|l| l.ff_in.out).max().unwrap_or(0);
        let copy = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let x = scratch("x", 4 * n * d, copy);
        let normed = scratch("normed", 4 * n * d, copy);
        let qkv = scratch("qkv", 4 * n * 3 * d, copy);
        let ctx = scratch("ctx", 4 * n * d, copy);
        let hidden = scratch("hidden", 4 * n * max_ff, copy);
        let lasts = scratch("lasts", 4 * (w.layers.len() + 1) * d, copy);
        let user_vec = scratch("user", 4 * d, copy);
        let rows = scratch("rows", 4 * max_candidates, copy);
        let scores = scratch("scores", 4 * max_candidates, copy);
        let slots = STEPS_PER_LAYER * w.layers.len() + 2;
        let params = scratch(
            "params",
            SLOT as usize * slots,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let items = storage("items", &w.items);
        let mix = storage("mix", &w.mix);
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
        let norm = |n: &NormWeights, name: &str| {
            (
                storage(&format!("{name}.gamma"), &n.gamma),
                storage(&format!("{name}.beta"), &n.beta),
            )
        };
        let linear = |l: &LinearWeights, name: &str| {
            (
                storage(&format!("{name}.weight"), &l.weight),
                storage(&format!("{name}.bias"), &l.bias),
            )
        };
        let mut layers = Vec::with_capacity(w.layers.len());
        for (l, layer) in w.layers.iter().enumerate() {
            let s = STEPS_PER_LAYER * l;
            let (na_g, na_b) = norm(&layer.norm_attn, "norm_attn");
            let (qkv_w, qkv_b) = linear(&layer.query_key_value, "qkv");
            let (out_w, out_b) = linear(&layer.output, "output");
            let (nf_g, nf_b) = norm(&layer.norm_ff, "norm_ff");
            let (ffi_w, ffi_b) = linear(&layer.ff_in, "ff_in");
            let (ffo_w, ffo_b) = linear(&layer.ff_out, "ff_out");
            let (ln, lin) = (&pipelines.layer_norm, &pipelines.linear);
            layers.push(LayerDispatches {
                norm_attn: bind(ln, s, &[&x, &na_g, &na_b, &normed]),
                query_key_value: bind(lin, s + 1, &[&normed, &qkv_w, &qkv_b, &qkv]),
                attention: bind(&pipelines.attention, s + 2, &[&qkv, &ctx]),
                output: bind(lin, s + 3, &[&ctx, &out_w, &out_b, &x]),
                norm_ff: bind(ln, s + 4, &[&x, &nf_g, &nf_b, &normed]),
                ff_in: bind(lin, s + 5, &[&normed, &ffi_w, &ffi_b, &hidden]),
                ff_out: bind(lin, s + 6, &[&hidden, &ffo_w, &ffo_b, &x]),
                ff: layer.ff_in.out,
            });
        }
        let (ng, nb) = norm(&w.norm, "norm");
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
        Ok(Self {
            pipelines,
            d_model: d,
            heads: w.heads,
            max_len: n,
            n_items: w.items.len() / d,
            max_candidates,
            epsilon: w.epsilon,
            x,
            lasts,
            rows,
            scores,
            params,
            layers,
            user,
            score,
            gpu,
        })
    }

    /// The adapter this runs on.
    pub fn adapter(&self) -> &str {
        &self.gpu.adapter
    }

    /// Starts a forward over `embedded` (`[m, d_model]`: the embedded tokens, oldest first,
    /// positions included) and the scoring of the dense item `rows`; read the scores with
    /// [`PendingScores::read`] (or [`PendingScores::wait`] natively).
    pub fn submit(
        &self,
        embedded: &[f32],
        rows: &[u32],
    ) -> Result<PendingScores, TransformerError> {
        let d = self.d_model;
        let m = embedded.len() / d;
        if m == 0 || m > self.max_len || embedded.len() % d != 0 {
            return Err(TransformerError::Shape {
                what: "the embedded window (values)",
                got: embedded.len(),
                limit: format!("1 to {} tokens of width {d}", self.max_len),
            });
        }
        if rows.len() > self.max_candidates {
            return Err(TransformerError::Shape {
                what: "the candidate count",
                got: rows.len(),
                limit: format!("at most {}", self.max_candidates),
            });
        }
        if let Some(&r) = rows.iter().find(|&&r| r as usize >= self.n_items) {
            return Err(TransformerError::Shape {
                what: "a candidate row",
                got: r as usize,
                limit: format!("below {}", self.n_items),
            });
        }
        if rows.is_empty() {
            return Ok(PendingScores::ready(Vec::new()));
        }
        let queue = &self.gpu.queue;
        queue.write_buffer(&self.x, 0, bytemuck::cast_slice(embedded));
        queue.write_buffer(&self.rows, 0, bytemuck::cast_slice(rows));
        queue.write_buffer(&self.params, 0, &self.params_for(m, rows.len()));

        let mut encoder = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let row_bytes = 4 * d as u64;
        let last = (m as u64 - 1) * row_bytes;
        encoder.copy_buffer_to_buffer(&self.x, last, &self.lasts, 0, row_bytes);
        let groups = |invocations: usize| (invocations as u32).div_ceil(WORKGROUP);
        let p = &self.pipelines;
        for (l, layer) in self.layers.iter().enumerate() {
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                let mut run = |pipeline, group: &wgpu::BindGroup, workgroups| {
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(workgroups, 1, 1);
                };
                run(&p.layer_norm, &layer.norm_attn, groups(m));
                run(&p.linear, &layer.query_key_value, groups(m * 3 * d));
                run(&p.attention, &layer.attention, groups(m * self.heads));
                run(&p.linear, &layer.output, groups(m * d));
                run(&p.layer_norm, &layer.norm_ff, groups(m));
                run(&p.linear, &layer.ff_in, groups(m * layer.ff));
                run(&p.linear, &layer.ff_out, groups(m * d));
            }
            let to = (l as u64 + 1) * row_bytes;
            encoder.copy_buffer_to_buffer(&self.x, last, &self.lasts, to, row_bytes);
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&p.user);
            pass.set_bind_group(0, &self.user, &[]);
            pass.dispatch_workgroups(1, 1, 1);
            pass.set_pipeline(&p.scores);
            pass.set_bind_group(0, &self.score, &[]);
            pass.dispatch_workgroups(groups(rows.len()), 1, 1);
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
        let (sender, receiver) = async_channel::bounded(1);
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.try_send(result.map_err(|e| e.to_string()));
        });
        Ok(PendingScores {
            state: Pending::Mapping {
                staging,
                receiver,
                device: self.gpu.device.clone(),
            },
        })
    }

    /// Every dispatch's parameter block for `m` tokens and `count` candidates.
    fn params_for(&self, m: usize, count: usize) -> Vec<u8> {
        let d = self.d_model as u32;
        let m = m as u32;
        let eps = self.epsilon.to_bits();
        let mut blocks: Vec<[u32; 4]> = Vec::new();
        for layer in &self.layers {
            let ff = layer.ff as u32;
            blocks.extend([
                [m, d, eps, 0],
                [m, d, 3 * d, 0],
                [m, d, self.heads as u32, 0],
                [m, d, d, ACCUMULATE],
                [m, d, eps, 0],
                [m, d, ff, GELU],
                [m, ff, d, ACCUMULATE],
            ]);
        }
        blocks.push([self.layers.len() as u32 + 1, d, eps, 0]);
        blocks.push([count as u32, d, 0, 0]);
        let mut bytes = vec![0u8; blocks.len() * SLOT as usize];
        for (block, slot) in blocks.iter().zip(bytes.chunks_exact_mut(SLOT as usize)) {
            slot[..16].copy_from_slice(bytemuck::cast_slice(block));
        }
        bytes
    }
}
