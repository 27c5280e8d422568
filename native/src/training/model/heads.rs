//! Auxiliary prediction heads on the hidden state: the target item's genres (multi-label),
//! its action, its watch-duration bucket and the time to the event after it; and their losses.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, activation};

use super::item_encoder::ItemFeatures;
use super::objectives::{ObjectiveConfig, TrainingTargets, weighted_nll};

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

    /// The weighted sum of every switched-on head's loss `[1]`, from the model's hidden states
    /// `[batch·seq, d_model]` (before any normalisation). Each term is averaged over the tokens
    /// that have its label; the genre head needs the items' `features`.
    pub fn loss(
        &self,
        hidden: &Tensor<2>,
        targets: &TrainingTargets,
        features: Option<&ItemFeatures>,
        cfg: &ObjectiveConfig,
    ) -> Tensor<1> {
        let [m, _] = hidden.dims();
        let mut total = Tensor::<1>::zeros([1], &hidden.device());
        let (mask, tokens) = (targets.real.0.clone(), targets.real.1.max(1.0));
        if let (Some(logits), Some(f)) = (Self::logits(&self.genre, hidden), features)
            && cfg.genre_weight > 0.0
        {
            let g = f.n_genres();
            let y = f
                .genres
                .clone()
                .select(0, targets.future_items[0].0.clone());
            // Binary cross-entropy with logits, averaged over genres, masked to real tokens.
            let bce = activation::softplus(logits.clone(), 1.0) - logits.mul(y);
            let per_token = bce.sum_dim(1).reshape([m]).div_scalar(g as f32);
            total = total
                + per_token
                    .mul(mask.clone())
                    .sum()
                    .div_scalar(tokens)
                    .mul_scalar(cfg.genre_weight);
        }
        if let Some(logits) = Self::logits(&self.action, hidden)
            && cfg.action_weight > 0.0
        {
            total = total
                + class_loss(logits, targets.action.clone(), mask.clone(), tokens)
                    .mul_scalar(cfg.action_weight);
        }
        if let Some(logits) = Self::logits(&self.duration, hidden)
            && cfg.duration_weight > 0.0
        {
            total = total
                + class_loss(logits, targets.duration.clone(), mask.clone(), tokens)
                    .mul_scalar(cfg.duration_weight);
        }
        if let Some(logits) = Self::logits(&self.time_to_next, hidden)
            && cfg.time_to_next_weight > 0.0
        {
            let (gap, gap_mask) = &targets.time_to_next;
            let n_gap = targets.n_time_to_next.max(1.0);
            total = total
                + class_loss(logits, gap.clone(), gap_mask.clone(), n_gap)
                    .mul_scalar(cfg.time_to_next_weight);
        }
        total
    }
}

/// Masked mean cross-entropy of class `logits` `[rows, classes]` against `target` `[rows]`.
fn class_loss(logits: Tensor<2>, target: Tensor<1, Int>, mask: Tensor<1>, norm: f32) -> Tensor<1> {
    let [m, _] = logits.dims();
    let picked = activation::log_softmax(logits, 1)
        .gather(1, target.reshape([m, 1]))
        .reshape([m]);
    weighted_nll(picked, mask, norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::model::objectives::ItemDistribution;
    use encore_core::data::catalog::ItemVocabulary;
    use encore_core::data::events::{DeviceType, Event, Surface};
    use encore_core::tokenizer::EventTokenizer;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The action and duration heads' loss is the mean cross-entropy over the tokens that have
    /// a target, each weighted as configured; padding and switched-off heads add nothing.
    #[test]
    fn head_losses_are_weighted_mean_cross_entropies_over_real_tokens() {
        let device = Device::flex();
        let vocab = ItemVocabulary::new((0..6).collect()).unwrap();
        let events = |items: &[u32]| -> Vec<Event> {
            items
                .iter()
                .enumerate()
                .map(|(i, &item)| Event {
                    member: 1,
                    item,
                    timestamp: 10_000 + 3_000 * i as i64,
                    action: Action::ALL[i % Action::ALL.len()],
                    duration_s: 60.0 * (1 + i * i) as f32,
                    surface: Surface::Home,
                    country: "US".into(),
                    device: DeviceType::Tv,
                    rating: None,
                })
                .collect()
        };
        let tokenizer = EventTokenizer::new(8);
        let seqs = [
            tokenizer
                .training_sequence(&vocab, &events(&[1, 2, 3, 4]))
                .unwrap(),
            tokenizer
                .training_sequence(&vocab, &events(&[5, 0]))
                .unwrap(),
        ];
        let cfg = ObjectiveConfig {
            genre_weight: 0.0,
            action_weight: 0.5,
            duration_weight: 0.25,
            time_to_next_weight: 0.0,
            ..Default::default()
        };
        let targets = TrainingTargets::new(
            &seqs,
            &cfg,
            &ItemDistribution::new(vec![1.0 / 6.0; 6]),
            &mut ChaCha8Rng::seed_from_u64(1),
            &device,
        );
        let d = 4;
        let heads = AuxHeadsConfig::new(d, 0).init(&device);
        let (b, s) = (2, 4);
        let hidden = Tensor::<2>::random(
            [b * s, d],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let ours = heads
            .loss(&hidden, &targets, None, &cfg)
            .into_scalar::<f32>();

        // Reference: plain loops over each real token's logits.
        let rows = |head: &Linear| -> Vec<Vec<f32>> {
            let n = head.weight.val().dims()[1];
            head.forward(hidden.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
                .chunks(n)
                .map(<[f32]>::to_vec)
                .collect()
        };
        let nll = |logits: &[f32], class: usize| {
            let max = logits.iter().cloned().fold(f32::MIN, f32::max);
            let lse = max + logits.iter().map(|z| (z - max).exp()).sum::<f32>().ln();
            lse - logits[class]
        };
        let (action, duration) = (
            rows(heads.action.as_ref().unwrap()),
            rows(heads.duration.as_ref().unwrap()),
        );
        let (mut sum_action, mut sum_duration, mut n) = (0f32, 0f32, 0f32);
        for (r, seq) in seqs.iter().enumerate() {
            for (c, token) in seq.tokens.iter().enumerate() {
                let t = token.target.unwrap();
                sum_action += nll(&action[r * s + c], t.action as usize);
                sum_duration += nll(&duration[r * s + c], t.duration as usize);
                n += 1.0;
            }
        }
        assert_eq!(n, 6.0, "four and two real tokens, two padded");
        let reference = 0.5 * sum_action / n + 0.25 * sum_duration / n;
        assert!((ours - reference).abs() < 1e-5, "{ours} vs {reference}");
        // Every head switched off: nothing.
        let off = ObjectiveConfig {
            action_weight: 0.0,
            duration_weight: 0.0,
            ..cfg
        };
        assert_eq!(
            heads
                .loss(&hidden, &targets, None, &off)
                .into_scalar::<f32>(),
            0.0
        );
    }
}
