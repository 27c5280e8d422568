//! The token embedding: what (previous item, action, duration, roll-up count), when (hour,
//! weekday, gap), where (surface, device, country) and position, summed.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer};
use burn::tensor::{Device, Int, Tensor};

use crate::data::events::{Action, DeviceType, MAX_COUNTRIES, Surface};
use crate::tokenizer::{COUNT_BUCKETS, DURATION_BUCKETS, GAP_BUCKETS, ITEM_OFFSET, TokenBatch};

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
}

impl TokenEmbedding {
    /// Input: a batch of `[batch, seq]` token fields and the item slot table
    /// `[n_items + 2, d_model]` (see `FoundationModel::item_table`). Output: `[batch, seq, d_model]`.
    pub fn forward(&self, t: &TokenBatch, item_table: Tensor<2>) -> Tensor<3> {
        self.forward_at(t, item_table, 0)
    }

    /// Same as [`TokenEmbedding::forward`] for tokens whose first one sits at window position
    /// `first_position` (an incremental step after cached tokens).
    pub fn forward_at(
        &self,
        t: &TokenBatch,
        item_table: Tensor<2>,
        first_position: usize,
    ) -> Tensor<3> {
        let [b, s] = t.prev_item.dims();
        let [_, d] = item_table.dims();
        let device = t.prev_item.device();
        let start = first_position as i64;
        let positions = Tensor::<1, Int>::arange(start..start + s as i64, &device)
            .reshape([1, s])
            .expand([b, s]);
        let items = item_table
            .select(0, t.prev_item.clone().reshape([b * s]))
            .reshape([b, s, d]);
        let mut x = items + self.position.forward(positions);
        if self.context_features {
            x = x
                + self.action.forward(t.prev_action.clone())
                + self.duration.forward(t.prev_duration.clone())
                + self.count.forward(t.prev_count.clone())
                + self.surface.forward(t.surface.clone())
                + self.device_type.forward(t.device.clone())
                + self.country.forward(t.country.clone())
                + self.hour.forward(t.hour.clone())
                + self.weekday.forward(t.weekday.clone())
                + self.gap.forward(t.gap.clone());
        }
        self.dropout.forward(x)
    }
}
