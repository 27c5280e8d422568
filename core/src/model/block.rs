//! A pre-norm transformer layer: attention and a GELU feed-forward network, each residual.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Gelu, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor};

use super::LAYER_NORM_EPSILON;
use super::attention::{CausalSelfAttention, CausalSelfAttentionConfig, Positions};
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
    /// The layer over `x` `[batch, seq, d_model]`, output at `at` (`[batch, seq, d_model]` or
    /// `[batch, 1, d_model]`); with a `cache`, an incremental step over the keys and values
    /// it holds (see [`CausalSelfAttention::forward`]).
    pub fn forward(
        &self,
        x: Tensor<3>,
        cache: Option<&mut LayerCache>,
        at: Positions<'_>,
    ) -> Tensor<3> {
        let attended = self
            .attention
            .forward(self.norm_attn.forward(x.clone()), cache, at);
        self.feed_forward(at.rows_of(x) + self.dropout.forward(attended))
    }

    /// The layer over `x` `[batch, n, d_model]` with an arbitrary attention mask (see
    /// [`CausalSelfAttention::forward_masked`]): `[batch, n, d_model]`.
    pub fn forward_masked(
        &self,
        x: Tensor<3>,
        hidden: Tensor<3, Bool>,
        extra: Option<(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let attended =
            self.attention
                .forward_masked(self.norm_attn.forward(x.clone()), hidden, extra);
        self.feed_forward(x + self.dropout.forward(attended))
    }

    /// The residual feed-forward half: `x + FF(norm(x))`.
    fn feed_forward(&self, x: Tensor<3>) -> Tensor<3> {
        let ff = self.ff_out.forward(
            self.gelu
                .forward(self.ff_in.forward(self.norm_ff.forward(x.clone()))),
        );
        x + self.dropout.forward(ff)
    }
}
