//! Auxiliary prediction heads on the hidden state: the target item's genres (multi-label),
//! its action, its watch-duration bucket and the time to the event after it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use encore_core::data::events::Action;
use encore_core::tokenizer::{DURATION_BUCKETS, GAP_BUCKETS};

/// Which auxiliary heads exist.
#[derive(Config, Debug, PartialEq)]
pub struct AuxHeadsConfig {
    /// Model width.
    pub d_model: usize,
    /// Genre columns (0: no genre head).
    pub n_genres: usize,
    /// Predict the target's action.
    #[config(default = true)]
    pub action: bool,
    /// Predict the target's duration bucket.
    #[config(default = true)]
    pub duration: bool,
    /// Predict the gap bucket to the next event.
    #[config(default = true)]
    pub time_to_next: bool,
}

impl AuxHeadsConfig {
    /// Builds the heads on `device`.
    pub fn init(&self, device: &Device) -> AuxHeads {
        let head = |on: bool, n: usize| on.then(|| LinearConfig::new(self.d_model, n).init(device));
        AuxHeads {
            genre: head(self.n_genres > 0, self.n_genres),
            action: head(self.action, Action::ALL.len()),
            duration: head(self.duration, DURATION_BUCKETS),
            time_to_next: head(self.time_to_next, GAP_BUCKETS),
        }
    }
}

/// Linear heads from a hidden state `[tokens, d_model]` to per-head logits.
#[derive(Module, Debug)]
pub struct AuxHeads {
    /// Genre logits `[tokens, n_genres]` (multi-label).
    pub genre: Option<Linear>,
    /// Action logits `[tokens, 3]`.
    pub action: Option<Linear>,
    /// Duration-bucket logits `[tokens, DURATION_BUCKETS]`.
    pub duration: Option<Linear>,
    /// Time-to-next-bucket logits `[tokens, GAP_BUCKETS]`.
    pub time_to_next: Option<Linear>,
}

impl AuxHeads {
    /// Logits of one head, if it exists: `[tokens, classes]`.
    pub fn logits(head: &Option<Linear>, hidden: &Tensor<2>) -> Option<Tensor<2>> {
        head.as_ref().map(|h| h.forward(hidden.clone()))
    }
}
