//! The foundation model (FM): token embeddings → causal transformer → next-item scores.

mod attention;
mod block;
mod embedding;

pub use attention::{CausalSelfAttention, CausalSelfAttentionConfig};
pub use block::{TransformerBlock, TransformerBlockConfig};
pub use embedding::{TokenEmbedding, TokenEmbeddingConfig};

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor, activation};

use crate::tokenizer::{ITEM_OFFSET, TokenBatch};

/// Shape of the foundation model.
#[derive(Config, Debug, PartialEq)]
pub struct FoundationModelConfig {
    /// Number of catalog items the model scores.
    pub n_items: usize,
    /// Width of every hidden state.
    #[config(default = 64)]
    pub d_model: usize,
    /// Attention heads per layer (`d_model` must be divisible by it).
    #[config(default = 2)]
    pub n_heads: usize,
    /// Transformer layers.
    #[config(default = 2)]
    pub n_layers: usize,
    /// Hidden width of each layer's feed-forward network.
    #[config(default = 256)]
    pub d_ff: usize,
    /// Longest token sequence (the attention window).
    #[config(default = 64)]
    pub max_len: usize,
    /// Dropout on embeddings and residual branches during training.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl FoundationModelConfig {
    /// Builds the model with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> FoundationModel {
        let block = TransformerBlockConfig::new(self.d_model, self.n_heads, self.d_ff)
            .with_dropout(self.dropout);
        FoundationModel {
            embedding: TokenEmbeddingConfig::new(self.n_items, self.d_model, self.max_len)
                .with_dropout(self.dropout)
                .init(device),
            blocks: (0..self.n_layers).map(|_| block.init(device)).collect(),
            norm: LayerNormConfig::new(self.d_model).init(device),
            n_items: self.n_items,
        }
    }
}

/// Autoregressive transformer over a member's event tokens.
#[derive(Module, Debug)]
pub struct FoundationModel {
    /// Sums the token's what/when/where embeddings and its position.
    pub embedding: TokenEmbedding,
    /// The causal transformer layers.
    pub blocks: Vec<TransformerBlock>,
    /// Final layer norm.
    pub norm: LayerNorm,
    /// Number of catalog items.
    pub n_items: usize,
}

impl FoundationModel {
    /// Hidden states of every token. Output: `[batch, seq, d_model]`.
    pub fn forward(&self, batch: &TokenBatch) -> Tensor<3> {
        let mut x = self.embedding.forward(batch);
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.norm.forward(x)
    }

    /// Output embeddings of all catalog items (tied with the input item embeddings): `[n_items, d_model]`.
    pub fn item_vectors(&self) -> Tensor<2> {
        let w = self.embedding.item.weight.val();
        let [rows, _] = w.dims();
        w.slice(ITEM_OFFSET as usize..rows)
    }

    /// Output embeddings of the given dense item indices: `[n, d_model]`.
    pub fn item_vectors_of(&self, items: Tensor<1, Int>) -> Tensor<2> {
        self.embedding
            .item
            .weight
            .val()
            .select(0, items.add_scalar(ITEM_OFFSET as i64))
    }

    /// Scores of every catalog item at every token: `[batch, seq, n_items]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = hidden.dims();
        hidden
            .reshape([b * s, d])
            .matmul(self.item_vectors().transpose())
            .reshape([b, s, self.n_items])
    }

    /// The user representation: the last real token's hidden state per sequence. `[batch, d_model]`.
    pub fn user_representation(&self, hidden: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
        let [b, s, d] = hidden.dims();
        let device = hidden.device();
        let rows: Vec<i64> = lengths
            .iter()
            .enumerate()
            .map(|(r, &n)| (r * s + n.max(1) - 1) as i64)
            .collect();
        let idx = Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(rows, [b]), &device);
        hidden.reshape([b * s, d]).select(0, idx)
    }

    /// Mean next-item cross-entropy (full softmax over the catalog) over the batch's real tokens.
    /// Returns a scalar tensor `[1]`.
    pub fn next_item_loss(&self, batch: &TokenBatch) -> Tensor<1> {
        let logits = self.logits(self.forward(batch));
        let [b, s, n] = logits.dims();
        let log_p = activation::log_softmax(logits.reshape([b * s, n]), 1);
        let picked = log_p
            .gather(1, batch.target.clone().reshape([b * s, 1]))
            .reshape([b * s]);
        let mask = batch.target_mask.clone().reshape([b * s]);
        let count = mask.clone().sum().clamp_min(1.0);
        picked.mul(mask).sum().neg().div(count)
    }
}
