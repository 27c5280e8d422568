//! The next-item objective: full or sampled softmax (log-Q corrected) over the item vectors,
//! for the next item and, with multi-token prediction, the K−1 items after it.

use burn::tensor::{Bool, Tensor, activation};

use super::config::{ObjectiveConfig, SoftmaxKind};
use super::targets::TrainingTargets;
use super::weighted_nll;
use encore_core::model::l2_normalize;

/// The hidden states `[m, d]` as the objectives score them: L2-normalised when
/// `cfg.normalize`, divided by `cfg.temperature`.
pub fn scoring_states(hidden: Tensor<2>, cfg: &ObjectiveConfig) -> Tensor<2> {
    let h = if cfg.normalize {
        l2_normalize(hidden)
    } else {
        hidden
    };
    h.div_scalar(cfg.temperature)
}

/// The next-item term and the multi-token term (`None` with one item per token), each `[1]`.
///
/// `hidden` `[batch·seq, d]` are the model's outputs of `batch` sequences, `items` `[n_items, d]`
/// the item vectors (already normalised when `cfg.normalize`).
pub fn next_item_terms(
    hidden: Tensor<2>,
    items: Tensor<2>,
    batch: usize,
    targets: &TrainingTargets,
    cfg: &ObjectiveConfig,
) -> (Tensor<1>, Option<Tensor<1>>) {
    let [m, d] = hidden.dims();
    let (b, s) = (batch, m / batch.max(1));
    let h = scoring_states(hidden, cfg);
    let norm = targets.weight_sum;
    let k_max = targets.future_items.len();
    // The logit of each token's k-th target: a row-wise dot product.
    let target_logit = |k: usize| {
        h.clone()
            .mul(items.clone().select(0, targets.future_items[k].0.clone()))
            .sum_dim(1)
            .reshape([m])
    };

    if cfg.softmax == SoftmaxKind::Full {
        // −log softmax(z)[t] = logsumexp(z) − z_t: one pass over the [tokens, items] logits
        // serves every future offset.
        let mut logits = h.clone().matmul(items.clone().transpose());
        if let Some(absent) = &targets.absent {
            let n = absent.dims()[0];
            logits = logits + absent.clone().reshape([1, n]).expand([m, n]);
        }
        let max = logits.clone().max_dim(1).detach();
        let lse = logits
            .sub(max.clone())
            .exp()
            .sum_dim(1)
            .log()
            .add(max)
            .reshape([m]);
        let pick = |k: usize| {
            target_logit(k)
                .sub(lse.clone())
                .mul(targets.future_items[k].1.clone())
                .sum()
                .neg()
                .div_scalar(norm.max(1e-6))
        };
        return (pick(0), (1..k_max).map(pick).reduce(|a, b| a + b));
    }

    // Sampled softmax: a sequence's negatives' logits are shared by every future offset k;
    // only the accidental-hit mask and the positive column depend on k.
    let (neg, neg_q) = targets
        .negatives
        .as_ref()
        .expect("sampled softmax targets carry negatives");
    let r = neg.dims()[1];
    let neg_rows = items
        .clone()
        .select(0, neg.clone().reshape([b * r]))
        .reshape([b, r, d]);
    let negative_logits = h
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
    let term = |k: usize| -> Tensor<1> {
        let (target, weight) = &targets.future_items[k];
        let pos = target_logit(k)
            .sub(targets.target_log_q[k].clone())
            .reshape([m, 1]);
        let hits: Tensor<2, Bool> = target
            .clone()
            .reshape([m, 1])
            .expand([m, r])
            .equal(neg_per_token.clone());
        let logits = Tensor::cat(vec![pos, negative_logits.clone().mask_fill(hits, -1e9)], 1);
        let picked = activation::log_softmax(logits, 1)
            .slice([0..m, 0..1])
            .reshape([m]);
        weighted_nll(picked, weight.clone(), norm)
    };
    (term(0), (1..k_max).map(term).reduce(|a, b| a + b))
}
