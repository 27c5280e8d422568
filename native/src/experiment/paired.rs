//! Paired comparison of models on the same held-out cases: each case's NDCG@10 under every
//! model, the mean and its standard error, the paired difference to each other model with the
//! standard error of the per-case differences, and (for two others) the share of the gap from
//! the first to the second that the model closes, with a bootstrap standard error.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// NDCG@`k` of each case from its 1-based rank: 1/log2(rank + 1) within the cut-off, else 0.
pub fn ndcg_per_case(ranks: &[usize], k: usize) -> Vec<f64> {
    ranks
        .iter()
        .map(|&r| {
            if r <= k {
                1.0 / ((r + 1) as f64).log2()
            } else {
                0.0
            }
        })
        .collect()
}

/// Mean of `values` and their sample standard deviation (0 for fewer than two values).
fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// Mean of `values` and its standard error (sample standard deviation / √n).
pub fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let (mean, sd) = mean_and_sd(values);
    (mean, sd / (values.len().max(1) as f64).sqrt())
}

/// Mean of `a − b` over paired cases and its standard error.
pub fn paired_difference(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "paired values");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    mean_and_se(&d)
}

/// The share of the gap from `from` to `to` that `model` closes, (mean(model) − mean(from)) /
/// (mean(to) − mean(from)), and its standard error over `resamples` bootstrap resamples of the
/// cases (seeded, so the figure is reproducible).
pub fn gap_closed(model: &[f64], from: &[f64], to: &[f64], resamples: usize) -> (f64, f64) {
    let n = model.len();
    assert!(from.len() == n && to.len() == n, "paired values");
    let share = |idx: &mut dyn Iterator<Item = usize>| {
        let (mut m, mut f, mut t) = (0.0, 0.0, 0.0);
        for i in idx {
            m += model[i];
            f += from[i];
            t += to[i];
        }
        (m - f) / (t - f)
    };
    let point = share(&mut (0..n));
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let draws: Vec<f64> = (0..resamples)
        .map(|_| {
            let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            share(&mut picks.into_iter())
        })
        .filter(|v| v.is_finite())
        .collect();
    // The bootstrap standard error is the spread of the resampled statistics.
    (point, mean_and_sd(&draws).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_case_ndcg_means_and_paired_errors_follow_their_formulas() {
        let ndcg = ndcg_per_case(&[1, 3, 11, 10], 10);
        assert_eq!(ndcg[0], 1.0);
        assert!((ndcg[1] - 0.5).abs() < 1e-12);
        assert_eq!(ndcg[2], 0.0);
        assert!((ndcg[3] - 1.0 / 11f64.log2()).abs() < 1e-12);
        let (mean, se) = mean_and_se(&[1.0, 2.0, 3.0, 4.0]);
        // Sample variance 5/3, SE √(5/12).
        assert_eq!(mean, 2.5);
        assert!((se - (5.0f64 / 12.0).sqrt()).abs() < 1e-12);
        // Paired: a constant shift has no error, however spread the values are.
        let a = [0.1, 0.9, 0.4, 0.7];
        let b: Vec<f64> = a.iter().map(|v| v - 0.05).collect();
        let (d, se) = paired_difference(&a, &b);
        assert!((d - 0.05).abs() < 1e-12 && se < 1e-12);
    }

    #[test]
    fn the_gap_closed_is_the_ratio_of_mean_differences_with_a_bootstrap_error() {
        // from = 0, to = 1 everywhere; model closes half of the gap on average.
        let n = 400;
        let from = vec![0.0; n];
        let to = vec![1.0; n];
        let model: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let (share, se) = gap_closed(&model, &from, &to, 500);
        assert!((share - 0.5).abs() < 1e-12);
        // The bootstrap SE of a mean of 0/1 values with p = 0.5: √(0.25 / n) = 0.025.
        assert!((se - 0.025).abs() < 0.004, "{se}");
        let exact = gap_closed(&to, &from, &to, 100);
        assert_eq!(exact, (1.0, 0.0));
    }
}
