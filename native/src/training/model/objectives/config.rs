//! Every objective's switch and weight, as the `[training.objectives]` table gives them.

use encore_core::data::events::Action;
use serde::{Deserialize, Serialize};

/// How the next-item softmax is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoftmaxKind {
    /// Over every catalog item (best for small catalogs).
    Full,
    /// Over the target, `uniform_negatives` uniformly drawn items and `in_batch_negatives`
    /// other targets of the batch, each logit corrected by −log Q (its expected count).
    Sampled,
}

/// Loss weight of an event by its action (a trailer view counts less than a play).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventWeights {
    /// Weight of a play.
    pub play: f32,
    /// Weight of a trailer view.
    pub trailer: f32,
    /// Weight of an add-to-list.
    pub add_to_list: f32,
}

impl Default for EventWeights {
    fn default() -> Self {
        Self {
            play: 1.0,
            trailer: 0.3,
            add_to_list: 0.6,
        }
    }
}

impl EventWeights {
    /// Every action weighs 1.
    pub const EQUAL: Self = Self {
        play: 1.0,
        trailer: 1.0,
        add_to_list: 1.0,
    };

    /// The weight of an action.
    pub fn of(&self, a: Action) -> f32 {
        match a {
            Action::Play => self.play,
            Action::Trailer => self.trailer,
            Action::AddToList => self.add_to_list,
        }
    }
}

/// Every objective's switch and weight. Defaults: full softmax, next 3 items (decay 1 day),
/// all auxiliary heads at small weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// Full or sampled softmax.
    pub softmax: SoftmaxKind,
    /// Uniform negatives per batch (sampled softmax).
    pub uniform_negatives: usize,
    /// Other targets of the batch used as negatives (sampled softmax; 0 = none).
    pub in_batch_negatives: usize,
    /// Logits are divided by this.
    pub temperature: f64,
    /// L2-normalise hidden states and item vectors before the dot product.
    pub normalize: bool,
    /// Items predicted at each token (1 = next item only; K > 1 adds multi-token prediction).
    pub mtp_items: usize,
    /// Weight of the multi-token terms (items 2…K, averaged) relative to the next item.
    pub mtp_weight: f64,
    /// The k-th future item's term is weighted by exp(−Δt / decay), Δt its time after the next item.
    pub mtp_decay_hours: f64,
    /// Weight of the genre head (0 = off).
    pub genre_weight: f64,
    /// Weight of the action head (0 = off).
    pub action_weight: f64,
    /// Weight of the duration head (0 = off).
    pub duration_weight: f64,
    /// Weight of the time-to-next head (0 = off).
    pub time_to_next_weight: f64,
    /// Per-event loss weights by action.
    pub event_weights: EventWeights,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            softmax: SoftmaxKind::Full,
            uniform_negatives: 128,
            in_batch_negatives: 0,
            temperature: 1.0,
            normalize: false,
            mtp_items: 3,
            mtp_weight: 0.3,
            mtp_decay_hours: 24.0,
            genre_weight: 0.1,
            action_weight: 0.05,
            duration_weight: 0.05,
            time_to_next_weight: 0.05,
            event_weights: EventWeights::default(),
        }
    }
}

impl ObjectiveConfig {
    /// True when any auxiliary head is on.
    pub fn any_aux(&self) -> bool {
        self.genre_weight > 0.0
            || self.action_weight > 0.0
            || self.duration_weight > 0.0
            || self.time_to_next_weight > 0.0
    }
}
