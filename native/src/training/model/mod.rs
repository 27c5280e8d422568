//! The training-side model: the foundation model plus what only training needs (the item
//! content encoder and the auxiliary heads), and the objectives. [`TrainingModel::bake`] turns
//! it into the serving [`FoundationModel`] a weight file holds; none of this is compiled into
//! the on-device packages.

mod heads;
mod item_encoder;
pub mod objectives;

pub use heads::{AuxHeads, AuxHeadsConfig};
pub use item_encoder::{ItemEncoder, ItemEncoderConfig, ItemFeatures};
pub use objectives::{LossParts, ObjectiveConfig, TrainingTargets};

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use encore_core::model::l2_normalize;
use encore_core::tokenizer::ITEM_OFFSET;
use encore_core::{FoundationModel, FoundationModelConfig};

/// What is trained: the foundation model's shape and the training-only parts.
#[derive(Config, Debug)]
pub struct TrainingModelConfig {
    /// The foundation model (what is exported).
    pub model: FoundationModelConfig,
    /// Mix content embeddings into the item vectors (exported models carry the mixed vectors).
    #[config(default = "None")]
    pub item_encoder: Option<ItemEncoderConfig>,
    /// Auxiliary heads (not exported).
    #[config(default = "None")]
    pub aux_heads: Option<AuxHeadsConfig>,
    /// Distillation: the teacher's width, for a learned projection of the hidden state onto
    /// the teacher's (not exported). `None`: no projection.
    #[config(default = "None")]
    pub align_to: Option<usize>,
}

impl TrainingModelConfig {
    /// Builds the model with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> TrainingModel {
        TrainingModel {
            model: self.model.init(device),
            item_encoder: self.item_encoder.as_ref().map(|c| c.init(device)),
            heads: self.aux_heads.as_ref().map(|c| c.init(device)),
            align: self
                .align_to
                .map(|d| LinearConfig::new(self.model.d_model, d).init(device)),
        }
    }
}

/// The foundation model with its training-only parts.
#[derive(Module, Debug)]
pub struct TrainingModel {
    /// The foundation model.
    pub model: FoundationModel,
    /// Mixes content into the item vectors.
    pub item_encoder: Option<ItemEncoder>,
    /// Auxiliary heads.
    pub heads: Option<AuxHeads>,
    /// Distillation: projects the hidden state `[.., d_model]` onto the teacher's width.
    pub align: Option<Linear>,
}

impl TrainingModel {
    /// The item slot table `[n_items + 2, d_model]` (padding and start rows first). With an
    /// item encoder and `features`, item rows mix ID and content; otherwise they are the ID rows.
    /// `id_keep` is a training step's ID drop mask (see [`ItemEncoder::draw_id_keep`]).
    pub fn item_table(
        &self,
        features: Option<&ItemFeatures>,
        id_keep: Option<Tensor<2>>,
    ) -> Tensor<2> {
        let w = self.model.item_table();
        match (&self.item_encoder, features) {
            (Some(enc), Some(f)) => {
                let [rows, _] = w.dims();
                let special = w.clone().slice(0..ITEM_OFFSET as usize);
                let ids = w.slice(ITEM_OFFSET as usize..rows);
                Tensor::cat(vec![special, enc.forward(ids, f, id_keep)], 0)
            }
            _ => w,
        }
    }

    /// The serving model: item rows replaced by their mixed ID+content vectors (items never
    /// seen in training get the unknown ID vector), the encoder, heads and projection dropped. With
    /// `normalize`, rows are L2-normalised, as training with normalised vectors saw them.
    pub fn bake(self, features: Option<&ItemFeatures>, normalize: bool) -> FoundationModel {
        let mut table = self.item_table(features, None);
        if normalize {
            table = l2_normalize(table);
        }
        // Detach last: a parameter must be a leaf of the autodiff graph.
        let table = table.detach();
        let mut model = self.model;
        model.embedding.item.weight = Param::from_tensor(table);
        model
    }
}
