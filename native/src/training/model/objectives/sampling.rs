//! Sampled softmax's negatives: each sequence draws its own uniform and in-batch negatives, and
//! every logit is corrected by −log Q, Q being the item's expected count among the negatives.

use rand::RngExt;

/// How a batch's negatives are drawn and what each item's log Q is.
#[derive(Debug, Clone)]
pub struct NegativeSampler<'a> {
    /// Items drawn uniformly from the catalog, per sequence.
    pub uniform: usize,
    /// Other targets of the batch drawn as negatives, per sequence.
    pub in_batch: usize,
    /// Item `i`'s share of the training targets (the in-batch draws follow it).
    pub item_share: &'a [f32],
}

impl<'a> NegativeSampler<'a> {
    /// `uniform` uniform draws and `in_batch` draws among the batch's `real_targets` (at most
    /// their number) per sequence.
    pub fn new(
        uniform: usize,
        in_batch: usize,
        real_targets: usize,
        item_share: &'a [f32],
    ) -> Self {
        Self {
            uniform,
            in_batch: in_batch.min(real_targets),
            item_share,
        }
    }

    /// Negatives per sequence.
    pub fn per_sequence(&self) -> usize {
        self.uniform + self.in_batch
    }

    /// log of item `j`'s expected count among one sequence's negatives: uniform draws plus
    /// in-batch draws (which follow the training distribution).
    pub fn log_q(&self, j: usize) -> f32 {
        let n = self.item_share.len() as f64;
        ((self.uniform as f64 / n) + self.in_batch as f64 * f64::from(self.item_share[j]))
            .max(1e-12)
            .ln() as f32
    }

    /// `sequences` rows of [`NegativeSampler::per_sequence`] negatives, row-major: each row's
    /// uniform draws, then its in-batch draws among `real_targets`. Each sequence draws its own
    /// (shared by its tokens): as cheap as one shared set (one batched matmul), but every step
    /// pushes `batch` times more items away, which the item table needs to learn quickly.
    pub fn draw(&self, sequences: usize, real_targets: &[i64], rng: &mut impl RngExt) -> Vec<i64> {
        let n = self.item_share.len();
        let mut neg = Vec::with_capacity(sequences * self.per_sequence());
        for _ in 0..sequences {
            neg.extend((0..self.uniform).map(|_| rng.random_range(0..n) as i64));
            neg.extend(
                (0..self.in_batch).map(|_| real_targets[rng.random_range(0..real_targets.len())]),
            );
        }
        neg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn negatives_are_drawn_per_sequence_with_their_expected_counts() {
        let share = [0.5, 0.25, 0.25, 0.0];
        let sampler = NegativeSampler::new(8, 10, 3, &share);
        assert_eq!((sampler.in_batch, sampler.per_sequence()), (3, 11));
        // Expected count of item 0: 8/4 uniform + 3 · 0.5 in-batch.
        assert!((sampler.log_q(0) - 3.5f32.ln()).abs() < 1e-6);
        assert!((sampler.log_q(3) - 2f32.ln()).abs() < 1e-6);
        let real = [1, 2, 2];
        let neg = sampler.draw(4, &real, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(neg.len(), 44);
        for row in neg.chunks(11) {
            assert!(row[..8].iter().all(|&j| (0..4).contains(&j)));
            assert!(row[8..].iter().all(|j| real.contains(j)));
        }
        assert_ne!(neg[..11], neg[11..22], "each sequence draws its own");
        let again = sampler.draw(4, &real, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(again, neg);
    }
}
