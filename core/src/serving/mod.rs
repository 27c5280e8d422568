//! The serving description: the model's serving forward written down once, as data.
//!
//! A [`ServingModel`] holds the shape, the token tables and every layer's weights in host
//! memory, built once: straight from a weight file's tensors ([`ServingModel::from_weights`],
//! how the runtime loads a bundle on the CPU) or from a model in burn's form
//! ([`ServingModel::from_model`]); the two are equal bit for bit. [`LayerStep::ORDER`] is the
//! one place that states the order of a layer's steps; every serving engine executes that list
//! over the same weights:
//! the CPU engine (`runtime::engines::cpu`) and the WGSL engine on a plain wgpu device
//! (`runtime::engines::wgsl`). The FLOP count of a rerank ([`ServingModel::rerank_flops`]) is
//! derived from the same steps.
//!
//! The forward: each token's field rows of the stacked token tables are summed, scaled and
//! given their position; then every layer runs [`LayerStep::ORDER`] (pre-norm attention and
//! feed-forward, each with a residual add); the user representation is the final norm of the
//! softmax(`layer_mix`)-weighted sum of the last token's state after the embedding and after
//! every layer; a candidate's score is its dot product with the candidate's item row.
//!
//! [`content_encoder`] holds the item content encoder's serving form: the item vector of a
//! title the bundle does not contain, from its metadata, used both as a candidate's vector and
//! as a history token's item row.

pub mod content_encoder;
mod prompt;
mod ranker;
mod weights;

pub use content_encoder::{
    ContentEncoderSpec, MetadataError, ServingContentEncoder, TitleMetadata,
};
pub use prompt::ServingPrompt;
pub use ranker::{ServingMlpBlock, ServingRanker};
pub use weights::{LinearWeights, NormWeights};

use crate::model::{
    FoundationModel, FoundationModelConfig, LAYER_NORM_EPSILON, TokenTables, host_values,
};
use crate::tokenizer::{ITEM_OFFSET, TOKEN_FIELDS, TokenField};

/// `exp(x − max) / Σ exp(x − max)` of `x`.
fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// One step of a layer's serving forward, in [`LayerStep::ORDER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerStep {
    /// Layer norm of the residual stream before attention ([`ServingLayer::norm_attn`]).
    NormAttn,
    /// Queries, keys and values of the normed tokens, side by side
    /// ([`ServingLayer::query_key_value`]).
    QueryKeyValue,
    /// Causal multi-head attention of the queries over every visible key and value.
    Attention,
    /// The attention output projection, added to the residual stream
    /// ([`ServingLayer::output`]).
    Output,
    /// Layer norm before the feed-forward block ([`ServingLayer::norm_ff`]).
    NormFf,
    /// Feed-forward input projection with GELU ([`ServingLayer::ff_in`]).
    FfIn,
    /// Feed-forward output projection, added to the residual stream ([`ServingLayer::ff_out`]).
    FfOut,
}

impl LayerStep {
    /// The steps of every layer, first to last.
    pub const ORDER: [LayerStep; 7] = [
        LayerStep::NormAttn,
        LayerStep::QueryKeyValue,
        LayerStep::Attention,
        LayerStep::Output,
        LayerStep::NormFf,
        LayerStep::FfIn,
        LayerStep::FfOut,
    ];
}

/// One pre-norm transformer layer's serving weights.
#[derive(Debug, Clone)]
pub struct ServingLayer {
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

impl ServingLayer {
    /// Feed-forward width.
    pub fn d_ff(&self) -> usize {
        self.ff_in.out
    }
}

/// The token embedding's serving weights: the stacked token tables and the positions.
#[derive(Debug, Clone)]
pub struct ServingEmbedding {
    /// Every field's table stacked `[rows, d]`; the item slot table comes first, so its rows
    /// (after the [`ITEM_OFFSET`] special rows) are also the candidates' vectors.
    pub table: Vec<f32>,
    /// Each read field's first row in `table`, in [`TOKEN_FIELDS`] order: all ten fields, or
    /// the item field alone in an ID-only model.
    pub offsets: Vec<usize>,
    /// Position table `[max_len, d]`.
    pub position: Vec<f32>,
    /// Factor on the summed field rows before the position is added (√d or 1).
    pub input_scale: f32,
}

/// The serving forward of one foundation model: shape, embedding, layers, layer mix and final
/// norm, in host memory. Built once per loaded model; engines read it.
#[derive(Debug, Clone)]
pub struct ServingModel {
    /// Width of every hidden state.
    pub d_model: usize,
    /// Attention heads per layer.
    pub n_heads: usize,
    /// The window (tokens).
    pub max_len: usize,
    /// Catalog items scored (item rows).
    pub n_items: usize,
    /// Epsilon of every layer norm.
    pub epsilon: f32,
    /// The token embedding.
    pub embedding: ServingEmbedding,
    /// The layers, first to last.
    pub layers: Vec<ServingLayer>,
    /// softmax(`layer_mix`): the weight of the embedding output and of each layer's output.
    pub mix: Vec<f32>,
    /// The final norm of the mixed state.
    pub norm: NormWeights,
    /// The prompt sets a request may select (see `crate::model::PromptSet`).
    pub prompts: Vec<ServingPrompt>,
}

impl ServingModel {
    /// Reads the serving weights of `model` (an exported or encoder-less model) and its
    /// stacked token `tables` ([`FoundationModel::token_tables`]) into host memory.
    pub fn from_model(model: &FoundationModel, tables: &TokenTables) -> Self {
        let offsets: Vec<usize> = tables
            .offsets
            .clone()
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("offsets are integers")
            .into_iter()
            .map(|o| o as usize)
            .collect();
        let [_, d] = tables.table.dims();
        let norm = NormWeights::from_norm;
        let linear = LinearWeights::from_linear;
        let layers = model
            .blocks
            .iter()
            .map(|b| ServingLayer {
                norm_attn: norm(&b.norm_attn),
                query_key_value: LinearWeights::side_by_side(&[
                    linear(&b.attention.query),
                    linear(&b.attention.key),
                    linear(&b.attention.value),
                ]),
                output: linear(&b.attention.output),
                norm_ff: norm(&b.norm_ff),
                ff_in: linear(&b.ff_in),
                ff_out: linear(&b.ff_out),
            })
            .collect();
        Self {
            d_model: d,
            n_heads: model.blocks.first().map_or(1, |b| b.attention.n_heads),
            max_len: model.embedding.position.weight.val().dims()[0],
            n_items: model.n_items,
            epsilon: LAYER_NORM_EPSILON as f32,
            embedding: ServingEmbedding {
                table: host_values(tables.table.clone()),
                offsets,
                position: host_values(model.embedding.position.weight.val()),
                input_scale: model.embedding.input_scale(d),
            },
            layers,
            // The same host softmax as `from_weights`: a model and its file serve bit for bit
            // alike.
            mix: softmax(&host_values(model.layer_mix.val())),
            norm: norm(&model.norm),
            prompts: Vec::new(),
        }
    }

    /// The serving description of a model of shape `config` read straight from its weights,
    /// without building the model: `weight(name)` gives the values of the tensor of that name
    /// in [`expected_tensors`](crate::weights::expected_tensors) (row-major, of the shape it
    /// lists). Equals [`ServingModel::from_model`] of the model those weights load into.
    pub fn from_weights<'a>(
        config: &FoundationModelConfig,
        weight: impl Fn(&str) -> &'a [f32],
    ) -> Self {
        let d = config.d_model;
        // The stacked token tables: the item table, then (with context features) the other
        // fields' tables, in `TokenField::ALL` order (see `TokenEmbedding::tables`).
        let fields = if config.context_features {
            &TokenField::ALL[..]
        } else {
            &TokenField::ALL[..1]
        };
        let mut table = Vec::new();
        let mut offsets = Vec::with_capacity(fields.len());
        for field in fields {
            offsets.push(table.len() / d);
            table.extend_from_slice(weight(&format!("embedding.{}.weight", field.table_name())));
        }
        let linear = |name: &str, out: usize| LinearWeights {
            weight: weight(&format!("{name}.weight")).to_vec(),
            bias: weight(&format!("{name}.bias")).to_vec(),
            out,
        };
        let norm = |name: &str| NormWeights {
            gamma: weight(&format!("{name}.gamma")).to_vec(),
            beta: weight(&format!("{name}.beta")).to_vec(),
        };
        let layers = (0..config.n_layers)
            .map(|l| {
                let block = |part: &str| format!("blocks.{l}.{part}");
                ServingLayer {
                    norm_attn: norm(&block("norm_attn")),
                    query_key_value: LinearWeights::side_by_side(&[
                        linear(&block("attention.query"), d),
                        linear(&block("attention.key"), d),
                        linear(&block("attention.value"), d),
                    ]),
                    output: linear(&block("attention.output"), d),
                    norm_ff: norm(&block("norm_ff")),
                    ff_in: linear(&block("ff_in"), config.d_ff),
                    ff_out: linear(&block("ff_out"), d),
                }
            })
            .collect();
        Self {
            d_model: d,
            n_heads: config.n_heads,
            max_len: config.max_len,
            n_items: config.n_items,
            epsilon: LAYER_NORM_EPSILON as f32,
            embedding: ServingEmbedding {
                table,
                offsets,
                position: weight("embedding.position.weight").to_vec(),
                input_scale: if config.scale_embedding {
                    (d as f32).sqrt()
                } else {
                    1.0
                },
            },
            layers,
            mix: softmax(weight("layer_mix")),
            norm: norm("norm"),
            prompts: Vec::new(),
        }
    }

    /// The same description with `prompts` selectable.
    pub fn with_prompts(mut self, prompts: &[crate::model::NamedPromptSet]) -> Self {
        self.prompts = prompts.iter().map(ServingPrompt::of).collect();
        self
    }

    /// The index of the prompt set named `name`.
    pub fn prompt_index(&self, name: &str) -> Option<usize> {
        self.prompts.iter().position(|p| p.name == name)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// The candidates' vectors `[n_items, d]`: row `r` scores dense item `r`.
    pub fn item_vectors(&self) -> &[f32] {
        let d = self.d_model;
        let start = ITEM_OFFSET as usize * d;
        &self.embedding.table[start..start + self.n_items * d]
    }

    /// Dense item `row`'s vector `[d]`.
    pub fn item_vector(&self, row: usize) -> &[f32] {
        let d = self.d_model;
        &self.item_vectors()[row * d..(row + 1) * d]
    }

    /// The embedded `tokens` `[m, d]` at positions `first..first + m`: the stacked tables'
    /// rows of each token's read fields summed, scaled by the input scale, plus the position.
    ///
    /// # Panics
    /// If a position lies past the window or a field index past its table.
    pub fn embed_at(&self, tokens: &[[i64; TOKEN_FIELDS]], first: usize) -> Vec<f32> {
        self.embed_with(tokens, first, &[])
    }

    /// [`ServingModel::embed_at`] where item rows past the model's own (field rows from
    /// `n_items + ITEM_OFFSET` on) are rows of `extra` `[k, d]`: the vectors of titles the
    /// model does not contain, described by the request (see `runtime::Candidate`).
    ///
    /// # Panics
    /// As [`ServingModel::embed_at`], or if an item row lies past `extra`.
    #[inline(always)]
    pub fn embed_with(
        &self,
        tokens: &[[i64; TOKEN_FIELDS]],
        first: usize,
        extra: &[f32],
    ) -> Vec<f32> {
        let d = self.d_model;
        let e = &self.embedding;
        let item_rows = self.n_items + ITEM_OFFSET as usize;
        let mut x = vec![0f32; tokens.len() * d];
        let empty: &[f32] = &[];
        for (t, (fields, row)) in tokens.iter().zip(x.chunks_exact_mut(d)).enumerate() {
            // Each read field's row, summed eight columns at a time in registers.
            let mut sources = [empty; TOKEN_FIELDS];
            for (k, ((&f, &offset), source)) in
                fields.iter().zip(&e.offsets).zip(&mut sources).enumerate()
            {
                // The item field comes first (TOKEN_FIELDS order) and its table first in the stack.
                *source = if k == 0 && f as usize >= item_rows {
                    let at = (f as usize - item_rows) * d;
                    &extra[at..at + d]
                } else {
                    let at = (f as usize + offset) * d;
                    &e.table[at..at + d]
                };
            }
            let sources = &sources[..e.offsets.len().min(TOKEN_FIELDS)];
            let at = (first + t) * d;
            let position = &e.position[at..at + d];
            let mut c = 0;
            while c + 32 <= d {
                embed_columns::<4>(sources, c, row, position, e.input_scale);
                c += 32;
            }
            while c + 8 <= d {
                embed_columns::<1>(sources, c, row, position, e.input_scale);
                c += 8;
            }
            for j in c..d {
                let total = sources.iter().fold(0.0, |a, source| a + source[j]);
                row[j] = total * e.input_scale + position[j];
            }
        }
        x
    }

    /// The embedded rows of a stateless forward under the input-form prompt set `prompt`:
    /// `tokens` (the last one the request token) with the prompt's vectors before the request
    /// token, which keeps its position (see `crate::model::PromptSet`): causal attention over
    /// these rows is the prompted forward. `None` for a deep-form prompt (its keys and values
    /// are no rows).
    ///
    /// # Panics
    /// As [`ServingModel::embed_with`], or if `tokens` is empty or `prompt` out of range.
    pub fn embed_with_prompt(
        &self,
        tokens: &[[i64; TOKEN_FIELDS]],
        extra: &[f32],
        prompt: usize,
    ) -> Option<Vec<f32>> {
        let p = &self.prompts[prompt];
        if p.tokens() == 0 {
            return None;
        }
        let n = tokens.len();
        let mut x = self.embed_with(&tokens[..n - 1], 0, extra);
        x.extend_from_slice(&p.input);
        x.extend(self.embed_with(&tokens[n - 1..], n - 1, extra));
        Some(x)
    }

    /// The query rows a layer needs for `m` new tokens: every row but in the last layer, whose
    /// output is read at the last token only (its keys and values are still needed for all).
    pub fn query_rows(&self, layer: usize, m: usize) -> std::ops::Range<usize> {
        if layer + 1 == self.layers.len() {
            m.saturating_sub(1)..m
        } else {
            0..m
        }
    }

    /// Floating-point operations of one rerank that encodes `new` tokens after `cached` ones and
    /// scores `candidates` (multiply-add = 2), counted step by step over [`LayerStep::ORDER`]
    /// for the rows [`ServingModel::query_rows`] gives: projections, attention, feed-forward
    /// and scoring (norms and the embedding are negligible).
    pub fn rerank_flops(&self, cached: usize, new: usize, candidates: usize) -> f64 {
        let d = self.d_model as f64;
        let mut total = 2.0 * d * candidates as f64;
        for (l, layer) in self.layers.iter().enumerate() {
            let rows = self.query_rows(l, new);
            let (q, ff) = (rows.len() as f64, layer.d_ff() as f64);
            // Query row i (at position cached + i) meets cached + i + 1 keys.
            let keys: f64 = rows.clone().map(|i| (cached + i + 1) as f64).sum();
            for step in LayerStep::ORDER {
                total += match step {
                    LayerStep::NormAttn | LayerStep::NormFf => 0.0,
                    // Keys and values for every new token, queries for the rows needed.
                    LayerStep::QueryKeyValue => 2.0 * d * d * (2.0 * new as f64 + q),
                    LayerStep::Attention => 4.0 * d * keys,
                    LayerStep::Output => 2.0 * d * d * q,
                    LayerStep::FfIn | LayerStep::FfOut => 2.0 * d * ff * q,
                };
            }
        }
        total
    }
}

/// Columns `c..c + 8·N` of an embedded row: the `sources` rows summed (in their order), times
/// `scale`, plus `position`. The N groups of eight columns sum side by side, so that the
/// additions of one group do not wait on each other's latency alone.
#[inline(always)]
fn embed_columns<const N: usize>(
    sources: &[&[f32]],
    c: usize,
    row: &mut [f32],
    position: &[f32],
    scale: f32,
) {
    let mut acc = [[0f32; 8]; N];
    for source in sources {
        let source = &source[c..c + 8 * N];
        for (group, values) in acc.iter_mut().zip(source.chunks_exact(8)) {
            for (a, v) in group.iter_mut().zip(values) {
                *a += v;
            }
        }
    }
    let out = row[c..c + 8 * N].chunks_exact_mut(8);
    for ((out, group), position) in out.zip(&acc).zip(position[c..c + 8 * N].chunks_exact(8)) {
        for ((r, a), p) in out.iter_mut().zip(group).zip(position) {
            *r = a * scale + p;
        }
    }
}
