//! The serving weights in plain host vectors, as [`super::WgslTransformer`] uploads them.

/// A linear layer: `weight` `[inner, out]` row-major (burn's layout) and `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct LinearWeights {
    /// `[inner, out]`, row-major.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
    /// Output width.
    pub out: usize,
}

impl LinearWeights {
    /// Input width (`weight.len() / out`).
    pub fn inner(&self) -> usize {
        self.weight.len() / self.out.max(1)
    }
}

/// A layer norm's scale and shift, `[width]` each.
#[derive(Debug, Clone)]
pub struct NormWeights {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
}

/// One pre-norm transformer layer.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// Norm before attention.
    pub norm_attn: NormWeights,
    /// Query, key and value projections side by side: `[d, 3d]`, output `q | k | v`.
    pub query_key_value: LinearWeights,
    /// Attention output projection `[d, d]`.
    pub output: LinearWeights,
    /// Norm before the feed-forward block.
    pub norm_ff: NormWeights,
    /// Feed-forward input `[d, ff]` (GELU after it).
    pub ff_in: LinearWeights,
    /// Feed-forward output `[ff, d]`.
    pub ff_out: LinearWeights,
}

/// Everything a stateless serving forward reads after the token embedding.
#[derive(Debug, Clone)]
pub struct TransformerWeights {
    /// Model width.
    pub d_model: usize,
    /// Attention heads (`d_model` must divide evenly).
    pub heads: usize,
    /// Longest token window.
    pub max_len: usize,
    /// Layer norm epsilon.
    pub epsilon: f32,
    /// The layers, first to last.
    pub layers: Vec<LayerWeights>,
    /// Weight of the last token's state after the embedding and after each layer (already
    /// softmax-normalised): `layers + 1` values.
    pub mix: Vec<f32>,
    /// The final norm of the mixed state.
    pub norm: NormWeights,
    /// Candidate vectors `[n_items, d_model]`: row `r` scores dense item `r`.
    pub items: Vec<f32>,
}
