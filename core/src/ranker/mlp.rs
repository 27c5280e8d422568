//! A residual MLP block: `x + W₂ · relu(W₁ · norm(x))`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};

/// Sizes of a [`ResidualMlpBlock`].
#[derive(Config, Debug)]
pub struct ResidualMlpBlockConfig {
    /// Width of the input and output.
    pub width: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Dropout on the residual branch during training.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl ResidualMlpBlockConfig {
    /// Builds the block on `device`.
    pub fn init(&self, device: &Device) -> ResidualMlpBlock {
        ResidualMlpBlock {
            norm: LayerNormConfig::new(self.width).init(device),
            expand: LinearConfig::new(self.width, self.hidden).init(device),
            project: LinearConfig::new(self.hidden, self.width).init(device),
            relu: Relu::new(),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// A pre-norm feed-forward block with a residual connection.
#[derive(Module, Debug)]
pub struct ResidualMlpBlock {
    /// Norm before the branch.
    pub norm: LayerNorm,
    /// Width → hidden.
    pub expand: Linear,
    /// Hidden → width.
    pub project: Linear,
    /// Activation.
    pub relu: Relu,
    /// Dropout on the branch.
    pub dropout: Dropout,
}

impl ResidualMlpBlock {
    /// `x` `[n, width]` → `[n, width]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self
            .relu
            .forward(self.expand.forward(self.norm.forward(x.clone())));
        x + self.dropout.forward(self.project.forward(h))
    }
}
