//! The five compute pipelines, compiled once per device, and each kernel's parameter block.
//!
//! Bindings, in order, then the parameter block (a 16-byte uniform) last:
//! - `layer_norm`: x, gamma, beta, y (read-write).
//! - `linear`: x, weight `[inner, cols]`, bias, y (read-write; added to with the accumulate flag).
//! - `row_attention`: q|k|v `[rows, 3d]`, ctx `[rows, d]` (read-write).
//! - `user_representation`: lasts `[states, d]`, mix, gamma, beta, user (read-write).
//! - `candidate_scores`: item table, user, rows, scores (read-write); its "parameter block" is
//!   the kernel's `info` storage array (count, d) shared with the burn extension.

/// Invocations per workgroup of every row kernel (the WGSL files' `@workgroup_size`).
pub const WORKGROUP: u32 = 64;

/// The five compute pipelines.
#[derive(Debug)]
pub struct Pipelines {
    /// Layer norm of each row.
    pub layer_norm: wgpu::ComputePipeline,
    /// A linear layer over rows (optionally GELU, optionally accumulating: a residual add).
    pub linear: wgpu::ComputePipeline,
    /// Causal multi-head attention over fused q|k|v rows.
    pub attention: wgpu::ComputePipeline,
    /// The layer mix and final norm of the last token's states.
    pub user: wgpu::ComputePipeline,
    /// Candidate gather + dot.
    pub scores: wgpu::ComputePipeline,
}

/// A kernel's 16-byte parameter block (the `Dims` struct of its WGSL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KernelParams {
    /// `layer_norm.wgsl`: `rows` rows of `width` values.
    LayerNorm {
        /// Rows.
        rows: u32,
        /// Values per row.
        width: u32,
        /// The norm's epsilon.
        epsilon: f32,
    },
    /// `linear.wgsl`: `rows` rows of `inner` values times `[inner, cols]`.
    Linear {
        /// Rows.
        rows: u32,
        /// Input width.
        inner: u32,
        /// Output width.
        cols: u32,
        /// GELU after the product.
        gelu: bool,
        /// Add to the output buffer instead of overwriting it (a residual connection).
        accumulate: bool,
    },
    /// `row_attention.wgsl`: `rows` query rows of width `d` in `n_heads` heads; the last row
    /// also attends to `prefix` extra keys and values (a deep prompt's).
    Attention {
        /// Query rows (every row is also a key).
        rows: u32,
        /// Model width.
        d: u32,
        /// Heads.
        n_heads: u32,
        /// Extra key/value rows the last query row sees (0: none).
        prefix: u32,
    },
    /// `user_representation.wgsl`: `states` rows of width `d` mixed and normed.
    User {
        /// States mixed (layers + 1).
        states: u32,
        /// Width.
        d: u32,
        /// The final norm's epsilon.
        epsilon: f32,
    },
    /// `candidate_scores.wgsl`: `count` candidates of width `d`.
    Scores {
        /// Candidates.
        count: u32,
        /// Width.
        d: u32,
    },
}

impl KernelParams {
    /// The block as four `u32`s, as the kernel reads it.
    pub fn block(self) -> [u32; 4] {
        match self {
            Self::LayerNorm {
                rows,
                width,
                epsilon,
            } => [rows, width, epsilon.to_bits(), 0],
            Self::Linear {
                rows,
                inner,
                cols,
                gelu,
                accumulate,
            } => [
                rows,
                inner,
                cols,
                u32::from(gelu) | u32::from(accumulate) << 1,
            ],
            Self::Attention {
                rows,
                d,
                n_heads,
                prefix,
            } => [rows, d, n_heads, prefix],
            Self::User { states, d, epsilon } => [states, d, epsilon.to_bits(), 0],
            Self::Scores { count, d } => [count, d, 0, 0],
        }
    }

    /// Invocations the kernel needs for this block (workgroups: `div_ceil(WORKGROUP)`, except
    /// the single-invocation `user_representation`).
    pub fn invocations(self) -> u32 {
        match self {
            Self::LayerNorm { rows, .. } => rows,
            Self::Linear { rows, cols, .. } => rows * cols,
            Self::Attention { rows, n_heads, .. } => rows * n_heads,
            Self::User { .. } => 1,
            Self::Scores { count, .. } => count,
        }
    }

    /// Workgroups of a dispatch for this block.
    pub fn workgroups(self) -> u32 {
        match self {
            Self::User { .. } => 1,
            _ => self.invocations().div_ceil(WORKGROUP),
        }
    }
}

impl Pipelines {
    /// Compiles the five pipelines on `device`.
    pub fn new(device: &wgpu::Device) -> Self {
        let scores = include_str!("../scoring/candidate_scores.wgsl")
            .replace("{{ elem }}", "f32")
            .replace("{{ index }}", "u32")
            .replace("{{ workgroup_size_x }}", &WORKGROUP.to_string());
        let pipeline = |label: &str, source: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Self {
            layer_norm: pipeline("layer_norm", include_str!("layer_norm.wgsl")),
            linear: pipeline("linear", include_str!("linear.wgsl")),
            attention: pipeline("row_attention", include_str!("row_attention.wgsl")),
            user: pipeline(
                "user_representation",
                include_str!("user_representation.wgsl"),
            ),
            scores: pipeline("candidate_scores", &scores),
        }
    }
}
