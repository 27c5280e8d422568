//! Multi-head causal self-attention whose core runs the WGSL kernel on wgpu devices.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

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
        let [b, s, d] = x.dims();
        let h = self.n_heads;
        let heads = |t: Tensor<3>| t.reshape([b, s, h, d / h]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let ctx = encore_shaders::causal_attention(q, k, v);
        self.output.forward(ctx.swap_dims(1, 2).reshape([b, s, d]))
    }

    /// An incremental step: input `[1, m, d_model]` holds the `m` tokens after the ones whose
    /// keys and values `cache` holds; they are appended to `cache`. Output `[1, m, d_model]`.
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut LayerCache) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let h = self.n_heads;
        let heads = |t: Tensor<3>| t.reshape([b, s, h, d / h]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let (k, v) = cache.append(k, v);
        let ctx = encore_shaders::causal_attention_suffix(q, k, v);
        self.output.forward(ctx.swap_dims(1, 2).reshape([b, s, d]))
    }
}
