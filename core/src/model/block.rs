//! A pre-norm transformer layer: attention and a GELU feed-forward network, each residual.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Gelu, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::LAYER_NORM_EPSILON;
use super::attention::{CausalSelfAttention, CausalSelfAttentionConfig, last_rows};
use super::kv_cache::LayerCache;

/// Sizes of [`TransformerBlock`].
#[derive(Config, Debug)]
pub struct TransformerBlockConfig {
    /// Model width.
    pub d_model: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Feed-forward hidden width.
    pub d_ff: usize,
    /// Dropout on both residual branches.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl TransformerBlockConfig {
    /// Builds the layer on `device`.
    pub fn init(&self, device: &Device) -> TransformerBlock {
        TransformerBlock {
            norm_attn: LayerNormConfig::new(self.d_model)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            attention: CausalSelfAttentionConfig::new(self.d_model, self.n_heads).init(device),
            norm_ff: LayerNormConfig::new(self.d_model)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            ff_in: LinearConfig::new(self.d_model, self.d_ff).init(device),
            ff_out: LinearConfig::new(self.d_ff, self.d_model).init(device),
            gelu: Gelu::new(),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// One causal transformer layer.
#[derive(Module, Debug)]
pub struct TransformerBlock {
    /// Norm before attention.
    pub norm_attn: LayerNorm,
    /// Causal self-attention.
    pub attention: CausalSelfAttention,
    /// Norm before the feed-forward network.
    pub norm_ff: LayerNorm,
    /// Feed-forward expansion.
    pub ff_in: Linear,
    /// Feed-forward projection back.
    pub ff_out: Linear,
    /// Activation.
    pub gelu: Gelu,
    /// Residual dropout.
    pub dropout: Dropout,
}

impl TransformerBlock {
    /// `[batch, seq, d_model]` → `[batch, seq, d_model]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with(x, |a| self.attention.forward(a))
    }

    /// An incremental step over cached keys and values (see
    /// [`CausalSelfAttention::forward_cached`]): `[1, m, d_model]` → `[1, m, d_model]`.
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut LayerCache) -> Tensor<3> {
        self.forward_with(x, |a| self.attention.forward_cached(a, cache))
    }

    /// The layer's output at each sequence's last real token only (see
    /// [`CausalSelfAttention::forward_last`]): `[batch, seq, d_model]` → `[batch, 1, d_model]`.
    pub fn forward_last(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let attended = self
            .attention
            .forward_last(self.norm_attn.forward(x.clone()), lengths);
        self.feed_forward(last_rows(x, lengths) + attended)
    }

    /// An incremental step whose output is needed at the last new token only (every new
    /// token's keys and values are still cached): `[1, m, d_model]` → `[1, 1, d_model]`.
    pub fn forward_cached_last(&self, x: Tensor<3>, cache: &mut LayerCache) -> Tensor<3> {
        let [_, m, _] = x.dims();
        let attended = self
            .attention
            .forward_cached_last(self.norm_attn.forward(x.clone()), cache);
        self.feed_forward(x.narrow(1, m - 1, 1) + attended)
    }

    /// The residual feed-forward half: `x + FF(norm(x))`.
    fn feed_forward(&self, x: Tensor<3>) -> Tensor<3> {
        let ff = self.ff_out.forward(
            self.gelu
                .forward(self.ff_in.forward(self.norm_ff.forward(x.clone()))),
        );
        x + self.dropout.forward(ff)
    }

    fn forward_with(&self, x: Tensor<3>, attend: impl FnOnce(Tensor<3>) -> Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.dropout.forward(attend(self.norm_attn.forward(x)));
        self.feed_forward(x)
    }
}
