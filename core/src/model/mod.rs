//! The foundation model (FM): token embeddings → causal transformer → a learned mix of every
//! layer's hidden state → next-item scores against the item vectors.

mod attention;
mod block;
mod embedding;
mod kv_cache;
mod prompt;

pub use attention::{CausalSelfAttention, CausalSelfAttentionConfig, Positions, last_rows};
pub use block::{TransformerBlock, TransformerBlockConfig};
pub use embedding::{TokenEmbedding, TokenEmbeddingConfig, TokenTables};
pub use prompt::{
    MAX_PROMPT_LENGTH, NamedPromptSet, PromptForm, PromptPlacement, PromptSet, PromptSetConfig,
};

/// The epsilon of every layer norm in the model (burn's default, stated so that the CPU
/// serving step ([`crate::runtime::CpuEngine`]) normalises identically).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;
pub use kv_cache::{KvCache, LayerCache};

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData, activation};

use crate::tokenizer::{EventTokenizer, ITEM_OFFSET, TokenBatch};

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
    /// Roll-up window of the tokenizer in seconds (0: one token per event).
    #[config(default = 0)]
    pub rollup_window_s: u64,
    /// Use the tokens' context fields (when, where, action, duration, count); `false` is ID-only.
    #[config(default = true)]
    pub context_features: bool,
    /// Scale the summed field embeddings by √`d_model` before adding positions (see
    /// [`TokenEmbeddingConfig::scale_embedding`]); models stored before this option had it off.
    #[config(default = true)]
    pub scale_embedding: bool,
}

impl FoundationModelConfig {
    /// Builds the model with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> FoundationModel {
        let block = TransformerBlockConfig::new(self.d_model, self.n_heads, self.d_ff)
            .with_dropout(self.dropout);
        let mut mix = vec![0f32; self.n_layers + 1];
        mix[self.n_layers] = 2.0;
        FoundationModel {
            embedding: TokenEmbeddingConfig::new(self.n_items, self.d_model, self.max_len)
                .with_dropout(self.dropout)
                .with_context_features(self.context_features)
                .with_scale_embedding(self.scale_embedding)
                .init(device),
            blocks: (0..self.n_layers).map(|_| block.init(device)).collect(),
            layer_mix: Param::from_tensor(Tensor::from_data(
                TensorData::new(mix, [self.n_layers + 1]),
                device,
            )),
            norm: LayerNormConfig::new(self.d_model)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            n_items: self.n_items,
        }
    }

    /// The tokenizer that feeds this model.
    pub fn tokenizer(&self) -> EventTokenizer {
        EventTokenizer::new(self.max_len).with_rollup(self.rollup_window_s)
    }

    /// The same shape for serving (no dropout): what a weight file holds.
    pub fn serving(&self) -> Self {
        Self {
            dropout: 0.0,
            ..self.clone()
        }
    }
}

/// A float tensor's values in host memory (row-major), as f32.
pub fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor")
}

/// Rows scaled to unit L2 norm: `[n, d]` → `[n, d]`.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-6);
    x.div(norm)
}

/// The flat row (`[b · stride]`) of each window's request positions, `k` per window (shorter
/// lists padded with position 0): window `r`'s position `t` is row `r · stride + offset + t`.
///
/// # Panics
/// If a request position lies past its window's length.
fn request_rows(
    batch: &TokenBatch,
    requests: &[Vec<usize>],
    k: usize,
    stride: usize,
    offset: usize,
    device: &Device,
) -> Tensor<1, Int> {
    let mut picks = Vec::with_capacity(requests.len() * k);
    for (r, list) in requests.iter().enumerate() {
        for j in 0..k {
            let t = list.get(j).copied().unwrap_or(0);
            assert!(
                t < batch.lengths[r].max(1),
                "request position {t} past window {r}'s {} tokens",
                batch.lengths[r]
            );
            picks.push((r * stride + offset + t) as i64);
        }
    }
    let n = picks.len();
    Tensor::<1, Int>::from_data(TensorData::new(picks, [n]), device)
}

/// Autoregressive transformer over a member's event tokens.
#[derive(Module, Debug)]
pub struct FoundationModel {
    /// Sums the token's what/when/where embeddings and its position; holds the item ID table.
    pub embedding: TokenEmbedding,
    /// The causal transformer layers.
    pub blocks: Vec<TransformerBlock>,
    /// Logits of the learned weighting of the embedding output and every layer's output.
    pub layer_mix: Param<Tensor<1>>,
    /// Final layer norm.
    pub norm: LayerNorm,
    /// Number of catalog items.
    pub n_items: usize,
}

impl FoundationModel {
    /// The item slot table `[n_items + 2, d_model]` (padding and start rows first, then one
    /// row per catalog item): the item field's input table and, after the special rows, the
    /// output item vectors.
    pub fn item_table(&self) -> Tensor<2> {
        self.embedding.item.weight.val()
    }

    /// The stacked token tables, for [`FoundationModel::forward`] (built once, reused per
    /// request).
    pub fn token_tables(&self) -> TokenTables {
        self.embedding.tables(self.item_table())
    }

    /// The model's one forward: the tokens of `batch` embedded with `tables`, every layer, and
    /// the softmax(`layer_mix`)-weighted sum of the embedding output and every layer's
    /// output, layer-normed.
    ///
    /// - `cache`: `None` encodes each sequence from position 0. With a cache (one member), the
    ///   batch holds the tokens after the `cache.len()` already encoded; their keys and values
    ///   are appended to it, and the result equals a forward over the whole sequence.
    /// - `last_only`: `false` gives every token's state, `[batch, seq, d_model]` (training,
    ///   evaluation of every position); `true` gives each sequence's last real token only,
    ///   `[batch, 1, d_model]` (the user representation), and the last layer then computes
    ///   its output at that token alone.
    ///
    /// # Panics
    /// With a cache, if the batch holds more than one sequence or the cache has another layer
    /// count.
    pub fn forward(
        &self,
        batch: &TokenBatch,
        tables: &TokenTables,
        cache: Option<&mut KvCache>,
        last_only: bool,
    ) -> Tensor<3> {
        let first = match &cache {
            Some(c) => {
                assert_eq!(batch.lengths.len(), 1, "a cached forward takes one member");
                assert_eq!(c.layers.len(), self.blocks.len(), "cache layer count");
                c.len()
            }
            None => 0,
        };
        let x = self.embedding.forward_with(batch, tables, first);
        self.forward_embedded(x, &batch.lengths, cache, last_only)
    }

    /// [`FoundationModel::forward`] from the embedding's output `x` `[batch, seq, d_model]`
    /// (real lengths `lengths`): every layer, the layer mix and the final norm.
    fn forward_embedded(
        &self,
        mut x: Tensor<3>,
        lengths: &[usize],
        mut cache: Option<&mut KvCache>,
        last_only: bool,
    ) -> Tensor<3> {
        // Where the result is read.
        let read_at = if last_only {
            Positions::Last(lengths)
        } else {
            Positions::All
        };
        let weights = activation::softmax(self.layer_mix.val(), 0);
        // `state` weighted by the mix weight of state `l` (0: the embedding output).
        let weighted = |l: usize, state: Tensor<3>| {
            let w = weights.clone().slice(l..l + 1).reshape([1, 1, 1]);
            let dims = state.dims();
            state.mul(w.expand(dims))
        };
        let mut mixed = weighted(0, read_at.rows_of(x.clone()));
        let n = self.blocks.len();
        for (l, block) in self.blocks.iter().enumerate() {
            // The last layer's output is needed where the result is read only.
            let last_layer = l + 1 == n;
            let at = if last_layer { read_at } else { Positions::All };
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[l]);
            x = block.forward(x, layer_cache, at);
            // The last layer already gave the rows the result is read at.
            let here = if last_layer {
                x.clone()
            } else {
                read_at.rows_of(x.clone())
            };
            mixed = mixed + weighted(l + 1, here);
        }
        self.norm.forward(mixed)
    }

    /// The user representation `[1, 1, d_model]` of one member under `prompt` (see
    /// [`PromptSet`] for where a prompt sits): `request` holds the member's request token (one
    /// sequence of one token), which follows the history tokens whose keys and values `cache`
    /// holds. The prompt's keys and values and the request token's are not kept: `cache` holds
    /// the history alone afterwards, so the next call may use another prompt.
    ///
    /// # Panics
    /// If `request` holds more than one token or the cache has another layer count.
    pub fn forward_prompted(
        &self,
        request: &TokenBatch,
        tables: &TokenTables,
        cache: &mut KvCache,
        prompt: &PromptSet,
    ) -> Tensor<3> {
        assert_eq!(request.dims(), [1, 1], "one request token of one member");
        assert_eq!(cache.layers.len(), self.blocks.len(), "cache layer count");
        let history = cache.len();
        // The request token keeps the position it has without a prompt.
        let mut x = self.embedding.forward_with(request, tables, history);
        if let Some(tokens) = prompt.input_tokens() {
            x = Tensor::cat(vec![tokens, x], 1);
        }
        for (l, layer) in cache.layers.iter_mut().enumerate() {
            let heads = self.blocks[l].attention.n_heads;
            if let Some((k, v)) = prompt.layer_keys_values(l, heads) {
                layer.append(k, v);
            }
        }
        let m = x.dims()[1];
        let out = self.forward_embedded(x, &[m], Some(cache), true);
        cache.truncate(history);
        out
    }

    /// Training's batched form of [`FoundationModel::forward_prompted`]: for each window of
    /// `batch` (`[batch, seq]`, real lengths given) and each of its request positions
    /// `requests[b]` (token `t` as the request token after tokens `0..t`, the history), the user
    /// representation under `prompt`: `[batch, k, d_model]`, `k` the longest request list
    /// (shorter lists are padded with position 0; those rows are to be ignored). Every
    /// window's tokens and each request's prompt and request token run as one sequence whose
    /// attention mask gives each row what it sees in serving: a history token its history, a
    /// prompt or request token the history before its request, its own prompt before it and
    /// the deep form's keys. Without a prompt (`None`) it equals [`FoundationModel::forward`]'s
    /// states at the request positions.
    ///
    /// # Panics
    /// If a request position lies past its window's length.
    pub fn forward_prompted_batch(
        &self,
        batch: &TokenBatch,
        tables: &TokenTables,
        requests: &[Vec<usize>],
        prompt: Option<&PromptSet>,
    ) -> Tensor<3> {
        let [b, s] = batch.dims();
        assert_eq!(requests.len(), b, "one request list per window");
        let k = requests.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let p = prompt.map_or(0, PromptSet::tokens);
        let deep = prompt.map_or(0, PromptSet::deep_keys);
        let group = p + 1;
        let n = s + k * group;
        let x = self.embedding.forward_with(batch, tables, 0);
        let [_, _, d] = x.dims();
        let device = x.device();
        // The request tokens: each window's rows at its request positions, `[b, k, d]`.
        let picks = request_rows(batch, requests, k, s, 0, &device);
        let request_rows = x
            .clone()
            .reshape([b * s, d])
            .select(0, picks)
            .reshape([b, k, 1, d]);
        let groups = match prompt.and_then(PromptSet::input_tokens) {
            Some(tokens) => Tensor::cat(
                vec![
                    tokens.unsqueeze_dim::<4>(0).expand([b, k, p, d]),
                    request_rows,
                ],
                2,
            ),
            None => request_rows,
        };
        let x = Tensor::cat(vec![x, groups.reshape([b, k * group, d])], 1);
        // Which key each row may not see: `[b, n, n + deep]`, true = hidden.
        let mut hidden = vec![true; b * n * (n + deep)];
        for (r, list) in requests.iter().enumerate() {
            let row = |i: usize| (r * n + i) * (n + deep);
            for i in 0..s {
                hidden[row(i)..row(i) + i + 1].fill(false);
            }
            for j in 0..k {
                let t = list.get(j).copied().unwrap_or(0);
                for g in 0..group {
                    let at = row(s + j * group + g);
                    hidden[at..at + t].fill(false);
                    let own = at + s + j * group;
                    hidden[own..own + g + 1].fill(false);
                    hidden[at + n..at + n + deep].fill(false);
                }
            }
        }
        let hidden =
            Tensor::<3, Bool>::from_data(TensorData::new(hidden, [b, n, n + deep]), &device);
        // The request rows (each group's last) of `[b, n, d]`: `[b, k, d]`.
        let read = |x: Tensor<3>| {
            x.narrow(1, s, k * group)
                .reshape([b, k, group, d])
                .narrow(2, p, 1)
                .reshape([b, k, d])
        };
        self.mix_layers_masked(x, hidden, prompt, read)
    }

    /// [`FoundationModel::forward_prompted_batch`] with the prompt before the history
    /// ([`PromptPlacement::BeforeHistory`]): the input form's tokens start the sequence
    /// (without positions; the history keeps its own), the deep form's keys are seen by every
    /// token, and the request token at position `t` sees them and tokens `0..t`. Returns the
    /// user representations at `requests` (`[batch, k, d_model]`, padded as there). Serving
    /// does not run this placement; it exists to measure it.
    ///
    /// # Panics
    /// If a request position lies past its window's length.
    pub fn forward_prefixed_batch(
        &self,
        batch: &TokenBatch,
        tables: &TokenTables,
        requests: &[Vec<usize>],
        prompt: &PromptSet,
    ) -> Tensor<3> {
        let [b, s] = batch.dims();
        assert_eq!(requests.len(), b, "one request list per window");
        let k = requests.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let p = prompt.tokens();
        let deep = prompt.deep_keys();
        let n = p + s;
        let x = self.embedding.forward_with(batch, tables, 0);
        let [_, _, d] = x.dims();
        let device = x.device();
        let x = match prompt.input_tokens() {
            Some(tokens) => Tensor::cat(vec![tokens.unsqueeze::<3>().expand([b, p, d]), x], 1),
            None => x,
        };
        // Causal over prompt + history, every row sees the deep keys: `[b, n, n + deep]`.
        let mut hidden = vec![true; b * n * (n + deep)];
        for r in 0..b {
            for i in 0..n {
                let row = (r * n + i) * (n + deep);
                hidden[row..row + i + 1].fill(false);
                hidden[row + n..row + n + deep].fill(false);
            }
        }
        let hidden =
            Tensor::<3, Bool>::from_data(TensorData::new(hidden, [b, n, n + deep]), &device);
        let picks = request_rows(batch, requests, k, n, p, &device);
        let read = |x: Tensor<3>| {
            x.reshape([b * n, d])
                .select(0, picks.clone())
                .reshape([b, k, d])
        };
        self.mix_layers_masked(x, hidden, Some(prompt), read)
    }

    /// The layers over an embedded, masked sequence `x` (`[b, n, d]`, `hidden` `[b, n, n +
    /// deep keys]`, true = not seen) with `prompt`'s deep keys, mixing `read`'s rows of the
    /// embedding output and of every layer's output by the learned layer weights, then the
    /// final norm.
    fn mix_layers_masked(
        &self,
        x: Tensor<3>,
        hidden: Tensor<3, Bool>,
        prompt: Option<&PromptSet>,
        read: impl Fn(Tensor<3>) -> Tensor<3>,
    ) -> Tensor<3> {
        let weights = activation::softmax(self.layer_mix.val(), 0);
        let weighted = |l: usize, state: Tensor<3>| {
            let w = weights.clone().slice(l..l + 1).reshape([1, 1, 1]);
            let dims = state.dims();
            state.mul(w.expand(dims))
        };
        let mut mixed = weighted(0, read(x.clone()));
        let mut x = x;
        for (l, block) in self.blocks.iter().enumerate() {
            let extra = prompt.and_then(|pr| pr.layer_keys_values(l, block.attention.n_heads));
            x = block.forward_masked(x, hidden.clone(), extra);
            mixed = mixed + weighted(l + 1, read(x.clone()));
        }
        self.norm.forward(mixed)
    }

    /// Output embeddings of all catalog items (tied with the input item slots): `[n_items, d_model]`.
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

    /// Scores of the given dense item indices against one user representation `[d_model]`:
    /// `[n]` (Encore's fused WGSL kernel on wgpu, burn's select + matmul elsewhere).
    pub fn candidate_scores(&self, user: Tensor<1>, items: Tensor<1, Int>) -> Tensor<1> {
        encore_shaders::candidate_scores(
            self.embedding.item.weight.val(),
            user,
            items.add_scalar(ITEM_OFFSET as i64),
        )
    }

    /// Scores of every catalog item at every token: `[batch, seq, n_items]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = hidden.dims();
        hidden
            .reshape([b * s, d])
            .matmul(self.item_vectors().transpose())
            .reshape([b, s, self.n_items])
    }

    /// The user representation from a [`FoundationModel::forward`] with `last_only`:
    /// `[batch, 1, d_model]` → `[batch, d_model]`.
    pub fn user_representation(&self, last: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = last.dims();
        last.reshape([b, d])
    }

    /// Mean next-item cross-entropy (full softmax over the catalog) over the batch's real
    /// tokens. Returns a scalar tensor `[1]`.
    pub fn next_item_loss(&self, batch: &TokenBatch) -> Tensor<1> {
        let logits = self.logits(self.forward(batch, &self.token_tables(), None, false));
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
