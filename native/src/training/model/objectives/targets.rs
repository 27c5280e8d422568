//! A training batch's targets, built on the host from the tokens' targets and uploaded: the
//! next item and the K−1 after it (multi-token prediction, weighted by a time decay and the
//! per-event weights), the auxiliary heads' labels, and sampled softmax's negatives.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::RngExt;

use super::config::{ObjectiveConfig, SoftmaxKind};
use super::sampling::{ItemDistribution, NegativeSampler};
use crate::training::distill::TeacherTargets;
use crate::training::model::TrainingModel;
use encore_core::data::events::Action;
use encore_core::tokenizer::{TokenBatch, TokenSequence};

/// The targets of one training batch, built on the host and uploaded.
#[derive(Debug, Clone)]
pub struct TrainingTargets {
    /// Per future offset k = 1…K: dense target `[batch·seq]` and weight `[batch·seq]`.
    pub future_items: Vec<(Tensor<1, Int>, Tensor<1>)>,
    /// Target action `[batch·seq]`.
    pub action: Tensor<1, Int>,
    /// Target duration bucket `[batch·seq]`.
    pub duration: Tensor<1, Int>,
    /// Gap bucket to the event after the target `[batch·seq]`, and its mask.
    pub time_to_next: (Tensor<1, Int>, Tensor<1>),
    /// Sum of the next-item weights (the loss normaliser).
    pub weight_sum: f32,
    /// 1 on tokens with a target `[batch·seq]`, and their number.
    pub real: (Tensor<1>, f32),
    /// Number of tokens with a time-to-next target.
    pub n_time_to_next: f32,
    /// The step's ID drop mask for the item encoder (see [`TrainingTargets::with_id_drops`]).
    pub id_keep: Option<Tensor<2>>,
    /// Sampled softmax only: each sequence's own negative item indices `[batch, R]` and their
    /// log Q `[batch, R]`.
    pub negatives: Option<(Tensor<2, Int>, Tensor<2>)>,
    /// Sampled softmax only: log Q of each token's k-th target, per k `[batch·seq]`.
    pub target_log_q: Vec<Tensor<1>>,
    /// Full softmax only, when some items had not arrived by the end of the training data:
    /// −1e9 for those items, 0 for the others `[n_items]`, added to every logit row.
    pub absent: Option<Tensor<1>>,
    /// Distillation only: the teacher's outputs for the batch.
    pub teacher: Option<TeacherTargets>,
}

impl TrainingTargets {
    /// Targets for `seqs` padded like [`TokenBatch::new`]. `distribution` holds each item's
    /// share of the training targets (for log Q) and the items that had arrived by the end of
    /// the training data: uniform negatives are drawn among them, and a full softmax runs over
    /// them alone. `rng` draws the sampled negatives.
    pub fn new(
        seqs: &[TokenSequence],
        cfg: &ObjectiveConfig,
        distribution: &ItemDistribution,
        rng: &mut impl RngExt,
        device: &Device,
    ) -> Self {
        let (b, s) = (seqs.len(), TokenBatch::padded_len(seqs));
        let m = b * s;
        let k_max = cfg.mtp_items.max(1);
        let decay_s = (cfg.mtp_decay_hours * 3600.0).max(1e-9);
        let mut items = vec![(vec![0i64; m], vec![0f32; m]); k_max];
        let mut action = vec![0i64; m];
        let mut duration = vec![0i64; m];
        let mut gap = vec![0i64; m];
        let mut gap_mask = vec![0f32; m];
        let mut real = vec![0f32; m];
        for (r, seq) in seqs.iter().enumerate() {
            for (c, token) in seq.tokens.iter().enumerate() {
                let Some(t) = &token.target else { continue };
                let i = r * s + c;
                real[i] = 1.0;
                items[0].0[i] = i64::from(t.item);
                items[0].1[i] = cfg.event_weights.of(Action::ALL[t.action as usize]);
                for (k, slot) in items.iter_mut().enumerate().skip(1) {
                    if let Some(future) = seq.tokens.get(c + k).and_then(|f| f.target.as_ref()) {
                        let dt = future.timestamp.saturating_sub(t.timestamp).max(0) as f64;
                        let fw = cfg.event_weights.of(Action::ALL[future.action as usize]);
                        slot.0[i] = i64::from(future.item);
                        slot.1[i] = fw * (-dt / decay_s).exp() as f32;
                    }
                }
                action[i] = i64::from(t.action);
                duration[i] = i64::from(t.duration);
                if t.next_gap > 0 {
                    gap[i] = i64::from(t.next_gap);
                    gap_mask[i] = 1.0;
                }
            }
        }
        let weight_sum = items[0].1.iter().sum::<f32>();
        let n_real = real.iter().sum::<f32>();
        let n_time_to_next = gap_mask.iter().sum::<f32>();
        let ints = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [m]), device);
        let floats = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [m]), device);
        let absent = distribution
            .absent_bias()
            .filter(|_| cfg.softmax == SoftmaxKind::Full)
            .map(|bias| {
                Tensor::<1>::from_data(TensorData::new(bias.to_vec(), [bias.len()]), device)
            });
        let (mut negatives, mut target_log_q) = (None, Vec::new());
        if cfg.softmax == SoftmaxKind::Sampled {
            let real_targets: Vec<i64> = items[0]
                .0
                .iter()
                .zip(&items[0].1)
                .filter(|&(_, &w)| w > 0.0)
                .map(|(&t, _)| t)
                .collect();
            let sampler = NegativeSampler::new(
                cfg.uniform_negatives,
                cfg.in_batch_negatives,
                real_targets.len(),
                distribution,
            );
            let r = sampler.per_sequence();
            let neg = sampler.draw(b, &real_targets, rng);
            let neg_q: Vec<f32> = neg.iter().map(|&j| sampler.log_q(j as usize)).collect();
            negatives = Some((
                Tensor::<2, Int>::from_data(TensorData::new(neg, [b, r]), device),
                Tensor::<2>::from_data(TensorData::new(neg_q, [b, r]), device),
            ));
            target_log_q = items
                .iter()
                .map(|(t, _)| floats(t.iter().map(|&j| sampler.log_q(j as usize)).collect()))
                .collect();
        }
        Self {
            future_items: items
                .into_iter()
                .map(|(t, w)| (ints(t), floats(w)))
                .collect(),
            action: ints(action),
            duration: ints(duration),
            time_to_next: (ints(gap), floats(gap_mask)),
            weight_sum,
            real: (floats(real), n_real),
            n_time_to_next,
            id_keep: None,
            negatives,
            target_log_q,
            absent,
            teacher: None,
        }
    }

    /// Adds a step's ID drop mask for `model`'s item encoder (none without an encoder).
    pub fn with_id_drops(
        mut self,
        model: &TrainingModel,
        rng: &mut impl RngExt,
        device: &Device,
    ) -> Self {
        self.id_keep = model
            .item_encoder
            .as_ref()
            .filter(|e| e.unknown_id_rate > 0.0)
            .map(|e| e.draw_id_keep(model.model.n_items, rng, device));
        self
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use encore_core::data::catalog::ItemVocabulary;
    use encore_core::data::events::{DeviceType, Event, Surface};
    use encore_core::tokenizer::EventTokenizer;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Plays `step_s` apart (the second one a trailer view).
    pub(crate) fn history(items: &[u32], step_s: i64) -> Vec<Event> {
        items
            .iter()
            .enumerate()
            .map(|(i, &item)| Event {
                member: 1,
                item,
                timestamp: 1_000_000 + i as i64 * step_s,
                action: if i == 1 {
                    Action::Trailer
                } else {
                    Action::Play
                },
                duration_s: 100.0,
                surface: Surface::Home,
                country: "US".into(),
                device: DeviceType::Tv,
                rating: None,
            })
            .collect()
    }

    pub(crate) fn floats(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn multi_token_weights_decay_with_time_and_follow_event_weights() {
        let vocab = ItemVocabulary::new((0..10).collect()).unwrap();
        let seq = EventTokenizer::new(16)
            .training_windows(&vocab, &history(&[1, 2, 3, 4], 3600))
            .unwrap();
        let cfg = ObjectiveConfig {
            mtp_items: 3,
            mtp_decay_hours: 1.0,
            ..Default::default()
        };
        let device = Device::flex();
        let t = TrainingTargets::new(
            &seq,
            &cfg,
            &ItemDistribution::new(vec![0.1; 10]),
            &mut ChaCha8Rng::seed_from_u64(1),
            &device,
        );
        let w1 = floats(t.future_items[0].1.clone());
        let w2 = floats(t.future_items[1].1.clone());
        let w3 = floats(t.future_items[2].1.clone());
        let trailer = cfg.event_weights.trailer;
        assert_eq!(w1, vec![1.0, trailer, 1.0, 1.0]);
        // Token 0's second future item is event 1 (a trailer), one hour after event 0.
        assert!((w2[0] - trailer * (-1f32).exp()).abs() < 1e-6);
        assert!((w3[0] - (-2f32).exp()).abs() < 1e-6);
        assert_eq!(w2[3], 0.0, "no item after the last");
        assert_eq!(
            t.future_items[1]
                .0
                .clone()
                .into_data()
                .try_to_vec_as::<i64>()
                .unwrap()[0],
            2
        );
        assert!((t.weight_sum - (3.0 + trailer)).abs() < 1e-6);
    }
}
