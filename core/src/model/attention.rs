//! Multi-head causal self-attention whose core runs the WGSL kernel on wgpu devices.

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

impl CausalSelfAttention {
    /// Input `[batch, seq, d_model]` → output `[batch, seq, d_model]`; token `t` attends to `0..=t`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let q = self.heads(&self.query, x.clone());
        let k = self.heads(&self.key, x.clone());
        let v = self.heads(&self.value, x);
        self.merge(encore_shaders::causal_attention(q, k, v))
    }

    /// Attention output at each sequence's last real token only: input `[batch, seq, d_model]`
    /// (right-padded, real lengths `lengths`) → `[batch, 1, d_model]`. Keys and values come from
    /// every real token; the query only from the last.
    pub fn forward_last(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let q = self.heads(&self.query, last_rows(x.clone(), lengths));
        let k = self.heads(&self.key, x.clone());
        let v = self.heads(&self.value, x);
        let ctx = if lengths.iter().all(|&n| n == s) {
            // One query at the last position sees every key: nothing to mask.
            encore_shaders::causal_attention_suffix(q, k, v)
        } else {
            let padding: Vec<bool> = lengths
                .iter()
                .flat_map(|&n| (0..s).map(move |j| j >= n.max(1)))
                .collect();
            let mask =
                Tensor::<4, Bool>::from_data(TensorData::new(padding, [b, 1, 1, s]), &k.device())
                    .expand([b, self.n_heads, 1, s]);
            burn::tensor::module::attention(q, k, v, Some(mask), None, Default::default())
        };
        self.merge(ctx)
    }

    /// An incremental step: input `[1, m, d_model]` holds the `m` tokens after the ones whose
    /// keys and values `cache` holds; they are appended to `cache`. Output `[1, m, d_model]`.
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut LayerCache) -> Tensor<3> {
        self.attend_cached(x.clone(), x, cache)
    }

    /// An incremental step that needs the output of the last new token only: like
    /// [`CausalSelfAttention::forward_cached`] (every new token's keys and values are cached),
    /// but the output is `[1, 1, d_model]`.
    pub fn forward_cached_last(&self, x: Tensor<3>, cache: &mut LayerCache) -> Tensor<3> {
        let m = x.dims()[1];
        self.attend_cached(x.clone().narrow(1, m - 1, 1), x, cache)
    }

    /// Queries from `queries` (the last of the new tokens `x`) over the cached keys and values
    /// plus `x`'s, which are appended to `cache`: `[1, q, d_model]` out.
    fn attend_cached(&self, queries: Tensor<3>, x: Tensor<3>, cache: &mut LayerCache) -> Tensor<3> {
        let q = self.heads(&self.query, queries);
        let (k, v) = cache.append(self.heads(&self.key, x.clone()), self.heads(&self.value, x));
        self.merge(encore_shaders::causal_attention_suffix(q, k, v))
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
