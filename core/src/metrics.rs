//! Ranking metrics for next-item evaluation: HR@K, NDCG@K and MRR from full-catalog ranks.

use serde::{Deserialize, Serialize};

/// Rank of `target` (1 = best): 1 + the number of items, not excluded, scoring strictly higher.
pub fn rank_of(scores: &[f32], target: usize, excluded: impl Fn(usize) -> bool) -> usize {
    let t = scores[target];
    1 + scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| i != target && s > t && !excluded(i))
        .count()
}

/// HR, NDCG and MRR over a set of ranks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    /// Cut-offs K, ascending.
    pub ks: Vec<usize>,
    /// Share of cases with rank ≤ K, per K.
    pub hit_rate: Vec<f64>,
    /// Mean of 1/log2(rank + 1) for rank ≤ K (else 0), per K.
    pub ndcg: Vec<f64>,
    /// Mean of 1/rank.
    pub mrr: f64,
    /// Number of cases.
    pub count: usize,
}

impl RankingMetrics {
    /// Metrics of `ranks` (1-based) at each cut-off in `ks`.
    pub fn from_ranks(ranks: &[usize], ks: &[usize]) -> Self {
        let n = ranks.len().max(1) as f64;
        let hit_rate = ks
            .iter()
            .map(|&k| ranks.iter().filter(|&&r| r <= k).count() as f64 / n)
            .collect();
        let ndcg = ks
            .iter()
            .map(|&k| {
                (ranks
                    .iter()
                    .filter(|&&r| r <= k)
                    .map(|&r| 1.0 / ((r + 1) as f64).log2())
                    .sum::<f64>()
                    // An empty float sum is −0.0; add +0.0 so "no hits" prints as 0.
                    + 0.0)
                    / n
            })
            .collect();
        let mrr = ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / n;
        Self {
            ks: ks.to_vec(),
            hit_rate,
            ndcg,
            mrr,
            count: ranks.len(),
        }
    }

    /// HR at cut-off `k` (which must be one of `ks`).
    pub fn hr_at(&self, k: usize) -> f64 {
        self.hit_rate[self
            .ks
            .iter()
            .position(|&x| x == k)
            .expect("k is one of ks")]
    }

    /// NDCG at cut-off `k` (which must be one of `ks`).
    pub fn ndcg_at(&self, k: usize) -> f64 {
        self.ndcg[self
            .ks
            .iter()
            .position(|&x| x == k)
            .expect("k is one of ks")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_counts_strictly_higher_and_skips_exclusions() {
        let s = [0.5, 0.9, 0.5, 0.1, 0.7];
        assert_eq!(rank_of(&s, 0, |_| false), 3); // 0.9 and 0.7 beat it; the tie does not
        assert_eq!(rank_of(&s, 2, |_| false), 3);
        assert_eq!(rank_of(&s, 1, |_| false), 1);
        assert_eq!(rank_of(&s, 0, |i| i == 1), 2);
        assert_eq!(rank_of(&s, 3, |_| false), 5);
    }

    #[test]
    fn metrics_match_hand_computation() {
        let m = RankingMetrics::from_ranks(&[1, 2, 10, 11], &[1, 10]);
        assert_eq!(m.hr_at(1), 0.25);
        assert_eq!(m.hr_at(10), 0.75);
        let ndcg10 = (1.0 + 1.0 / 3f64.log2() + 1.0 / 11f64.log2()) / 4.0;
        assert!((m.ndcg_at(10) - ndcg10).abs() < 1e-12);
        assert!((m.ndcg_at(1) - 0.25).abs() < 1e-12);
        assert!((m.mrr - (1.0 + 0.5 + 0.1 + 1.0 / 11.0) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn k_boundaries_ties_and_exclusions() {
        // Rank exactly K is a hit at K; rank K + 1 is not.
        let m = RankingMetrics::from_ranks(&[10, 11], &[10, 50, 200]);
        assert_eq!(m.hr_at(10), 0.5);
        assert!((m.ndcg_at(10) - 0.5 / 11f64.log2()).abs() < 1e-12);
        assert_eq!(m.hr_at(50), 1.0);
        // Ties never count against the target; excluded items never count at all.
        let s = [0.3, 0.3, 0.3, 0.9, 0.8];
        assert_eq!(rank_of(&s, 1, |_| false), 3);
        assert_eq!(rank_of(&s, 1, |i| i == 3 || i == 4), 1);
        let empty = RankingMetrics::from_ranks(&[], &[10]);
        assert_eq!((empty.hr_at(10), empty.count), (0.0, 0));
        let missed = RankingMetrics::from_ranks(&[20], &[10]);
        assert!(
            missed.ndcg_at(10).is_sign_positive(),
            "no hits is +0, not -0"
        );
    }
}
