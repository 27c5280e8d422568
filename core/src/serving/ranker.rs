//! The contextual ranker's weights in plain host vectors, as the CPU engine reads them
//! ([`crate::runtime::engines::cpu::ranker_logits`]); the model itself is
//! [`crate::ranker::Ranker`].

use super::{LinearWeights, NormWeights};
use crate::model::{LAYER_NORM_EPSILON, host_values};
use crate::ranker::{Ranker, RankerConfig};

/// One residual MLP block: `x + project(relu(expand(norm(x))))`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingMlpBlock {
    /// The norm before the branch.
    pub norm: NormWeights,
    /// Width → hidden.
    pub expand: LinearWeights,
    /// Hidden → width.
    pub project: LinearWeights,
}

/// A trained ranker's weights (see [`Ranker`] for what each does).
#[derive(Debug, Clone, PartialEq)]
pub struct ServingRanker {
    /// Its shape.
    pub config: RankerConfig,
    /// Layer-norm epsilon.
    pub epsilon: f32,
    /// Task embedding `[n_tasks, e]`.
    pub task: Vec<f32>,
    /// Per context field: its table `[values + 1, e]`.
    pub fields: Vec<Vec<f32>>,
    /// Per imputed field (the context fields, then query, then source): defaults `[n_tasks, e]`.
    pub defaults: Vec<Vec<f32>>,
    /// Query feature table `[buckets, e]`.
    pub query: Vec<f32>,
    /// Source title vector → embedding.
    pub source: LinearWeights,
    /// Candidate vector → embedding.
    pub candidate: LinearWeights,
    /// Dense features → embedding.
    pub dense: LinearWeights,
    /// User representation → embedding.
    pub user: LinearWeights,
    /// Foundation-model score → embedding.
    pub fm_score: LinearWeights,
    /// DCN-V2 cross layers (`W`, `b`).
    pub cross: Vec<LinearWeights>,
    /// Residual MLP blocks.
    pub mlp: Vec<ServingMlpBlock>,
    /// Final projection `[width, 1]`.
    pub out: LinearWeights,
}

impl ServingRanker {
    /// The host weights of `ranker` (shape `config`).
    pub fn from_ranker(ranker: &Ranker, config: &RankerConfig) -> Self {
        let table = |e: &burn::nn::Embedding| host_values(e.weight.val());
        Self {
            config: config.clone(),
            epsilon: LAYER_NORM_EPSILON as f32,
            task: table(&ranker.task),
            fields: ranker.fields.iter().map(table).collect(),
            defaults: ranker.defaults.iter().map(table).collect(),
            query: table(&ranker.query),
            source: LinearWeights::from_linear(&ranker.source),
            candidate: LinearWeights::from_linear(&ranker.candidate),
            dense: LinearWeights::from_linear(&ranker.dense),
            user: LinearWeights::from_linear(&ranker.user),
            fm_score: LinearWeights::from_linear(&ranker.fm_score),
            cross: ranker
                .cross
                .iter()
                .map(|c| LinearWeights::from_linear(&c.map))
                .collect(),
            mlp: ranker
                .mlp
                .iter()
                .map(|b| ServingMlpBlock {
                    norm: NormWeights::from_norm(&b.norm),
                    expand: LinearWeights::from_linear(&b.expand),
                    project: LinearWeights::from_linear(&b.project),
                })
                .collect(),
            out: LinearWeights::from_linear(&ranker.out),
        }
    }

    /// The weights of a ranker of shape `config` read straight from its stored tensors:
    /// `weight(name)` gives the values of the tensor of that name in
    /// [`expected_ranker_tensors`](crate::weights::expected_ranker_tensors). Equals
    /// [`ServingRanker::from_ranker`] of the ranker those tensors load into.
    pub fn from_weights<'a>(config: &RankerConfig, weight: impl Fn(&str) -> &'a [f32]) -> Self {
        let (e, w) = (config.d_embed, config.width());
        let table = |name: &str| weight(&format!("{name}.weight")).to_vec();
        let linear = |name: &str, out: usize| LinearWeights {
            weight: weight(&format!("{name}.weight")).to_vec(),
            bias: weight(&format!("{name}.bias")).to_vec(),
            out,
        };
        Self {
            config: config.clone(),
            epsilon: LAYER_NORM_EPSILON as f32,
            task: table("task"),
            fields: (0..config.context_fields.len())
                .map(|k| table(&format!("fields.{k}")))
                .collect(),
            defaults: (0..config.context_fields.len() + 2)
                .map(|k| table(&format!("defaults.{k}")))
                .collect(),
            query: table("query"),
            source: linear("source", e),
            candidate: linear("candidate", e),
            dense: linear("dense", e),
            user: linear("user", e),
            fm_score: linear("fm_score", e),
            cross: (0..config.n_cross)
                .map(|k| linear(&format!("cross.{k}.map"), w))
                .collect(),
            mlp: (0..config.n_mlp)
                .map(|k| ServingMlpBlock {
                    norm: NormWeights {
                        gamma: weight(&format!("mlp.{k}.norm.gamma")).to_vec(),
                        beta: weight(&format!("mlp.{k}.norm.beta")).to_vec(),
                    },
                    expand: linear(&format!("mlp.{k}.expand"), config.d_hidden),
                    project: linear(&format!("mlp.{k}.project"), w),
                })
                .collect(),
            out: linear("out", 1),
        }
    }

    /// Number of weights.
    pub fn parameter_count(&self) -> usize {
        let linear = |l: &LinearWeights| l.weight.len() + l.bias.len();
        self.task.len()
            + self.fields.iter().map(Vec::len).sum::<usize>()
            + self.defaults.iter().map(Vec::len).sum::<usize>()
            + self.query.len()
            + [
                &self.source,
                &self.candidate,
                &self.dense,
                &self.user,
                &self.fm_score,
                &self.out,
            ]
            .into_iter()
            .map(linear)
            .sum::<usize>()
            + self.cross.iter().map(linear).sum::<usize>()
            + self
                .mlp
                .iter()
                .map(|b| {
                    b.norm.gamma.len() + b.norm.beta.len() + linear(&b.expand) + linear(&b.project)
                })
                .sum::<usize>()
    }

    /// Floating-point operations (2 per multiply-add) of one rerank over `candidates` (one
    /// request), as the CPU engine computes it: the request's own embeddings and the first
    /// cross layer's product of its request columns once; per candidate its embeddings, the
    /// first cross layer's candidate columns (3 embeddings wide), the later cross layers, the
    /// MLP blocks and the output.
    pub fn rerank_flops(&self, candidates: usize) -> f64 {
        let c = &self.config;
        let (e, w) = (c.d_embed, c.width());
        let request = (c.d_item + c.d_user) * e + usize::from(c.n_cross > 0) * (w - 3 * e) * w;
        let per_row = (c.d_item + c.n_dense + 1) * e
            + usize::from(c.n_cross > 0) * 3 * e * w
            + c.n_cross.saturating_sub(1) * w * w
            + c.n_mlp * 2 * w * c.d_hidden
            + w;
        2.0 * (request + candidates * per_row) as f64
    }
}
