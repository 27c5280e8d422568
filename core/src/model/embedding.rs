//! The token embedding: what (previous item, action, duration, roll-up count), when (hour,
//! weekday, gap), where (surface, device, country) and position, summed.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::tokenizer::{TOKEN_FIELDS, TokenBatch, TokenField};

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
    #[config(default = true)]
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
        let field = |f: TokenField| table(f.rows(self.n_items));
        TokenEmbedding {
            item: field(TokenField::PrevItem),
            action: field(TokenField::PrevAction),
            duration: field(TokenField::PrevDuration),
            count: field(TokenField::PrevCount),
            surface: field(TokenField::Surface),
            device_type: field(TokenField::Device),
            country: field(TokenField::Country),
            hour: field(TokenField::Hour),
            weekday: field(TokenField::Weekday),
            gap: field(TokenField::Gap),
            position: table(self.max_len),
            dropout: DropoutConfig::new(self.dropout).init(),
            context_features: self.context_features,
            scale_embedding: self.scale_embedding,
        }
    }
}

/// Embedding tables of every token field (one per [`TokenField`], named by
/// [`TokenField::table_name`]) and of the position.
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

    /// The table of one field (the item slot table is the model's own item table, which may
    /// be mixed with content: see `FoundationModel::item_table`).
    pub fn field_table(&self, field: TokenField) -> &Embedding {
        match field {
            TokenField::PrevItem => &self.item,
            TokenField::PrevAction => &self.action,
            TokenField::PrevDuration => &self.duration,
            TokenField::PrevCount => &self.count,
            TokenField::Surface => &self.surface,
            TokenField::Device => &self.device_type,
            TokenField::Country => &self.country,
            TokenField::Hour => &self.hour,
            TokenField::Weekday => &self.weekday,
            TokenField::Gap => &self.gap,
        }
    }

    /// Every table a token reads, stacked so that its fields are one lookup, in
    /// [`TokenField::ALL`] order: `item_table` for the item slot, then (with context features)
    /// the other fields' tables.
    pub fn tables(&self, item_table: Tensor<2>) -> TokenTables {
        let device = item_table.device();
        let mut parts = vec![item_table];
        if self.context_features {
            for &field in &TokenField::ALL[1..] {
                parts.push(self.field_table(field).weight.val());
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
