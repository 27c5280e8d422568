//! Training objectives: next item by full or sampled softmax (uniform and in-batch negatives
//! with log-Q correction), multi-token prediction weighted by a time decay, the auxiliary
//! heads' losses ([`AuxHeads::loss`](super::AuxHeads::loss)), and per-event loss weights.
//!
//! `config` holds the switches and weights, `targets` builds a batch's labels on the host,
//! `sampling` draws sampled softmax's negatives, `next_item` computes the softmax terms,
//! `distillation` the terms that learn from a teacher; this module adds the terms up.

mod config;
mod distillation;
mod next_item;
mod sampling;
mod targets;

pub use config::{EventWeights, ObjectiveConfig, SoftmaxKind};
pub use distillation::{alignment_term, teacher_score_term};
pub use next_item::next_item_terms;
pub use sampling::{ItemDistribution, NegativeSampler};
pub use targets::TrainingTargets;

use burn::tensor::Tensor;

use super::TrainingModel;
use super::item_encoder::ItemFeatures;
use crate::training::distill::DistillConfig;
use encore_core::model::l2_normalize;
use encore_core::tokenizer::{ITEM_OFFSET, TokenBatch};

/// The loss of one batch and its parts (scalars `[1]`).
#[derive(Debug, Clone)]
pub struct LossParts {
    /// What is minimised.
    pub total: Tensor<1>,
    /// Next-item term.
    pub next_item: Tensor<1>,
    /// Multi-token term (0 when off).
    pub multi_token: Tensor<1>,
    /// Sum of the weighted auxiliary terms (0 when off).
    pub auxiliary: Tensor<1>,
    /// Distillation: τ²·KL between the teacher's and the student's scores (0 when off).
    pub teacher_scores: Tensor<1>,
    /// Distillation: 1 − cos between the projected student state and the teacher's (0 when off).
    pub alignment: Tensor<1>,
}

impl LossParts {
    /// The parts as numbers: `[total, next item, multi-token, auxiliary, teacher scores,
    /// alignment]`.
    pub fn values(self) -> [f64; 6] {
        [
            self.total,
            self.next_item,
            self.multi_token,
            self.auxiliary,
            self.teacher_scores,
            self.alignment,
        ]
        .map(|t| f64::from(t.into_scalar::<f32>()))
    }
}

/// Weighted mean of −log softmax(logits)[target] over rows: Σ w·nll / `norm`.
pub(crate) fn weighted_nll(log_p_target: Tensor<1>, weight: Tensor<1>, norm: f32) -> Tensor<1> {
    log_p_target
        .mul(weight)
        .sum()
        .neg()
        .div_scalar(norm.max(1e-6))
}

impl TrainingModel {
    /// The training loss of a batch: next item + `mtp_weight` × the multi-token term (averaged
    /// over offsets 2…K) + the auxiliary heads. `features` feeds the item encoder when the
    /// model has one. With `distill` (and the teacher's outputs in `targets.teacher`), that sum
    /// is weighted by `label_weight` and the distillation terms are added with their weights.
    pub fn loss(
        &self,
        batch: &TokenBatch,
        targets: &TrainingTargets,
        features: Option<&ItemFeatures>,
        cfg: &ObjectiveConfig,
        distill: Option<&DistillConfig>,
    ) -> LossParts {
        let mut table = self.item_table(features, targets.id_keep.clone());
        if cfg.normalize {
            // Normalised item rows everywhere (inputs too), so the exported table, baked the
            // same way, scores exactly as training did.
            table = l2_normalize(table);
        }
        let tables = self.model.embedding.tables(table.clone());
        let hidden = self.model.forward(batch, &tables, None, false);
        let [b, s, d] = hidden.dims();
        let hidden = hidden.reshape([b * s, d]);
        let [rows, _] = table.dims();
        let items = table.slice(ITEM_OFFSET as usize..rows);
        let (next_item, multi_token) =
            next_item_terms(hidden.clone(), items.clone(), b, targets, cfg);
        let device = hidden.device();
        let zero = || Tensor::<1>::zeros([1], &device);
        let k_max = targets.future_items.len();
        let multi_token = multi_token
            .map(|t| t.div_scalar((k_max - 1) as f32))
            .unwrap_or_else(zero);
        let auxiliary = match &self.heads {
            Some(heads) => heads.loss(&hidden, targets, features, cfg),
            None => zero(),
        };
        let labels =
            next_item.clone() + multi_token.clone().mul_scalar(cfg.mtp_weight) + auxiliary.clone();
        let (mut total, mut teacher_scores, mut alignment) = (labels.clone(), zero(), zero());
        if let (Some(distill), Some(teacher)) = (distill, &targets.teacher) {
            total = labels.mul_scalar(distill.label_weight);
            if distill.scores_weight > 0.0 {
                teacher_scores =
                    teacher_score_term(hidden.clone(), items, b, targets, teacher, cfg, distill);
                total = total + teacher_scores.clone().mul_scalar(distill.scores_weight);
            }
            if let Some(align) = &self.align {
                alignment = alignment_term(align.forward(hidden), targets, teacher);
                total = total + alignment.clone().mul_scalar(distill.align_weight);
            }
        }
        LossParts {
            total,
            next_item,
            multi_token,
            auxiliary,
            teacher_scores,
            alignment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::targets::tests::{floats, history};
    use super::*;
    use burn::tensor::Device;
    use encore_core::FoundationModelConfig;
    use encore_core::data::catalog::ItemVocabulary;
    use encore_core::tokenizer::EventTokenizer;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A one-layer model over `n` items, window 8, without encoder or heads.
    fn tiny_model(n: usize, device: &Device) -> TrainingModel {
        let model = FoundationModelConfig::new(n)
            .with_d_model(8)
            .with_n_heads(2)
            .with_n_layers(1)
            .with_d_ff(16)
            .with_max_len(8);
        super::super::TrainingModelConfig::new(model).init(device)
    }

    /// Next item only: no multi-token term, no auxiliary heads.
    fn next_item_only(cfg: ObjectiveConfig) -> ObjectiveConfig {
        ObjectiveConfig {
            mtp_items: 1,
            genre_weight: 0.0,
            action_weight: 0.0,
            duration_weight: 0.0,
            time_to_next_weight: 0.0,
            ..cfg
        }
    }

    /// Each token's next-item target and its weight, read back from `t`.
    fn next_item_targets(t: &TrainingTargets) -> (Vec<i64>, Vec<f32>) {
        let (target, weight) = &t.future_items[0];
        (
            target.clone().into_data().try_to_vec_as::<i64>().unwrap(),
            floats(weight.clone()),
        )
    }

    /// The targets of `seqs` under `distribution` (negatives drawn with `seed`) and `model`'s
    /// total loss on them.
    fn targets_and_loss(
        model: &TrainingModel,
        seqs: &[encore_core::TokenSequence],
        cfg: &ObjectiveConfig,
        distribution: &ItemDistribution,
        seed: u64,
    ) -> (TrainingTargets, f32) {
        let device = Device::flex();
        let batch = TokenBatch::new(seqs, &device);
        let t = TrainingTargets::new(
            seqs,
            cfg,
            distribution,
            &mut ChaCha8Rng::seed_from_u64(seed),
            &device,
        );
        let loss = model
            .loss(&batch, &t, None, cfg, None)
            .total
            .into_scalar::<f32>();
        (t, loss)
    }

    #[test]
    fn full_softmax_loss_matches_the_plain_cross_entropy() {
        let device = Device::flex();
        let model = tiny_model(10, &device);
        let vocab = ItemVocabulary::new((0..10).collect()).unwrap();
        let seqs = [
            EventTokenizer::new(8)
                .training_windows(&vocab, &history(&[1, 5, 7], 60))
                .unwrap()
                .remove(0),
            EventTokenizer::new(8)
                .training_windows(&vocab, &history(&[2, 2, 9, 4, 0], 60))
                .unwrap()
                .remove(0),
        ];
        let cfg = next_item_only(ObjectiveConfig {
            event_weights: EventWeights {
                play: 1.0,
                trailer: 1.0,
                add_to_list: 1.0,
            },
            ..Default::default()
        });
        let batch = TokenBatch::new(&seqs, &device);
        let (_, ours) = targets_and_loss(
            &model,
            &seqs,
            &cfg,
            &ItemDistribution::new(vec![0.1; 10]),
            1,
        );
        let reference = model.model.next_item_loss(&batch).into_scalar::<f32>();
        assert!((ours - reference).abs() < 1e-5, "{ours} vs {reference}");
    }

    #[test]
    fn sampled_softmax_matches_a_hand_computed_log_q_corrected_loss() {
        let device = Device::flex();
        let n = 12;
        let model = tiny_model(n, &device);
        let vocab = ItemVocabulary::new((0..n as u32).collect()).unwrap();
        let window = |items: &[u32]| {
            EventTokenizer::new(8)
                .training_windows(&vocab, &history(items, 60))
                .unwrap()
                .remove(0)
        };
        // Two sequences of different lengths: each draws its own negatives; padding counts 0.
        let seqs = [window(&[1, 5, 7, 3, 3]), window(&[2, 11, 4])];
        let cfg = next_item_only(ObjectiveConfig {
            softmax: SoftmaxKind::Sampled,
            uniform_negatives: 6,
            in_batch_negatives: 3,
            temperature: 0.5,
            normalize: true,
            ..Default::default()
        });
        let share: Vec<f32> = (0..n).map(|i| (i + 1) as f32 / 78.0).collect();
        let batch = TokenBatch::new(&seqs, &device);
        let (t, ours) = targets_and_loss(
            &model,
            &seqs,
            &cfg,
            &ItemDistribution::new(share.clone()),
            3,
        );

        // Reference: plain loops over the hidden states and item vectors.
        // Training with normalised vectors feeds the normalised item table to the inputs too.
        let tables = model
            .model
            .embedding
            .tables(l2_normalize(model.model.item_table()));
        let hidden = model.model.forward(&batch, &tables, None, false);
        let [b, s, d] = hidden.dims();
        let h = hidden
            .reshape([b * s, d])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let e = model
            .model
            .item_vectors()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let (neg, neg_q) = t.negatives.clone().unwrap();
        let r = neg.dims()[1];
        let neg = neg.into_data().try_to_vec_as::<i64>().unwrap();
        let neg_q = floats(neg_q.reshape([b * r]));
        let (targets, weights) = next_item_targets(&t);
        let unit = |v: &[f32]| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            v.iter().map(|x| x / norm).collect::<Vec<f32>>()
        };
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let log_q = |j: usize| ((6.0 / n as f64) + 3.0 * f64::from(share[j])).ln() as f32;
        let (mut total, mut wsum) = (0f32, 0f32);
        assert_eq!(r, 9);
        assert_ne!(neg[..r], neg[r..], "each sequence draws its own negatives");
        for i in 0..b * s {
            if weights[i] == 0.0 {
                continue;
            }
            let hi = unit(&h[i * d..(i + 1) * d]);
            let tgt = targets[i] as usize;
            let score = |j: usize| dot(&hi, &unit(&e[j * d..(j + 1) * d])) / 0.5;
            let mut logits = vec![score(tgt) - log_q(tgt)];
            let own = (i / s) * r..(i / s + 1) * r;
            for (&j, &q) in neg[own.clone()].iter().zip(&neg_q[own]) {
                assert!((q - log_q(j as usize)).abs() < 1e-6);
                logits.push(if j as usize == tgt {
                    -1e9
                } else {
                    score(j as usize) - log_q(j as usize)
                });
            }
            let max = logits.iter().cloned().fold(f32::MIN, f32::max);
            let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
            total += weights[i] * (lse - logits[0]);
            wsum += weights[i];
        }
        let reference = total / wsum;
        assert!((ours - reference).abs() < 1e-4, "{ours} vs {reference}");
    }

    #[test]
    fn full_softmax_runs_over_the_items_that_had_arrived_only() {
        let device = Device::flex();
        let n = 10;
        let model = tiny_model(n, &device);
        let vocab = ItemVocabulary::new((0..n as u32).collect()).unwrap();
        let seqs = [EventTokenizer::new(8)
            .training_windows(&vocab, &history(&[1, 5, 7, 2], 60))
            .unwrap()
            .remove(0)];
        let cfg = next_item_only(ObjectiveConfig {
            event_weights: EventWeights {
                play: 1.0,
                trailer: 1.0,
                add_to_list: 1.0,
            },
            normalize: false,
            temperature: 1.0,
            ..Default::default()
        });
        // Items 3 and 8 arrive after the training data.
        let arrived: Vec<bool> = (0..n).map(|i| i != 3 && i != 8).collect();
        let distribution = ItemDistribution::with_drawable(vec![0.1; n], arrived.clone());
        let batch = TokenBatch::new(&seqs, &device);
        let (t, ours) = targets_and_loss(&model, &seqs, &cfg, &distribution, 1);
        let (everything, over_all) =
            targets_and_loss(&model, &seqs, &cfg, &ItemDistribution::new(vec![0.1; n]), 1);
        assert!(everything.absent.is_none());

        // Reference: cross entropy over the arrived items' logits, in plain loops.
        let tables = model.model.token_tables();
        let hidden = model.model.forward(&batch, &tables, None, false);
        let [b, s, d] = hidden.dims();
        let h = floats(hidden.reshape([b * s * d]));
        let e = floats(model.model.item_vectors().reshape([n * d]));
        let (targets, weights) = next_item_targets(&t);
        let (mut total, mut wsum) = (0f32, 0f32);
        for i in 0..b * s {
            if weights[i] == 0.0 {
                continue;
            }
            let logit = |j: usize| (0..d).map(|k| h[i * d + k] * e[j * d + k]).sum::<f32>();
            let lse = (0..n)
                .filter(|&j| arrived[j])
                .map(|j| logit(j).exp())
                .sum::<f32>()
                .ln();
            total += weights[i] * (lse - logit(targets[i] as usize));
            wsum += weights[i];
        }
        let reference = total / wsum;
        assert!((ours - reference).abs() < 1e-4, "{ours} vs {reference}");
        assert!(
            ours < over_all - 1e-4,
            "fewer items, lower loss: {ours} vs {over_all}"
        );
    }
}
