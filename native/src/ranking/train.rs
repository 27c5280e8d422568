//! Training the contextual ranker: binary cross-entropy of each shown candidate's logit
//! against whether it was engaged, Adam, the personalization weight α drawn per impression
//! (so that any α serves at request time) or fixed.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData, activation};
use encore_core::ranker::{Ranker, RankerConfig};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use encore_core::ranker::RankerRows;

/// How the ranker trains.
#[derive(Debug, Clone, PartialEq)]
pub struct RankerTrainConfig {
    /// Passes over the batches.
    pub epochs: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// α per impression: `None` draws it uniformly from [0, 1]; `Some(a)` fixes it (0: the
    /// ranker without the foundation model's member features).
    pub alpha: Option<f32>,
    /// Seed of the initial weights, the batch order and α.
    pub seed: u64,
}

/// Mean binary cross-entropy of `logits` against `labels` (both `[n]`).
fn bce(logits: Tensor<1>, labels: Tensor<1>) -> Tensor<1> {
    // softplus(l) − y·l, stable: max(l, 0) + log(1 + e^{−|l|}) − y·l.
    let softplus = activation::softplus(logits.clone(), 1.0);
    softplus.sub(logits.mul(labels)).mean()
}

/// Trains a ranker of shape `shape` on `batches` (each a batch of impressions' rows) on the
/// autodiff `device`; prints each epoch's mean loss. Returns it on the inner backend.
pub fn train_ranker(
    shape: &RankerConfig,
    batches: &[RankerRows],
    cfg: &RankerTrainConfig,
    device: &Device,
) -> anyhow::Result<Ranker> {
    anyhow::ensure!(!batches.is_empty(), "no training impressions");
    device.seed(cfg.seed);
    let mut ranker = shape.init(device);
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..batches.len()).collect();
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut n) = (0f64, 0usize);
        for &b in &order {
            let rows = &batches[b];
            let alpha: Vec<f32> = rows
                .sizes
                .iter()
                .map(|_| cfg.alpha.unwrap_or_else(|| rng.random()))
                .collect();
            let input = rows.input_with_alpha(shape, &alpha, device);
            let labels =
                Tensor::<1>::from_data(TensorData::new(rows.label.clone(), [rows.len()]), device);
            let loss = bce(ranker.forward(&input), labels);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            anyhow::ensure!(
                value.is_finite(),
                "the ranker's loss is not finite at epoch {epoch}"
            );
            let grads = GradientsParams::from_grads(loss.backward(), &ranker);
            ranker = optim.step(cfg.learning_rate, ranker, grads);
            sum += value;
            n += 1;
        }
        eprintln!("ranker epoch {epoch}: loss {:.4}", sum / n.max(1) as f64);
    }
    Ok(ranker.valid())
}

/// The logit of every row under `alpha` (one per impression).
pub fn logits(ranker: &Ranker, shape: &RankerConfig, rows: &RankerRows, alpha: f32) -> Vec<f32> {
    let alpha = vec![alpha; rows.sizes.len()];
    let device = ranker.out.weight.val().device();
    ranker
        .forward(&rows.input_with_alpha(shape, &alpha, &device))
        .into_data()
        .try_into_vec()
        .expect("f32 logits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bce_matches_its_formula() {
        let device = Device::flex();
        let l = Tensor::<1>::from_data(TensorData::new(vec![2.0f32, -1.0], [2]), &device);
        let y = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 0.0], [2]), &device);
        let got = bce(l, y).into_scalar::<f32>();
        // −log σ(2) and −log(1 − σ(−1)), averaged.
        let want = ((1.0f32 + (-2.0f32).exp()).ln() + (1.0f32 + (-1.0f32).exp()).ln()) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
