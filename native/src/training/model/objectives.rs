//! Training objectives: next item by full or sampled softmax (uniform and in-batch negatives
//! with log-Q correction), multi-token prediction weighted by a time decay, auxiliary heads,
//! and per-event loss weights.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData, activation};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::TrainingModel;
use super::heads::AuxHeads;
use super::item_encoder::ItemFeatures;
use encore_core::data::events::Action;
use encore_core::model::l2_normalize;
use encore_core::tokenizer::{TokenBatch, TokenSequence};

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

/// The targets of one training batch, built on the host and uploaded.
#[derive(Debug, Clone)]
pub struct TrainingTargets {
    /// Per future offset k = 1…K: dense target `[batch·seq]` and weight `[batch·seq]`.
    pub items: Vec<(Tensor<1, Int>, Tensor<1>)>,
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
}

impl TrainingTargets {
    /// Targets for `seqs` padded like [`TokenBatch::new`]. `item_share[i]` is item `i`'s share of
    /// the training targets (for log Q); `rng` draws the sampled negatives.
    pub fn new(
        seqs: &[TokenSequence],
        cfg: &ObjectiveConfig,
        item_share: &[f32],
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
        for (r, seq) in seqs.iter().enumerate() {
            for c in 0..seq.len() {
                let Some(t) = seq.target[c] else { continue };
                let i = r * s + c;
                let w = cfg
                    .event_weights
                    .of(Action::ALL[seq.target_action[c] as usize]);
                items[0].0[i] = i64::from(t);
                items[0].1[i] = w;
                for (k, slot) in items.iter_mut().enumerate().skip(1) {
                    if let Some(Some(future)) = seq.target.get(c + k) {
                        let dt = (seq.target_time[c + k] - seq.target_time[c]).max(0) as f64;
                        let fw = cfg
                            .event_weights
                            .of(Action::ALL[seq.target_action[c + k] as usize]);
                        slot.0[i] = i64::from(*future);
                        slot.1[i] = fw * (-dt / decay_s).exp() as f32;
                    }
                }
                action[i] = i64::from(seq.target_action[c]);
                duration[i] = i64::from(seq.target_duration[c]);
                if seq.next_gap[c] > 0 {
                    gap[i] = i64::from(seq.next_gap[c]);
                    gap_mask[i] = 1.0;
                }
            }
        }
        let weight_sum = items[0].1.iter().sum::<f32>();
        let real: Vec<f32> = (0..m)
            .map(|i| {
                let (r, c) = (i / s, i % s);
                if seqs[r].target.get(c).is_some_and(Option::is_some) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let n_real = real.iter().sum::<f32>();
        let n_time_to_next = gap_mask.iter().sum::<f32>();
        let ints = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [m]), device);
        let floats = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [m]), device);
        let (mut negatives, mut target_log_q) = (None, Vec::new());
        if cfg.softmax == SoftmaxKind::Sampled {
            let n = item_share.len();
            let real: Vec<i64> = items[0]
                .0
                .iter()
                .zip(&items[0].1)
                .filter(|&(_, &w)| w > 0.0)
                .map(|(&t, _)| t)
                .collect();
            let in_batch = cfg.in_batch_negatives.min(real.len());
            let uniform = cfg.uniform_negatives;
            // Expected count of item j among all negatives: uniform draws plus in-batch draws
            // (which follow the training distribution).
            let log_q = |j: usize| {
                ((uniform as f64 / n as f64) + in_batch as f64 * f64::from(item_share[j]))
                    .max(1e-12)
                    .ln() as f32
            };
            // Each sequence draws its own negatives (shared by its tokens): as cheap as one
            // shared set (one batched matmul), but every step pushes `batch` times more items
            // away, which the item table needs to learn quickly.
            let r = uniform + in_batch;
            let mut neg: Vec<i64> = Vec::with_capacity(b * r);
            for _ in 0..b {
                neg.extend((0..uniform).map(|_| rng.random_range(0..n) as i64));
                neg.extend((0..in_batch).map(|_| real[rng.random_range(0..real.len())]));
            }
            let neg_q: Vec<f32> = neg.iter().map(|&j| log_q(j as usize)).collect();
            negatives = Some((
                Tensor::<2, Int>::from_data(TensorData::new(neg, [b, r]), device),
                Tensor::<2>::from_data(TensorData::new(neg_q, [b, r]), device),
            ));
            target_log_q = items
                .iter()
                .map(|(t, _)| floats(t.iter().map(|&j| log_q(j as usize)).collect()))
                .collect();
        }
        Self {
            items: items
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
        }
    }
}

impl TrainingTargets {
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
}

/// Weighted mean of −log softmax(logits)[target] over rows: Σ w·nll / `norm`.
fn weighted_nll(log_p_target: Tensor<1>, weight: Tensor<1>, norm: f32) -> Tensor<1> {
    log_p_target
        .mul(weight)
        .sum()
        .neg()
        .div_scalar(norm.max(1e-6))
}

fn class_loss(logits: Tensor<2>, target: Tensor<1, Int>, mask: Tensor<1>, norm: f32) -> Tensor<1> {
    let [m, _] = logits.dims();
    let picked = activation::log_softmax(logits, 1)
        .gather(1, target.reshape([m, 1]))
        .reshape([m]);
    weighted_nll(picked, mask, norm)
}

impl TrainingModel {
    /// The training loss of a batch. `features` feeds the item encoder when the model has one.
    pub fn loss(
        &self,
        batch: &TokenBatch,
        targets: &TrainingTargets,
        features: Option<&ItemFeatures>,
        cfg: &ObjectiveConfig,
    ) -> LossParts {
        let id_keep = targets.id_keep.clone();
        let mut table = self.item_table(features, id_keep);
        if cfg.normalize {
            // Normalised item rows everywhere (inputs too), so the exported table, baked the
            // same way, scores exactly as training did.
            table = l2_normalize(table);
        }
        let tables = self.model.embedding.tables(table.clone());
        let hidden = self.model.forward(batch, &tables, None, false);
        let [b, s, d] = hidden.dims();
        let m = b * s;
        let [rows, _] = table.dims();
        let mut h = hidden.reshape([m, d]);
        let items = table.slice(encore_core::tokenizer::ITEM_OFFSET as usize..rows);
        let aux_hidden = h.clone();
        if cfg.normalize {
            h = l2_normalize(h);
        }
        let h = h.div_scalar(cfg.temperature);
        let device = h.device();
        let norm = targets.weight_sum;
        let k_max = targets.items.len();

        // Sampled softmax: a sequence's negatives' logits are shared by every future offset k;
        // only the accidental-hit mask and the positive column depend on k.
        let sampled = targets.negatives.as_ref().map(|(neg, neg_q)| {
            let r = neg.dims()[1];
            let neg_rows = items
                .clone()
                .select(0, neg.clone().reshape([b * r]))
                .reshape([b, r, d]);
            let logits = h
                .clone()
                .reshape([b, s, d])
                .matmul(neg_rows.swap_dims(1, 2))
                .sub(neg_q.clone().reshape([b, 1, r]).expand([b, s, r]))
                .reshape([m, r]);
            let neg_per_token = neg
                .clone()
                .reshape([b, 1, r])
                .expand([b, s, r])
                .reshape([m, r]);
            (neg_per_token, r, logits)
        });
        let term = |k: usize| -> Tensor<1> {
            let (target, weight) = &targets.items[k];
            let (neg, r, negs) = sampled.clone().expect("sampled softmax has negatives");
            let pos = h
                .clone()
                .mul(items.clone().select(0, target.clone()))
                .sum_dim(1)
                .reshape([m])
                .sub(targets.target_log_q[k].clone())
                .reshape([m, 1]);
            let hits: Tensor<2, Bool> = target.clone().reshape([m, 1]).expand([m, r]).equal(neg);
            let logits = Tensor::cat(vec![pos, negs.mask_fill(hits, -1e9)], 1);
            let picked = activation::log_softmax(logits, 1)
                .slice([0..m, 0..1])
                .reshape([m]);
            weighted_nll(picked, weight.clone(), norm)
        };

        let (next_item, multi_token) = if cfg.softmax == SoftmaxKind::Full {
            // −log softmax(z)[t] = logsumexp(z) − z_t: one pass over the [tokens, items]
            // logits serves every future offset; each target's logit is a row-wise dot product.
            let logits = h.clone().matmul(items.clone().transpose());
            let max = logits.clone().max_dim(1).detach();
            let lse = logits
                .sub(max.clone())
                .exp()
                .sum_dim(1)
                .log()
                .add(max)
                .reshape([m]);
            let pick = |k: usize| {
                let (t, w) = &targets.items[k];
                let z = h
                    .clone()
                    .mul(items.clone().select(0, t.clone()))
                    .sum_dim(1)
                    .reshape([m]);
                z.sub(lse.clone())
                    .mul(w.clone())
                    .sum()
                    .neg()
                    .div_scalar(norm.max(1e-6))
            };
            let next = pick(0);
            let mtp = (1..k_max).map(pick).reduce(|a, b| a + b);
            (next, mtp)
        } else {
            let next = term(0);
            let mtp = (1..k_max).map(term).reduce(|a, b| a + b);
            (next, mtp)
        };
        let zero = || Tensor::<1>::zeros([1], &device);
        let multi_token = multi_token
            .map(|t| t.div_scalar((k_max - 1) as f32))
            .unwrap_or_else(zero);

        let mut auxiliary = zero();
        if let Some(heads) = &self.heads {
            let (mask, tokens) = (targets.real.0.clone(), targets.real.1.max(1.0));
            if let (Some(logits), Some(f)) = (AuxHeads::logits(&heads.genre, &aux_hidden), features)
                && cfg.genre_weight > 0.0
            {
                let g = f.n_genres();
                let y = f.genres.clone().select(0, targets.items[0].0.clone());
                // Binary cross-entropy with logits, averaged over genres, masked to real tokens.
                let bce = activation::softplus(logits.clone(), 1.0) - logits.mul(y);
                let per_token = bce.sum_dim(1).reshape([m]).div_scalar(g as f32);
                auxiliary = auxiliary
                    + per_token
                        .mul(mask.clone())
                        .sum()
                        .div_scalar(tokens)
                        .mul_scalar(cfg.genre_weight);
            }
            if let Some(logits) = AuxHeads::logits(&heads.action, &aux_hidden)
                && cfg.action_weight > 0.0
            {
                auxiliary = auxiliary
                    + class_loss(logits, targets.action.clone(), mask.clone(), tokens)
                        .mul_scalar(cfg.action_weight);
            }
            if let Some(logits) = AuxHeads::logits(&heads.duration, &aux_hidden)
                && cfg.duration_weight > 0.0
            {
                auxiliary = auxiliary
                    + class_loss(logits, targets.duration.clone(), mask.clone(), tokens)
                        .mul_scalar(cfg.duration_weight);
            }
            if let Some(logits) = AuxHeads::logits(&heads.time_to_next, &aux_hidden)
                && cfg.time_to_next_weight > 0.0
            {
                let (gap, gap_mask) = &targets.time_to_next;
                let n_gap = targets.n_time_to_next.max(1.0);
                auxiliary = auxiliary
                    + class_loss(logits, gap.clone(), gap_mask.clone(), n_gap)
                        .mul_scalar(cfg.time_to_next_weight);
            }
        }
        let total =
            next_item.clone() + multi_token.clone().mul_scalar(cfg.mtp_weight) + auxiliary.clone();
        LossParts {
            total,
            next_item,
            multi_token,
            auxiliary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encore_core::FoundationModelConfig;
    use encore_core::data::catalog::ItemVocabulary;
    use encore_core::data::events::{DeviceType, Event, Surface};
    use encore_core::tokenizer::EventTokenizer;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn history(items: &[u32], step_s: i64) -> Vec<Event> {
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
            })
            .collect()
    }

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

    fn floats(t: Tensor<1>) -> Vec<f32> {
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
            &[0.1; 10],
            &mut ChaCha8Rng::seed_from_u64(1),
            &device,
        );
        let w1 = floats(t.items[0].1.clone());
        let w2 = floats(t.items[1].1.clone());
        let w3 = floats(t.items[2].1.clone());
        let trailer = cfg.event_weights.trailer;
        assert_eq!(w1, vec![1.0, trailer, 1.0, 1.0]);
        // Token 0's second future item is event 1 (a trailer), one hour after event 0.
        assert!((w2[0] - trailer * (-1f32).exp()).abs() < 1e-6);
        assert!((w3[0] - (-2f32).exp()).abs() < 1e-6);
        assert_eq!(w2[3], 0.0, "no item after the last");
        assert_eq!(
            t.items[1]
                .0
                .clone()
                .into_data()
                .try_to_vec_as::<i64>()
                .unwrap()[0],
            2
        );
        assert!((t.weight_sum - (3.0 + trailer)).abs() < 1e-6);
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
        let t = TrainingTargets::new(
            &seqs,
            &cfg,
            &[0.1; 10],
            &mut ChaCha8Rng::seed_from_u64(1),
            &device,
        );
        let ours = model
            .loss(&batch, &t, None, &cfg)
            .total
            .into_scalar::<f32>();
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
        let t = TrainingTargets::new(
            &seqs,
            &cfg,
            &share,
            &mut ChaCha8Rng::seed_from_u64(3),
            &device,
        );
        let ours = model
            .loss(&batch, &t, None, &cfg)
            .total
            .into_scalar::<f32>();

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
        let targets = t.items[0]
            .0
            .clone()
            .into_data()
            .try_to_vec_as::<i64>()
            .unwrap();
        let weights = floats(t.items[0].1.clone());
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
}
