//! The distillation terms: τ²·KL between the teacher's and the student's score distributions
//! over each token's candidate set, and the alignment of the student's (projected) hidden
//! state to the teacher's.
//!
//! The candidate set is the whole catalog with full softmax; with sampled softmax it is the
//! token's target, the teacher's top k for that token and the sequence's sampled negatives
//! (each negative's score, for both models, corrected by −log Q as in the next-item term; a
//! negative equal to the target is left out). Both models score a candidate by their own
//! hidden state · item vector (the student's as its objectives train it: normalised and
//! divided by their temperature when configured).

use burn::tensor::{Bool, Tensor, activation};

use super::config::{ObjectiveConfig, SoftmaxKind};
use super::next_item::scoring_states;
use super::targets::TrainingTargets;
use crate::training::distill::{DistillConfig, PADDED_SCORE, TeacherTargets};
use encore_core::model::l2_normalize;

/// τ²-scaled KL(teacher ‖ student) per token `[m]`, from both models' logits `[m, c]`
/// (entries at −1e9 or below in `teacher` are left out of both distributions).
fn kl_rows(teacher: Tensor<2>, student: Tensor<2>, tau: f64) -> Tensor<1> {
    let [m, _] = teacher.dims();
    let out: Tensor<2, Bool> = teacher.clone().lower_equal_elem(PADDED_SCORE);
    let student = student.mask_fill(out, PADDED_SCORE);
    let log_p_t = activation::log_softmax(teacher.div_scalar(tau), 1);
    let log_p_s = activation::log_softmax(student.div_scalar(tau), 1);
    let p_t = log_p_t.clone().exp();
    // p·(log p − log q); p is 0 where left out, and both logs stay finite there.
    p_t.mul(log_p_t.sub(log_p_s))
        .sum_dim(1)
        .reshape([m])
        .mul_scalar(tau * tau)
}

/// Row-wise dot products of `a` `[m, d]` and `b` `[m, d]`: `[m]`.
fn row_dot(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let [m, _] = a.dims();
    a.mul(b).sum_dim(1).reshape([m])
}

/// The score term `[1]`: the mean over the batch's targets (weighted like the next-item term)
/// of τ²·KL(teacher ‖ student) over each token's candidates.
///
/// `hidden` `[batch·seq, d]` are the student's outputs, `items` `[n_items, d]` its item
/// vectors (already normalised when `cfg.normalize`).
pub fn teacher_score_term(
    hidden: Tensor<2>,
    items: Tensor<2>,
    batch: usize,
    targets: &TrainingTargets,
    teacher: &TeacherTargets,
    cfg: &ObjectiveConfig,
    distill: &DistillConfig,
) -> Tensor<1> {
    let [m, d] = hidden.dims();
    let (b, s) = (batch, m / batch.max(1));
    let h = scoring_states(hidden, cfg);
    let th = teacher.hidden.clone();
    let td = th.dims()[1];
    let (target, weight) = &targets.future_items[0];

    let (t_logits, s_logits) = if cfg.softmax == SoftmaxKind::Full {
        (
            th.matmul(teacher.items.clone().transpose()),
            h.matmul(items.transpose()),
        )
    } else {
        let mut t_cols = vec![
            row_dot(th.clone(), teacher.items.clone().select(0, target.clone())).reshape([m, 1]),
        ];
        let mut s_cols =
            vec![row_dot(h.clone(), items.clone().select(0, target.clone())).reshape([m, 1])];
        if let Some((top, top_scores)) = &teacher.top_k {
            let k = top.dims()[1];
            let rows = items
                .clone()
                .select(0, top.clone().reshape([m * k]))
                .reshape([m, k, d]);
            let student_top = h
                .clone()
                .reshape([m, 1, d])
                .expand([m, k, d])
                .mul(rows)
                .sum_dim(2)
                .reshape([m, k]);
            t_cols.push(top_scores.clone());
            s_cols.push(student_top);
        }
        if let Some((neg, neg_q)) = &targets.negatives {
            let r = neg.dims()[1];
            let flat = neg.clone().reshape([b * r]);
            let correction = neg_q
                .clone()
                .reshape([b, 1, r])
                .expand([b, s, r])
                .reshape([m, r]);
            let hits: Tensor<2, Bool> = target.clone().reshape([m, 1]).expand([m, r]).equal(
                neg.clone()
                    .reshape([b, 1, r])
                    .expand([b, s, r])
                    .reshape([m, r]),
            );
            let scores = |hs: Tensor<2>, table: Tensor<2>, width: usize| {
                let rows = table.select(0, flat.clone()).reshape([b, r, width]);
                hs.reshape([b, s, width])
                    .matmul(rows.swap_dims(1, 2))
                    .reshape([m, r])
                    .sub(correction.clone())
                    .mask_fill(hits.clone(), PADDED_SCORE)
            };
            t_cols.push(scores(th, teacher.items.clone(), td));
            s_cols.push(scores(h, items, d));
        }
        (Tensor::cat(t_cols, 1), Tensor::cat(s_cols, 1))
    };
    kl_rows(t_logits.detach(), s_logits, distill.temperature)
        .mul(weight.clone())
        .sum()
        .div_scalar(targets.weight_sum.max(1e-6))
}

/// The alignment term `[1]`: the weighted mean over the batch's targets of 1 − cos between
/// the student's projected hidden state `[batch·seq, d_teacher]` and the teacher's.
pub fn alignment_term(
    projected: Tensor<2>,
    targets: &TrainingTargets,
    teacher: &TeacherTargets,
) -> Tensor<1> {
    let cos = row_dot(
        l2_normalize(projected),
        l2_normalize(teacher.hidden.clone()),
    );
    let (_, weight) = &targets.future_items[0];
    cos.neg()
        .add_scalar(1.0)
        .mul(weight.clone())
        .sum()
        .div_scalar(targets.weight_sum.max(1e-6))
}

#[cfg(test)]
mod tests {
    use super::super::sampling::ItemDistribution;
    use super::super::targets::tests::{floats, history};
    use super::*;
    use crate::training::distill::Teacher;
    use burn::tensor::Device;
    use encore_core::FoundationModelConfig;
    use encore_core::data::catalog::ItemVocabulary;
    use encore_core::tokenizer::{
        EventTokenizer, ITEM_OFFSET, TokenBatch, TokenField, TokenSequence,
    };
    use encore_core::weights::{Quantization, load_model, save_model};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::path::Path;

    const N: usize = 12;

    fn config(d: usize, layers: usize) -> FoundationModelConfig {
        FoundationModelConfig::new(N)
            .with_d_model(d)
            .with_n_heads(2)
            .with_n_layers(layers)
            .with_d_ff(2 * d)
            .with_max_len(8)
            .with_dropout(0.0)
    }

    /// A randomly initialised teacher (width 8, two layers) as a weight file.
    fn teacher_file(device: &Device) -> Vec<u8> {
        let cfg = config(8, 2);
        save_model(
            &cfg.init(device),
            &cfg.serving(),
            &(0..N as u32).collect::<Vec<_>>(),
            Quantization::F32,
        )
    }

    fn windows() -> Vec<TokenSequence> {
        let vocab = ItemVocabulary::new((0..N as u32).collect()).unwrap();
        [&[1u32, 5, 7, 3, 3, 9][..], &[2, 11, 4]]
            .iter()
            .map(|items| {
                EventTokenizer::new(8)
                    .training_windows(&vocab, &history(items, 60))
                    .unwrap()
                    .remove(0)
            })
            .collect()
    }

    fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
        let [m, d] = t.dims();
        let v = t.into_data().try_to_vec::<f32>().unwrap();
        (0..m).map(|i| v[i * d..(i + 1) * d].to_vec()).collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) by plain loops.
    fn kl(t: &[f32], s: &[f32], tau: f32) -> f32 {
        let log_softmax = |z: &[f32]| {
            let max = z.iter().cloned().fold(f32::MIN, f32::max) / tau;
            let lse = max + z.iter().map(|v| (v / tau - max).exp()).sum::<f32>().ln();
            z.iter().map(|v| v / tau - lse).collect::<Vec<f32>>()
        };
        let (lt, ls) = (log_softmax(t), log_softmax(s));
        tau * tau
            * lt.iter()
                .zip(&ls)
                .map(|(a, b)| a.exp() * (a - b))
                .sum::<f32>()
    }

    /// The cache holds, per token, exactly the teacher's forward and its best-scored items
    /// outside the history so far.
    #[test]
    fn the_cache_holds_the_teachers_states_and_top_items_outside_the_history() {
        let device = Device::flex();
        let bytes = teacher_file(&device);
        let vocab = ItemVocabulary::new((0..N as u32).collect()).unwrap();
        let teacher =
            Teacher::from_bytes(&bytes, Path::new("t"), &vocab, &config(4, 1), &device).unwrap();
        let seqs = windows();
        let distill = DistillConfig {
            top_k: 3,
            ..Default::default()
        };
        let cache = teacher.cache(&seqs, &distill, &device);
        assert_eq!(
            cache.tokens(),
            seqs.iter().map(TokenSequence::len).sum::<usize>()
        );
        let s = TokenBatch::padded_len(&seqs);
        let got = cache.targets(&[1, 0], s, &device);

        let loaded = load_model(&bytes, &device).unwrap().model;
        let hidden = loaded.forward(
            &TokenBatch::new(&seqs, &device),
            &loaded.token_tables(),
            None,
            false,
        );
        let reference = rows(hidden.reshape([2 * s, 8]));
        let items = rows(loaded.item_vectors());
        let got_hidden = rows(got.hidden);
        let (top, top_scores) = got.top_k.unwrap();
        let top = top.into_data().try_to_vec_as::<i64>().unwrap();
        let top_scores = floats(top_scores.reshape([2 * s * 3]));
        // The batch holds window 1 then window 0.
        for (r, w) in [1usize, 0].into_iter().enumerate() {
            let mut seen = Vec::new();
            for c in 0..s {
                let (row, want) = (r * s + c, w * s + c);
                if c >= seqs[w].len() {
                    assert!(got_hidden[row].iter().all(|&v| v == 0.0), "padding is zero");
                    continue;
                }
                for (a, b) in got_hidden[row].iter().zip(&reference[want]) {
                    assert!((a - b).abs() < 1e-5, "hidden {a} vs {b}");
                }
                let prev = seqs[w].tokens[c].get(TokenField::PrevItem);
                if prev >= ITEM_OFFSET {
                    seen.push((prev - ITEM_OFFSET) as usize);
                }
                let mut scored: Vec<(usize, f32)> = (0..N)
                    .filter(|i| !seen.contains(i))
                    .map(|i| (i, dot(&reference[want], &items[i])))
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1));
                for j in 0..3 {
                    assert_eq!(top[row * 3 + j] as usize, scored[j].0, "token {c} rank {j}");
                    assert!((top_scores[row * 3 + j] - scored[j].1).abs() < 1e-4);
                }
            }
        }
    }

    /// Sampled softmax: the score term is τ²·KL over target + top k + the sequence's
    /// negatives (−log Q on the negatives, a negative equal to the target left out), weighted
    /// like the next-item term, as plain loops compute it.
    #[test]
    fn the_score_term_matches_a_hand_computed_kl_over_the_candidate_set() {
        let device = Device::flex();
        let bytes = teacher_file(&device);
        let vocab = ItemVocabulary::new((0..N as u32).collect()).unwrap();
        let student_cfg = config(4, 1);
        let teacher =
            Teacher::from_bytes(&bytes, Path::new("t"), &vocab, &student_cfg, &device).unwrap();
        let seqs = windows();
        let distill = DistillConfig {
            top_k: 2,
            temperature: 2.0,
            ..Default::default()
        };
        let cache = teacher.cache(&seqs, &distill, &device);
        let cfg = ObjectiveConfig {
            softmax: SoftmaxKind::Sampled,
            uniform_negatives: 5,
            in_batch_negatives: 2,
            mtp_items: 1,
            ..Default::default()
        };
        let share: Vec<f32> = (0..N).map(|i| (i + 1) as f32 / 78.0).collect();
        let batch = TokenBatch::new(&seqs, &device);
        let s = TokenBatch::padded_len(&seqs);
        let mut targets = TrainingTargets::new(
            &seqs,
            &cfg,
            &ItemDistribution::new(share.clone()),
            &mut ChaCha8Rng::seed_from_u64(5),
            &device,
        );
        targets.teacher = Some(cache.targets(&[0, 1], s, &device));
        let teacher_out = targets.teacher.clone().unwrap();

        let student = student_cfg.init(&device);
        let hidden = student
            .forward(&batch, &student.token_tables(), None, false)
            .reshape([2 * s, 4]);
        let ours = teacher_score_term(
            hidden.clone(),
            student.item_vectors(),
            2,
            &targets,
            &teacher_out,
            &cfg,
            &distill,
        )
        .into_scalar::<f32>();

        let (h, e) = (rows(hidden), rows(student.item_vectors()));
        let (th, te) = (rows(teacher_out.hidden), rows(teacher_out.items));
        let (top, _) = teacher_out.top_k.unwrap();
        let top = top.into_data().try_to_vec_as::<i64>().unwrap();
        let (neg, neg_q) = targets.negatives.clone().unwrap();
        let r = neg.dims()[1];
        let neg = neg.into_data().try_to_vec_as::<i64>().unwrap();
        let neg_q = floats(neg_q.reshape([2 * r]));
        let target = targets.future_items[0]
            .0
            .clone()
            .into_data()
            .try_to_vec_as::<i64>()
            .unwrap();
        let weight = floats(targets.future_items[0].1.clone());
        let (mut total, mut wsum) = (0f32, 0f32);
        for i in 0..2 * s {
            wsum += weight[i];
            if weight[i] == 0.0 {
                continue;
            }
            let tgt = target[i] as usize;
            let mut candidates: Vec<(usize, f32)> = vec![(tgt, 0.0)];
            candidates.extend(top[i * 2..i * 2 + 2].iter().map(|&j| (j as usize, 0.0)));
            let own = (i / s) * r..(i / s + 1) * r;
            for (&j, &q) in neg[own.clone()].iter().zip(&neg_q[own]) {
                if j as usize != tgt {
                    candidates.push((j as usize, q));
                }
            }
            let t: Vec<f32> = candidates
                .iter()
                .map(|&(j, q)| dot(&th[i], &te[j]) - q)
                .collect();
            let st: Vec<f32> = candidates
                .iter()
                .map(|&(j, q)| dot(&h[i], &e[j]) - q)
                .collect();
            total += weight[i] * kl(&t, &st, 2.0);
        }
        let reference = total / wsum;
        assert!(
            reference > 1e-3,
            "a random student differs from the teacher"
        );
        assert!(
            (ours - reference).abs() < 1e-4 * reference.max(1.0),
            "{ours} vs {reference}"
        );
    }

    /// A student with the teacher's own weights learns nothing from it: both terms are 0 (full
    /// softmax, identity projection); a different student's are positive.
    #[test]
    fn a_student_equal_to_its_teacher_has_no_distillation_loss() {
        let device = Device::flex();
        let bytes = teacher_file(&device);
        let vocab = ItemVocabulary::new((0..N as u32).collect()).unwrap();
        let teacher =
            Teacher::from_bytes(&bytes, Path::new("t"), &vocab, &config(8, 2), &device).unwrap();
        let seqs = windows();
        let distill = DistillConfig::default();
        let cache = teacher.cache(&seqs, &distill, &device);
        let cfg = ObjectiveConfig {
            mtp_items: 1,
            ..Default::default()
        };
        let batch = TokenBatch::new(&seqs, &device);
        let s = TokenBatch::padded_len(&seqs);
        let mut targets = TrainingTargets::new(
            &seqs,
            &cfg,
            &ItemDistribution::new(vec![1.0 / N as f32; N]),
            &mut ChaCha8Rng::seed_from_u64(1),
            &device,
        );
        targets.teacher = Some(cache.targets(&[0, 1], s, &device));
        let teacher_out = targets.teacher.clone().unwrap();
        let terms = |model: &encore_core::FoundationModel| {
            let d = model.item_vectors().dims()[1];
            let hidden = model
                .forward(&batch, &model.token_tables(), None, false)
                .reshape([2 * s, d]);
            let scores = teacher_score_term(
                hidden.clone(),
                model.item_vectors(),
                2,
                &targets,
                &teacher_out,
                &cfg,
                &distill,
            )
            .into_scalar::<f32>();
            (scores, hidden)
        };
        let same = load_model(&bytes, &device).unwrap().model;
        let (scores, hidden) = terms(&same);
        let align = alignment_term(hidden, &targets, &teacher_out).into_scalar::<f32>();
        assert!(
            scores.abs() < 1e-5 && align.abs() < 1e-5,
            "{scores} {align}"
        );
        let other = config(8, 2).init(&device);
        let (scores, hidden) = terms(&other);
        let align = alignment_term(hidden, &targets, &teacher_out).into_scalar::<f32>();
        assert!(scores > 1e-3 && align > 1e-3, "{scores} {align}");
    }
}
