//! Multi-head causal self-attention. A forward over every token runs Encore's WGSL kernel on a
//! wgpu device without autodiff; the last-position and cached (session) forwards use burn's
//! attention op; training uses the burn-ops reference (see `encore_shaders::causal_attention`).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::kv_cache::LayerCache;

/// Sizes of [`CausalSelfAttention`].
#[derive(Config, Debug)]
pub struct CausalSelfAttentionConfig {
    /// Model width.
    pub d_model: usize,
    /// Number of heads (`d_model % n_heads == 0`).
    pub n_heads: usize,
}

impl CausalSelfAttentionConfig {
    /// Builds the projections on `device`.
    ///
    /// # Panics
    /// If `d_model` is not divisible by `n_heads`.
    pub fn init(&self, device: &Device) -> CausalSelfAttention {
        assert_eq!(
            self.d_model % self.n_heads,
            0,
            "d_model {} not divisible by n_heads {}",
            self.d_model,
            self.n_heads
        );
        let lin = || LinearConfig::new(self.d_model, self.d_model).init(device);
        CausalSelfAttention {
            query: lin(),
            key: lin(),
            value: lin(),
            output: lin(),
            n_heads: self.n_heads,
        }
    }
}

/// Causal multi-head self-attention.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Output projection.
    pub output: Linear,
    /// Number of heads.
    pub n_heads: usize,
}

/// Where a forward computes its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions<'a> {
    /// At every token: `[batch, seq, d_model]` out.
    All,
    /// At each sequence's last real token only (right-padded, real lengths given; with a
    /// cache, the one member's last new token): `[batch, 1, d_model]` out. Keys and values
    /// still come from every token.
    Last(&'a [usize]),
}

impl Positions<'_> {
    /// The rows of `x` `[batch, seq, d]` at these positions: all of them, or each sequence's
    /// last real row (`[batch, 1, d]`).
    pub fn rows_of(self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Positions::All => x,
            Positions::Last(lengths) => last_rows(x, lengths),
        }
    }
}

impl CausalSelfAttention {
    /// Causal self-attention of `x` `[batch, seq, d_model]` (token `t` attends to `0..=t`),
    /// output at `at`.
    ///
    /// With a `cache` (one member: `batch` = 1), `x` holds the `seq` tokens after those whose
    /// keys and values the cache holds; their keys and values are appended to it and the
    /// queries see every cached key as well. Runs Encore's WGSL kernel for a cacheless
    /// forward at every token on a wgpu device, burn's attention op for the others, and the
    /// burn-ops reference under autodiff (`encore_shaders::causal_attention`).
    pub fn forward(
        &self,
        x: Tensor<3>,
        cache: Option<&mut LayerCache>,
        at: Positions<'_>,
    ) -> Tensor<3> {
        let q = self.heads(&self.query, at.rows_of(x.clone()));
        let k = self.heads(&self.key, x.clone());
        let v = self.heads(&self.value, x);
        let ctx = match (cache, at) {
            (Some(cache), _) => {
                let (k, v) = cache.append(k, v);
                encore_shaders::causal_attention_suffix(q, k, v)
            }
            (None, Positions::All) => encore_shaders::causal_attention(q, k, v),
            (None, Positions::Last(lengths)) => {
                let [b, _, s, _] = k.dims();
                if lengths.iter().all(|&n| n == s) {
                    // One query at the last position sees every key: nothing to mask.
                    encore_shaders::causal_attention_suffix(q, k, v)
                } else {
                    let padding: Vec<bool> = lengths
                        .iter()
                        .flat_map(|&n| (0..s).map(move |j| j >= n.max(1)))
                        .collect();
                    let mask = Tensor::<4, Bool>::from_data(
                        TensorData::new(padding, [b, 1, 1, s]),
                        &k.device(),
                    )
                    .expand([b, self.n_heads, 1, s]);
                    burn::tensor::module::attention(q, k, v, Some(mask), None, Default::default())
                }
            }
        };
        self.merge(ctx)
    }

    /// Attention of every row of `x` `[batch, n, d_model]` over the keys and values of every
    /// row and, after them, the `extra` ones (`[1, heads, e, head_dim]` each, shared by the
    /// batch), except where `hidden` `[batch, n, n + e]` is true: `[batch, n, d_model]`. Every
    /// row must see at least one key. Plain burn ops (differentiable): training's form of a
    /// prompted forward (see `FoundationModel::forward_prompted_batch`).
    pub fn forward_masked(
        &self,
        x: Tensor<3>,
        hidden: Tensor<3, Bool>,
        extra: Option<(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let q = self.heads(&self.query, x.clone());
        let mut k = self.heads(&self.key, x.clone());
        let mut v = self.heads(&self.value, x);
        let [b, h, n, hd] = q.dims();
        if let Some((ek, ev)) = extra {
            let e = ek.dims()[2];
            k = Tensor::cat(vec![k, ek.expand([b, h, e, hd])], 2);
            v = Tensor::cat(vec![v, ev.expand([b, h, e, hd])], 2);
        }
        let keys = k.dims()[2];
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f32).sqrt());
        let hidden = hidden.unsqueeze_dim::<4>(1).expand([b, h, n, keys]);
        let scores = scores.mask_fill(hidden, f32::NEG_INFINITY);
        self.merge(burn::tensor::activation::softmax(scores, 3).matmul(v))
    }

    /// `x` `[batch, n, d_model]` through `projection`, split into heads:
    /// `[batch, heads, n, d_model / heads]`.
    fn heads(&self, projection: &Linear, x: Tensor<3>) -> Tensor<4> {
        let [b, n, d] = x.dims();
        let h = self.n_heads;
        projection
            .forward(x)
            .reshape([b, n, h, d / h])
            .swap_dims(1, 2)
    }

    /// Heads merged back and projected out: `[batch, heads, n, head_dim]` → `[batch, n, d_model]`.
    fn merge(&self, ctx: Tensor<4>) -> Tensor<3> {
        let [b, h, n, hd] = ctx.dims();
        self.output
            .forward(ctx.swap_dims(1, 2).reshape([b, n, h * hd]))
    }
}

/// The rows at each sequence's last real token: `[batch, seq, d]` → `[batch, 1, d]`.
pub fn last_rows(x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
    let [b, s, d] = x.dims();
    let rows: Vec<i64> = lengths
        .iter()
        .enumerate()
        .map(|(r, &n)| (r * s + n.clamp(1, s) - 1) as i64)
        .collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(rows, [b]), &x.device());
    x.reshape([b * s, d]).select(0, idx).reshape([b, 1, d])
}
