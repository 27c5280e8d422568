//! The token embedding: what (previous item, action, duration, roll-up count), when (hour,
//! weekday, gap), where (surface, device, country) and position, summed.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::events::{Action, DeviceType, MAX_COUNTRIES, Surface};
use crate::tokenizer::{
    COUNT_BUCKETS, DURATION_BUCKETS, GAP_BUCKETS, ITEM_OFFSET, TOKEN_FIELDS, TokenBatch,
};

/// Sizes of the token embedding.
#[derive(Config, Debug)]
pub struct TokenEmbeddingConfig {
    /// Catalog size (the item table has `n_items + 2` rows: padding and start come first).
    pub n_items: usize,
    /// Embedding width.
    pub d_model: usize,
    /// Number of positions.
    pub max_len: usize,
    /// Dropout on the summed embedding.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Standard deviation of the tables' normal initialisation (small, since the item table
    /// doubles as the output layer).
    #[config(default = 0.05)]
    pub init_std: f64,
    /// Use the when/where/action/duration/count fields; `false` keeps only item and position
    /// (an ID-only sequence model).
    #[config(default = true)]
    pub context_features: bool,
    /// Multiply the summed field embeddings by √`d_model` before adding positions (as SASRec
    /// and the Transformer do), so that at initialisation the residual stream carries the
    /// tokens' identity instead of being drowned by the layers' outputs.
    #[config(default = false)]
    pub scale_embedding: bool,
}

impl TokenEmbeddingConfig {
    /// Builds the tables on `device`.
    pub fn init(&self, device: &Device) -> TokenEmbedding {
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.init_std,
        };
        let table = |n: usize| {
            EmbeddingConfig::new(n, self.d_model)
                .with_initializer(init.clone())
                .init(device)
        };
        TokenEmbedding {
            item: table(self.n_items + ITEM_OFFSET as usize),
            action: table(Action::ALL.len() + 1),
            duration: table(DURATION_BUCKETS),
            count: table(COUNT_BUCKETS),
            surface: table(Surface::ALL.len()),
            device_type: table(DeviceType::ALL.len()),
            country: table(MAX_COUNTRIES),
            hour: table(24),
            weekday: table(7),
            gap: table(GAP_BUCKETS),
            position: table(self.max_len),
            dropout: DropoutConfig::new(self.dropout).init(),
            context_features: self.context_features,
            scale_embedding: self.scale_embedding,
        }
    }
}

/// Embedding tables of every token field.
#[derive(Module, Debug)]
pub struct TokenEmbedding {
    /// Item slots (also the output item vectors, tied).
    pub item: Embedding,
    /// Previous action.
    pub action: Embedding,
    /// Previous watch duration (bucket).
    pub duration: Embedding,
    /// Previous roll-up count (bucket).
    pub count: Embedding,
    /// Request surface.
    pub surface: Embedding,
    /// Request device type.
    pub device_type: Embedding,
    /// Request country.
    pub country: Embedding,
    /// Hour of day.
    pub hour: Embedding,
    /// Day of week.
    pub weekday: Embedding,
    /// Gap bucket.
    pub gap: Embedding,
    /// Position in the window.
    pub position: Embedding,
    /// Dropout on the sum.
    pub dropout: Dropout,
    /// Whether the context fields are used (see [`TokenEmbeddingConfig::context_features`]).
    pub context_features: bool,
    /// Whether field embeddings are scaled by √`d_model` (see
    /// [`TokenEmbeddingConfig::scale_embedding`]).
    pub scale_embedding: bool,
}

impl TokenEmbedding {
    /// Input: a batch of `[batch, seq]` tokens and the item slot table `[n_items + 2, d_model]`
    /// (see `FoundationModel::item_table`). Output: `[batch, seq, d_model]`.
    pub fn forward(&self, t: &TokenBatch, item_table: Tensor<2>) -> Tensor<3> {
        self.forward_with(t, &self.tables(item_table), 0)
    }

    /// Every table a token reads, stacked so that its fields are one lookup: the item slot
    /// table first, then (with context features) action, duration, count, surface, device,
    /// country, hour, weekday and gap, in [`TOKEN_FIELDS`] order.
    pub fn tables(&self, item_table: Tensor<2>) -> TokenTables {
        let device = item_table.device();
        let mut parts = vec![item_table];
        if self.context_features {
            for table in [
                &self.action,
                &self.duration,
                &self.count,
                &self.surface,
                &self.device_type,
                &self.country,
                &self.hour,
                &self.weekday,
                &self.gap,
            ] {
                parts.push(table.weight.val());
            }
        }
        let mut offsets = Vec::with_capacity(parts.len());
        let mut rows = 0i64;
        for p in &parts {
            offsets.push(rows);
            rows += p.dims()[0] as i64;
        }
        let n = offsets.len();
        TokenTables {
            table: if n == 1 {
                parts.pop().expect("the item table")
            } else {
                Tensor::cat(parts, 0)
            },
            offsets: Tensor::from_data(TensorData::new(offsets, [1, 1, n]), &device),
        }
    }

    /// What the summed field embeddings are multiplied by before the position is added:
    /// √`d_model` with [`TokenEmbeddingConfig::scale_embedding`], else 1.
    pub fn input_scale(&self, d_model: usize) -> f32 {
        if self.scale_embedding {
            (d_model as f32).sqrt()
        } else {
            1.0
        }
    }

    /// The embedding of tokens whose first one sits at window position `first_position` (0 for
    /// a whole sequence, more for an incremental step after cached tokens), reading `tables`
    /// (from [`TokenEmbedding::tables`]): `[batch, seq]` tokens → `[batch, seq, d_model]`.
    pub fn forward_with(
        &self,
        t: &TokenBatch,
        tables: &TokenTables,
        first_position: usize,
    ) -> Tensor<3> {
        let [b, s] = t.dims();
        let [_, d] = tables.table.dims();
        let k = tables.offsets.dims()[2];
        let fields = if k == TOKEN_FIELDS {
            t.fields.clone()
        } else {
            t.fields.clone().narrow(2, 0, k)
        };
        let rows = (fields + tables.offsets.clone()).reshape([b * s * k]);
        let x = tables
            .table
            .clone()
            .select(0, rows)
            .reshape([b, s, k, d])
            .sum_dim(2)
            .reshape([b, s, d]);
        let x = x.mul_scalar(self.input_scale(d));
        let start = first_position as i64;
        let positions = Tensor::<1, Int>::arange(start..start + s as i64, &tables.table.device())
            .reshape([1, s])
            .expand([b, s]);
        self.dropout.forward(x + self.position.forward(positions))
    }
}

/// A token's embedding tables stacked into one (see [`TokenEmbedding::tables`]). Build it once
/// per set of weights: serving reuses it for every request.
#[derive(Debug, Clone)]
pub struct TokenTables {
    /// `[rows, d_model]`: the item slot table, then the context tables.
    pub table: Tensor<2>,
    /// Row offset of each field's table in `table`: `[1, 1, fields]`.
    pub offsets: Tensor<3, Int>,
}
