//! Item vectors from ID and content: a learned ID embedding mixed with a content embedding
//! (genres, kind, language, release year and, where given, an external text vector) by a gate
//! that depends on the item's age in the catalog. Items never seen in training, and a random
//! share of items at every training step, use a learned "unknown" vector in place of their ID
//! embedding, mixed with their content by a gate of their own (the unknown-ID gate), so titles
//! that arrive after training still get a useful vector: the dropped items train that gate and
//! the content path as the only source of what tells one such title from another.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData, activation};

use encore_core::data::catalog::{Catalog, ItemKind};
use encore_core::model::host_values;
use encore_core::serving::{ContentEncoderSpec, LinearWeights, ServingContentEncoder};

pub use encore_core::serving::content_encoder::{
    AGE_BUCKETS, LANGUAGE_BUCKETS, YEAR_BUCKETS, age_bucket, language_bucket, year_bucket,
};

/// The fixed (not learned) per-item inputs of the [`ItemEncoder`], in catalog row order.
#[derive(Debug, Clone)]
pub struct ItemFeatures {
    /// External content vectors `[n_items, content_dim]`, if the catalog has them.
    pub content: Option<Tensor<2>>,
    /// Genre multi-hot `[n_items, n_genres]`.
    pub genres: Tensor<2>,
    /// Item kind index `[n_items]`.
    pub kind: Tensor<1, Int>,
    /// Language bucket `[n_items]`.
    pub language: Tensor<1, Int>,
    /// Release-year bucket `[n_items]`.
    pub year: Tensor<1, Int>,
    /// Age bucket at the reference time `[n_items]`.
    pub age: Tensor<1, Int>,
    /// 1 for items with training events, 0 for items the model never saw `[n_items, 1]`.
    pub seen: Tensor<2>,
}

impl ItemFeatures {
    /// Features of `catalog` at time `reference_time` (ages are measured to it); `seen[i]`
    /// says whether row `i` has training events.
    pub fn new(catalog: &Catalog, seen: &[bool], reference_time: i64, device: &Device) -> Self {
        let n = catalog.len();
        assert_eq!(seen.len(), n, "one seen flag per catalog item");
        let g = catalog.genres.len().max(1);
        let mut genres = vec![0f32; n * g];
        for (i, item) in catalog.items.iter().enumerate() {
            for &k in &item.genres {
                genres[i * g + k as usize] = 1.0;
            }
        }
        let ints = |f: &dyn Fn(usize) -> u32| {
            let v: Vec<i64> = (0..n).map(|i| i64::from(f(i))).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        let dim = catalog
            .items
            .first()
            .and_then(|i| i.content.as_ref())
            .map_or(0, Vec::len);
        let content = (dim > 0
            && catalog
                .items
                .iter()
                .all(|i| i.content.as_ref().is_some_and(|c| c.len() == dim)))
        .then(|| {
            let flat: Vec<f32> = catalog
                .items
                .iter()
                .flat_map(|i| i.content.clone().expect("checked"))
                .collect();
            Tensor::<2>::from_data(TensorData::new(flat, [n, dim]), device)
        });
        Self {
            content,
            genres: Tensor::from_data(TensorData::new(genres, [n, g]), device),
            kind: ints(&|i| catalog.items[i].kind.index() as u32),
            language: ints(&|i| language_bucket(&catalog.items[i].language)),
            year: ints(&|i| year_bucket(catalog.items[i].release_year)),
            age: ints(&|i| age_bucket(reference_time.saturating_sub(catalog.items[i].added_at))),
            seen: Tensor::from_data(
                TensorData::new(
                    seen.iter().map(|&s| if s { 1f32 } else { 0.0 }).collect(),
                    [n, 1],
                ),
                device,
            ),
        }
    }

    /// Width of the content vectors (0 when there are none).
    pub fn content_dim(&self) -> usize {
        self.content.as_ref().map_or(0, |c| c.dims()[1])
    }

    /// Number of genre columns.
    pub fn n_genres(&self) -> usize {
        self.genres.dims()[1]
    }
}

/// Sizes and training behaviour of the [`ItemEncoder`].
#[derive(Config, Debug, PartialEq)]
pub struct ItemEncoderConfig {
    /// Output width (the model width).
    pub d_model: usize,
    /// Genre columns of [`ItemFeatures::genres`].
    pub n_genres: usize,
    /// Width of the external content vectors (0: none).
    #[config(default = 0)]
    pub content_dim: usize,
    /// Share of items whose ID embedding is replaced by the unknown vector at each training step.
    #[config(default = 0.1)]
    pub unknown_id_rate: f64,
}

impl ItemEncoderConfig {
    /// Builds the encoder on `device`.
    pub fn init(&self, device: &Device) -> ItemEncoder {
        let small = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let table = |n: usize| {
            EmbeddingConfig::new(n, self.d_model)
                .with_initializer(small.clone())
                .init(device)
        };
        ItemEncoder {
            content: (self.content_dim > 0).then(|| {
                LinearConfig::new(self.content_dim, self.d_model)
                    .with_initializer(small.clone())
                    .init(device)
            }),
            genre: LinearConfig::new(self.n_genres, self.d_model)
                .with_bias(false)
                .with_initializer(small.clone())
                .init(device),
            kind: table(ItemKind::ALL.len()),
            language: table(LANGUAGE_BUCKETS),
            year: table(YEAR_BUCKETS),
            gate: EmbeddingConfig::new(AGE_BUCKETS, 1)
                .with_initializer(Initializer::Constant { value: 1.0 })
                .init(device),
            unknown_gate: Param::from_tensor(Tensor::zeros([1], device)),
            unknown: Param::from_tensor(Tensor::random(
                [1, self.d_model],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            unknown_id_rate: self.unknown_id_rate,
        }
    }
}

/// Mixes ID and content embeddings into each item's vector.
#[derive(Module, Debug)]
pub struct ItemEncoder {
    /// Projection of the external content vector (absent when the catalog has none).
    pub content: Option<Linear>,
    /// Projection of the genre multi-hot.
    pub genre: Linear,
    /// Item kind.
    pub kind: Embedding,
    /// Language bucket.
    pub language: Embedding,
    /// Release-year bucket.
    pub year: Embedding,
    /// Gate logit per age bucket for items with an ID embedding: σ(gate) is its share.
    pub gate: Embedding,
    /// Gate logit `[1]` for items without one (unseen, or dropped at this step): σ is the
    /// unknown vector's share, the rest is the content embedding's (initially ½ each).
    pub unknown_gate: Param<Tensor<1>>,
    /// The ID embedding of items the model has not seen.
    pub unknown: Param<Tensor<2>>,
    /// Training-time ID drop rate.
    pub unknown_id_rate: f64,
}

impl ItemEncoder {
    /// The serving form of this encoder for a catalog with these `genres` (names in genre
    /// order); `normalize` as the model's item rows are normalised; ages measured to
    /// `reference_time` (the [`ItemFeatures`]' own). It gives a title without an ID embedding
    /// the vector [`ItemEncoder::forward`] gives an unseen item: its per-age gate holds the
    /// unknown-ID gate in every age bucket.
    pub fn serving(
        &self,
        genres: &[String],
        normalize: bool,
        reference_time: i64,
    ) -> ServingContentEncoder {
        let d = self.unknown.val().dims()[1];
        ServingContentEncoder {
            spec: ContentEncoderSpec {
                d_model: d,
                genres: genres.to_vec(),
                content_dim: self
                    .content
                    .as_ref()
                    .map_or(0, |c| c.weight.val().dims()[0]),
                normalize,
                reference_time,
            },
            genre: host_values(self.genre.weight.val()),
            kind: host_values(self.kind.weight.val()),
            language: host_values(self.language.weight.val()),
            year: host_values(self.year.weight.val()),
            gate: vec![host_values(self.unknown_gate.val())[0]; AGE_BUCKETS],
            unknown: host_values(self.unknown.val()),
            content: self.content.as_ref().map(|c| LinearWeights {
                weight: host_values(c.weight.val()),
                bias: c
                    .bias
                    .as_ref()
                    .map_or_else(|| vec![0.0; d], |b| host_values(b.val())),
                out: d,
            }),
            unknown_share: None,
        }
    }

    /// A training step's ID keep mask `[n_items, 1]`: each item's ID row is dropped with
    /// probability `unknown_id_rate`, drawn from `rng` (so runs and resumes are reproducible).
    pub fn draw_id_keep(
        &self,
        n_items: usize,
        rng: &mut impl rand::RngExt,
        device: &Device,
    ) -> Tensor<2> {
        let keep: Vec<f32> = (0..n_items)
            .map(|_| {
                if rng.random_bool(self.unknown_id_rate.clamp(0.0, 1.0)) {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        Tensor::from_data(TensorData::new(keep, [n_items, 1]), device)
    }

    /// The content embedding alone: `[n_items, d_model]`.
    pub fn content_vectors(&self, f: &ItemFeatures) -> Tensor<2> {
        let n = f.kind.dims()[0];
        let mut x = self.genre.forward(f.genres.clone())
            + squeeze(self.kind.forward(f.kind.clone().reshape([1, n])))
            + squeeze(self.language.forward(f.language.clone().reshape([1, n])))
            + squeeze(self.year.forward(f.year.clone().reshape([1, n])));
        if let (Some(proj), Some(c)) = (&self.content, &f.content) {
            x = x + proj.forward(c.clone());
        }
        x
    }

    /// Item vectors `[n_items, d_model]` from the ID rows `[n_items, d_model]`: an item with an
    /// ID embedding mixes it with its content by its age bucket's gate; an item without one
    /// (unseen, or dropped) mixes the unknown vector with its content by the unknown-ID gate.
    /// In training, `id_keep` `[n_items, 1]` (see [`ItemEncoder::draw_id_keep`]) is 0 for the
    /// items whose ID row is replaced by the unknown vector at this step.
    pub fn forward(
        &self,
        id_rows: Tensor<2>,
        f: &ItemFeatures,
        id_keep: Option<Tensor<2>>,
    ) -> Tensor<2> {
        let [n, d] = id_rows.dims();
        let mut keep = f.seen.clone();
        if let Some(k) = id_keep {
            keep = keep.mul(k);
        }
        let unknown = self.unknown.val().expand([n, d]);
        let dropped = keep.clone().neg().add_scalar(1.0);
        let ids = id_rows.mul(keep.clone()) + unknown.mul(dropped.clone());
        let n_age = f.age.dims()[0];
        let by_age = activation::sigmoid(squeeze(
            self.gate.forward(f.age.clone().reshape([1, n_age])),
        ));
        let unknown_share = activation::sigmoid(self.unknown_gate.val())
            .reshape([1, 1])
            .expand([n, 1]);
        let g = by_age.mul(keep) + unknown_share.mul(dropped);
        ids.mul(g.clone()) + self.content_vectors(f).mul(g.neg().add_scalar(1.0))
    }
}

fn squeeze(x: Tensor<3>) -> Tensor<2> {
    let [_, n, d] = x.dims();
    x.reshape([n, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use encore_core::data::catalog::Item;

    fn catalog() -> Catalog {
        let item = |id: u32, genres: Vec<u8>, year: u16, content: f32| Item {
            id,
            title: format!("t{id}"),
            kind: ItemKind::Movie,
            genres,
            language: "en".into(),
            release_year: year,
            added_at: 0,
            content: Some(vec![content, 1.0 - content, 0.5]),
        };
        Catalog::new(
            vec!["a".into(), "b".into()],
            vec![
                item(1, vec![0], 1990, 0.1),
                item(2, vec![1], 2001, 0.9),
                item(3, vec![0, 1], 1950, 0.4),
            ],
        )
        .unwrap()
    }

    #[test]
    fn unseen_items_do_not_depend_on_their_id_rows_and_seen_items_do() {
        let device = Device::flex();
        let f = ItemFeatures::new(&catalog(), &[true, true, false], 86_400 * 30, &device);
        assert_eq!(f.content_dim(), 3);
        let enc = ItemEncoderConfig::new(4, 2)
            .with_content_dim(3)
            .init(&device);
        let ids = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let other = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let a = enc
            .forward(ids, &f, None)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = enc
            .forward(other, &f, None)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for j in 0..4 {
            assert_eq!(a[8 + j], b[8 + j], "unseen item 3 uses the unknown vector");
            assert_ne!(a[j], b[j], "seen item 1 uses its ID row");
        }
        // Items with different content get different vectors even when both are unseen.
        let f2 = ItemFeatures::new(&catalog(), &[false, false, false], 0, &device);
        let zeros = Tensor::<2>::zeros([3, 4], &device);
        let c = enc
            .forward(zeros, &f2, None)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!((0..4).any(|j| (c[j] - c[4 + j]).abs() > 1e-6));
    }

    #[test]
    fn items_without_an_id_row_mix_by_the_unknown_id_gate_and_the_others_by_their_age_gate() {
        let device = Device::flex();
        let f = ItemFeatures::new(&catalog(), &[true, true, false], 86_400 * 30, &device);
        let mut enc = ItemEncoderConfig::new(4, 2)
            .with_content_dim(3)
            .init(&device);
        let (unknown_logit, age_logit) = (-1.5f32, 2.0f32);
        enc.unknown_gate = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![unknown_logit], [1]),
            &device,
        ));
        enc.gate.weight = Param::from_tensor(Tensor::full([AGE_BUCKETS, 1], age_logit, &device));
        let ids = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let id_rows = host_values(ids.clone());
        let content = host_values(enc.content_vectors(&f));
        let unknown = host_values(enc.unknown.val());
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        // Item 2 is dropped at this step, item 3 was never seen: both take the unknown gate.
        let keep = Tensor::<2>::from_data(TensorData::new(vec![1f32, 0.0, 1.0], [3, 1]), &device);
        let out = host_values(enc.forward(ids, &f, Some(keep)));
        for j in 0..4 {
            let with_id = sigmoid(age_logit) * id_rows[j] + (1.0 - sigmoid(age_logit)) * content[j];
            assert!((out[j] - with_id).abs() < 1e-5, "item 1, value {j}");
            for i in [1, 2] {
                let g = sigmoid(unknown_logit);
                let without = g * unknown[j] + (1.0 - g) * content[i * 4 + j];
                assert!(
                    (out[i * 4 + j] - without).abs() < 1e-5,
                    "item {}, value {j}",
                    i + 1
                );
            }
        }
        // The serving form holds the unknown-ID gate in every age bucket.
        let serving = enc.serving(&["a".into(), "b".into()], false, 86_400 * 30);
        assert_eq!(serving.gate, vec![unknown_logit; AGE_BUCKETS]);
    }
}
