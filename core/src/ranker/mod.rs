//! The unified contextual ranker: one model that scores a candidate for any request context —
//! a search query, a "more like this" title, a home row, a kids page — with the foundation
//! model's user representation as an input.
//!
//! - `query` turns query text into hashed word and character-trigram features.
//! - `features` turns a request's context and candidates into rows (training and serving
//!   alike); [`crate::serving::ServingRanker`] holds a trained ranker's weights for the CPU
//!   engine.
//! - `cross` is DCN-V2's cross layer, `mlp` the residual MLP block.
//! - This module holds the features' embeddings (with per-task imputation of absent context)
//!   and the ranker itself: embeddings → cross layers → residual MLP → one logit.
//!
//! **Imputation.** A context field a task lacks (a home row has no query, a search no source
//! title) is not a zero: each field has a learned default per task, used wherever the field is
//! absent.
//!
//! **Personalization.** The user representation and the foundation model's score of the
//! candidate enter through one path scaled by α ∈ [0, 1] per row: α = 0 ranks by relevance
//! alone (the output then does not depend on the member), α = 1 uses the path in full.

pub mod cross;
pub mod features;
pub mod mlp;
pub mod query;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

pub use cross::{CrossLayer, CrossLayerConfig};
pub use features::{
    DescribedRankedTitles, QUERY_FEATURES, RankContext, RankContextError, RankedTitle, RankerRows,
    RankerVocabulary, RequestFeatures,
};
pub use mlp::{ResidualMlpBlock, ResidualMlpBlockConfig};
pub use query::{query_features, query_words};

/// Shape of the [`Ranker`].
#[derive(Config, Debug, PartialEq)]
pub struct RankerConfig {
    /// Tasks the ranker knows (search, more-like-this, home row, kids, …; named by the bundle).
    pub n_tasks: usize,
    /// Values of each categorical context field (country, language, surface, device, hour,
    /// weekday, …); a field's value `v` is given as `v + 1`, 0 meaning absent.
    pub context_fields: Vec<usize>,
    /// Hash buckets of the query features (see [`query_features`]; bucket 0 is padding).
    #[config(default = 4096)]
    pub query_buckets: usize,
    /// Width of the foundation model's item vectors (candidates and the source title).
    pub d_item: usize,
    /// Width of the foundation model's user representation.
    pub d_user: usize,
    /// Dense candidate features (metadata, popularity, query–candidate match).
    pub n_dense: usize,
    /// Width of every feature's embedding; the crossed vector has `(fields + 7) × d_embed`.
    #[config(default = 16)]
    pub d_embed: usize,
    /// DCN-V2 cross layers.
    #[config(default = 2)]
    pub n_cross: usize,
    /// Residual MLP blocks after the cross layers.
    #[config(default = 2)]
    pub n_mlp: usize,
    /// Hidden width of each MLP block.
    #[config(default = 256)]
    pub d_hidden: usize,
    /// Dropout in the MLP blocks during training.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl RankerConfig {
    /// Width of the crossed vector: one embedding per context field, plus task, query,
    /// source, candidate, dense features, user and the foundation model's score.
    pub fn width(&self) -> usize {
        (self.context_fields.len() + 7) * self.d_embed
    }

    /// Builds the ranker on `device`.
    pub fn init(&self, device: &Device) -> Ranker {
        let e = self.d_embed;
        let width = self.width();
        let table = |n: usize| EmbeddingConfig::new(n, e).init(device);
        // One default per task for every field that may be absent: the context fields, the
        // query and the source title.
        let imputed = self.context_fields.len() + 2;
        Ranker {
            task: table(self.n_tasks),
            fields: self.context_fields.iter().map(|&n| table(n + 1)).collect(),
            defaults: (0..imputed).map(|_| table(self.n_tasks)).collect(),
            query: table(self.query_buckets),
            source: LinearConfig::new(self.d_item, e).init(device),
            candidate: LinearConfig::new(self.d_item, e).init(device),
            dense: LinearConfig::new(self.n_dense.max(1), e).init(device),
            user: LinearConfig::new(self.d_user, e).init(device),
            fm_score: LinearConfig::new(1, e).init(device),
            cross: (0..self.n_cross)
                .map(|_| CrossLayerConfig::new(width).init(device))
                .collect(),
            mlp: (0..self.n_mlp)
                .map(|_| {
                    ResidualMlpBlockConfig::new(width, self.d_hidden)
                        .with_dropout(self.dropout)
                        .init(device)
                })
                .collect(),
            out: LinearConfig::new(width, 1).init(device),
        }
    }
}

/// One batch of (request, candidate) rows, `n` rows in all (a request's candidates are
/// consecutive rows repeating its context).
#[derive(Debug, Clone)]
pub struct RankerInput {
    /// Task index per row: `[n]`.
    pub task: Tensor<1, Int>,
    /// Categorical context per row and field (`value + 1`, 0 = absent): `[n, fields]`.
    pub context: Tensor<2, Int>,
    /// Query feature buckets per row (0 = padding; all 0 = no query): `[n, q]`.
    pub query: Tensor<2, Int>,
    /// The source title's item vector (zeros where there is none): `[n, d_item]`.
    pub source: Tensor<2>,
    /// 1 where the row has a source title, 0 where not: `[n]`.
    pub has_source: Tensor<1>,
    /// The candidate's item vector: `[n, d_item]`.
    pub candidate: Tensor<2>,
    /// Dense candidate features: `[n, n_dense]`.
    pub dense: Tensor<2>,
    /// The member's user representation: `[n, d_user]`.
    pub user: Tensor<2>,
    /// The foundation model's score of the candidate for the member: `[n]`.
    pub fm_score: Tensor<1>,
    /// Personalization weight α ∈ [0, 1]: `[n]`.
    pub alpha: Tensor<1>,
}

impl RankerRows {
    /// The rows as the ranker's input on `device` (each request's α repeated over its rows).
    pub fn input(&self, cfg: &RankerConfig, device: &Device) -> RankerInput {
        self.input_with_alpha(cfg, &self.alpha, device)
    }

    /// [`RankerRows::input`] with `alpha` (one per request) in place of the rows' own.
    pub fn input_with_alpha(
        &self,
        cfg: &RankerConfig,
        alpha: &[f32],
        device: &Device,
    ) -> RankerInput {
        let n = self.len();
        let floats = |v: &[f32], cols: usize| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [n, cols]), device)
        };
        let ones = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), device);
        let alpha: Vec<f32> = self
            .sizes
            .iter()
            .zip(alpha)
            .flat_map(|(&s, &a)| std::iter::repeat_n(a, s))
            .collect();
        RankerInput {
            task: Tensor::<1, Int>::from_data(TensorData::new(self.task.clone(), [n]), device),
            context: Tensor::<2, Int>::from_data(
                TensorData::new(self.context.clone(), [n, cfg.context_fields.len()]),
                device,
            ),
            query: Tensor::<2, Int>::from_data(
                TensorData::new(self.query.clone(), [n, QUERY_FEATURES]),
                device,
            ),
            source: floats(&self.source, cfg.d_item),
            has_source: ones(self.has_source.clone()),
            candidate: floats(&self.candidate, cfg.d_item),
            dense: floats(&self.dense, cfg.n_dense),
            user: floats(&self.user, cfg.d_user),
            fm_score: ones(self.fm_score.clone()),
            alpha: ones(alpha),
        }
    }
}

/// The unified contextual ranker (see the module docs).
#[derive(Module, Debug)]
pub struct Ranker {
    /// Task embedding.
    pub task: Embedding,
    /// One table per categorical context field (row 0 unused: absent values are imputed).
    pub fields: Vec<Embedding>,
    /// Per-task defaults: one table per context field, then the query's, then the source's.
    pub defaults: Vec<Embedding>,
    /// Query feature table (mean over the query's features).
    pub query: Embedding,
    /// Source title vector → embedding.
    pub source: Linear,
    /// Candidate item vector → embedding.
    pub candidate: Linear,
    /// Dense candidate features → embedding.
    pub dense: Linear,
    /// User representation → embedding (scaled by α).
    pub user: Linear,
    /// The foundation model's score → embedding (scaled by α).
    pub fm_score: Linear,
    /// DCN-V2 cross layers.
    pub cross: Vec<CrossLayer>,
    /// Residual MLP blocks.
    pub mlp: Vec<ResidualMlpBlock>,
    /// Final projection to one logit.
    pub out: Linear,
}

/// `present ⊙ value + (1 − present) ⊙ default`, rows `[n, e]`, `present` `[n]` of 0/1.
fn impute(value: Tensor<2>, default: Tensor<2>, present: Tensor<1>) -> Tensor<2> {
    let [n, e] = value.dims();
    let p = present.reshape([n, 1]).expand([n, e]);
    let absent = p.clone().neg().add_scalar(1.0);
    value.mul(p).add(default.mul(absent))
}

impl Ranker {
    /// Embedding rows of `table` for `ids` `[n]`: `[n, e]`.
    fn rows(table: &Embedding, ids: Tensor<1, Int>) -> Tensor<2> {
        let [n] = ids.dims();
        let out = table.forward(ids.reshape([1, n]));
        let [_, _, e] = out.dims();
        out.reshape([n, e])
    }

    /// The crossed input vector `x₀` of every row: `[n, width]`.
    pub fn features(&self, input: &RankerInput) -> Tensor<2> {
        let [n] = input.task.dims();
        let task = input.task.clone();
        let default = |k: usize| Self::rows(&self.defaults[k], task.clone());
        let mut parts = vec![Self::rows(&self.task, task.clone())];
        for (k, table) in self.fields.iter().enumerate() {
            let ids = input.context.clone().narrow(1, k, 1).reshape([n]);
            let present = ids.clone().greater_elem(0).float();
            parts.push(impute(Self::rows(table, ids), default(k), present));
        }
        // The query: the mean of its features' embeddings; absent when it has none.
        let k = self.fields.len();
        let [_, q] = input.query.dims();
        let mask = input.query.clone().greater_elem(0).float(); // [n, q]
        let count = mask.clone().sum_dim(1).reshape([n]); // [n]
        let present = count.clone().greater_elem(0.0).float();
        let summed = self
            .query
            .forward(input.query.clone())
            .mul(mask.reshape([n, q, 1]))
            .sum_dim(1);
        let e = summed.dims()[2];
        let mean = summed
            .reshape([n, e])
            .div(count.clamp_min(1.0).reshape([n, 1]).expand([n, e]));
        parts.push(impute(mean, default(k), present));
        parts.push(impute(
            self.source.forward(input.source.clone()),
            default(k + 1),
            input.has_source.clone(),
        ));
        parts.push(self.candidate.forward(input.candidate.clone()));
        parts.push(self.dense.forward(input.dense.clone()));
        let alpha = input.alpha.clone().reshape([n, 1]).expand([n, e]);
        parts.push(self.user.forward(input.user.clone()).mul(alpha.clone()));
        parts.push(
            self.fm_score
                .forward(input.fm_score.clone().reshape([n, 1]))
                .mul(alpha),
        );
        Tensor::cat(parts, 1)
    }

    /// The logit of every row: `[n]` (higher = more likely engaged).
    pub fn forward(&self, input: &RankerInput) -> Tensor<1> {
        let x0 = self.features(input);
        let mut x = x0.clone();
        for layer in &self.cross {
            x = layer.forward(x0.clone(), x);
        }
        for block in &self.mlp {
            x = block.forward(x);
        }
        let [n, _] = x.dims();
        self.out.forward(x).reshape([n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    const D_ITEM: usize = 6;
    const D_USER: usize = 5;

    fn config() -> RankerConfig {
        RankerConfig::new(3, vec![4, 2], D_ITEM, D_USER, 3)
            .with_query_buckets(50)
            .with_d_embed(4)
            .with_d_hidden(8)
            .with_dropout(0.0)
    }

    /// Two rows: the same request and candidate, differing only where `edit` says.
    fn rows(device: &Device, edit: impl Fn(usize, &mut Row)) -> RankerInput {
        let mut all = Vec::new();
        for r in 0..2 {
            let mut row = Row::default();
            edit(r, &mut row);
            all.push(row);
        }
        let ints = |f: &dyn Fn(&Row) -> Vec<i64>, cols: usize| {
            let v: Vec<i64> = all.iter().flat_map(f).collect();
            Tensor::<2, Int>::from_data(TensorData::new(v, [2, cols]), device)
        };
        let floats = |f: &dyn Fn(&Row) -> Vec<f32>, cols: usize| {
            let v: Vec<f32> = all.iter().flat_map(f).collect();
            Tensor::<2>::from_data(TensorData::new(v, [2, cols]), device)
        };
        let ones = |f: &dyn Fn(&Row) -> f32| {
            let v: Vec<f32> = all.iter().map(f).collect();
            Tensor::<1>::from_data(TensorData::new(v, [2]), device)
        };
        RankerInput {
            task: ints(&|r| vec![r.task], 1).reshape([2]),
            context: ints(&|r| r.context.to_vec(), 2),
            query: ints(&|r| r.query.to_vec(), 3),
            source: floats(&|r| r.source.to_vec(), D_ITEM),
            has_source: ones(&|r| r.has_source),
            candidate: floats(&|_| (0..D_ITEM).map(|i| 0.1 * i as f32).collect(), D_ITEM),
            dense: floats(&|_| vec![1.0, 0.0, 0.5], 3),
            user: floats(&|r| r.user.to_vec(), D_USER),
            fm_score: ones(&|r| r.fm_score),
            alpha: ones(&|r| r.alpha),
        }
    }

    #[derive(Clone)]
    struct Row {
        task: i64,
        context: [i64; 2],
        query: [i64; 3],
        source: [f32; D_ITEM],
        has_source: f32,
        user: [f32; D_USER],
        fm_score: f32,
        alpha: f32,
    }

    impl Default for Row {
        fn default() -> Self {
            Self {
                task: 1,
                context: [2, 1],
                query: [7, 9, 0],
                source: [0.3; D_ITEM],
                has_source: 1.0,
                user: [0.5, -0.2, 0.1, 0.9, -0.4],
                fm_score: 1.5,
                alpha: 1.0,
            }
        }
    }

    fn logits(ranker: &Ranker, input: &RankerInput) -> Vec<f32> {
        ranker.forward(input).into_data().try_into_vec().unwrap()
    }

    #[test]
    fn one_logit_per_row_and_the_documented_width() {
        let device = Device::flex();
        let ranker = config().init(&device);
        let input = rows(&device, |_, _| {});
        assert_eq!(ranker.features(&input).dims(), [2, config().width()]);
        assert_eq!(config().width(), (2 + 7) * 4);
        let l = logits(&ranker, &input);
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|v| v.is_finite()));
        assert!((l[0] - l[1]).abs() < 1e-6, "identical rows: {l:?}");
    }

    #[test]
    fn an_absent_field_takes_its_tasks_default() {
        let device = Device::flex();
        let mut ranker = config().init(&device);
        // Row 0: field 0 present with value 1 (id 2); row 1: field 0 absent. Once task 1's
        // default for field 0 is that value's embedding, the rows agree.
        let input = rows(&device, |r, row| {
            if r == 1 {
                row.context[0] = 0;
            }
        });
        let before = logits(&ranker, &input);
        assert!((before[0] - before[1]).abs() > 1e-5, "{before:?}");
        let value = ranker.fields[0].weight.val().slice(2..3);
        let defaults = ranker.defaults[0].weight.val().slice_assign(1..2, value);
        ranker.defaults[0].weight = burn::module::Param::from_tensor(defaults);
        let after = logits(&ranker, &input);
        assert!((after[0] - after[1]).abs() < 1e-5, "{after:?}");
        // The default is the task's: under another task the absent row differs again.
        let other = rows(&device, |r, row| {
            if r == 1 {
                row.context[0] = 0;
                row.task = 2;
            }
        });
        let l = logits(&ranker, &other);
        assert!((l[0] - l[1]).abs() > 1e-5, "{l:?}");
    }

    #[test]
    fn a_query_without_features_and_a_missing_source_are_imputed_not_zeroed() {
        let device = Device::flex();
        let ranker = config().init(&device);
        // No query: padding only. Its value is the task's default, not a zero embedding.
        let no_query = rows(&device, |r, row| {
            if r == 1 {
                row.query = [0; 3];
            }
        });
        let x = ranker.features(&no_query);
        let k = 1 + 2; // task, two fields, then the query
        let got: Vec<f32> = x
            .clone()
            .slice([1..2, k * 4..(k + 1) * 4])
            .into_data()
            .try_into_vec()
            .unwrap();
        let want: Vec<f32> = ranker.defaults[2]
            .weight
            .val()
            .slice(1..2)
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_eq!(got, want);
        // The query is the mean of its features' rows; padding is left out of the mean.
        let q: Vec<f32> = x
            .slice([0..1, k * 4..(k + 1) * 4])
            .into_data()
            .try_into_vec()
            .unwrap();
        let table: Vec<f32> = ranker
            .query
            .weight
            .val()
            .into_data()
            .try_into_vec()
            .unwrap();
        for i in 0..4 {
            let mean = (table[7 * 4 + i] + table[9 * 4 + i]) / 2.0;
            assert!((q[i] - mean).abs() < 1e-6, "{i}: {} vs {mean}", q[i]);
        }
        // No source title: whatever its vector holds, the task's default stands in.
        let no_source = rows(&device, |r, row| {
            row.has_source = 0.0;
            if r == 1 {
                row.source = [9.0; D_ITEM];
            }
        });
        let l = logits(&ranker, &no_source);
        assert!((l[0] - l[1]).abs() < 1e-6, "{l:?}");
    }

    #[test]
    fn alpha_zero_ranks_without_the_member() {
        let device = Device::flex();
        let ranker = config().init(&device);
        let other_member = |alpha: f32| {
            rows(&device, move |r, row| {
                row.alpha = alpha;
                if r == 1 {
                    row.user = [-1.0, 2.0, 0.0, 0.3, 1.0];
                    row.fm_score = -3.0;
                }
            })
        };
        let l = logits(&ranker, &other_member(0.0));
        assert!((l[0] - l[1]).abs() < 1e-6, "α = 0: {l:?}");
        let l = logits(&ranker, &other_member(1.0));
        assert!((l[0] - l[1]).abs() > 1e-4, "α = 1: {l:?}");
    }
}
