//! Sampled softmax's negatives: each sequence draws its own uniform and in-batch negatives, and
//! every logit is corrected by −log Q, Q being the item's expected count among the negatives.

use rand::RngExt;

/// The training targets' distribution over the catalog, and which items uniform negatives are
/// drawn from: the titles that were in the catalog when the training data ends. A title that
/// arrives later (one a device is pushed after the model was exported) was never shown to a
/// member in the training data, so training does not push its vector down as a negative.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemDistribution {
    /// Item `i`'s share of the training targets (the in-batch draws follow it).
    pub share: Vec<f32>,
    /// Whether item `i` may be drawn as a uniform negative.
    pub drawable: Vec<bool>,
    /// The drawable items' indices, ascending.
    drawable_items: Vec<i64>,
    /// −1e9 for each item that is not drawable, 0 for the others; `None` when all are.
    absent_bias: Option<Vec<f32>>,
}

impl ItemDistribution {
    /// Target shares `share` (one per catalog item), every item drawable.
    pub fn new(share: Vec<f32>) -> Self {
        let n = share.len();
        Self::with_drawable(share, vec![true; n])
    }

    /// Target shares `share`, uniform negatives drawn among the items where `drawable` holds.
    ///
    /// # Panics
    /// If the two lists differ in length.
    pub fn with_drawable(share: Vec<f32>, drawable: Vec<bool>) -> Self {
        assert_eq!(share.len(), drawable.len(), "one drawable flag per item");
        let drawable_items: Vec<i64> = (0..drawable.len() as i64)
            .filter(|&i| drawable[i as usize])
            .collect();
        let absent_bias = (drawable_items.len() < drawable.len()).then(|| {
            drawable
                .iter()
                .map(|&d| if d { 0.0 } else { -1e9 })
                .collect()
        });
        Self {
            share,
            drawable,
            drawable_items,
            absent_bias,
        }
    }

    /// What a full softmax adds to every logit row `[n_items]`: −1e9 for the items that are
    /// not drawable (they had not arrived), 0 for the others; `None` when every item is.
    pub fn absent_bias(&self) -> Option<&[f32]> {
        self.absent_bias.as_deref()
    }

    /// Number of items uniform negatives are drawn from.
    pub fn n_drawable(&self) -> usize {
        self.drawable_items.len()
    }
}

/// How a batch's negatives are drawn and what each item's log Q is.
#[derive(Debug, Clone)]
pub struct NegativeSampler<'a> {
    /// Items drawn uniformly from the drawable items, per sequence.
    pub uniform: usize,
    /// Other targets of the batch drawn as negatives, per sequence.
    pub in_batch: usize,
    /// The targets' distribution and the drawable items.
    pub items: &'a ItemDistribution,
}

impl<'a> NegativeSampler<'a> {
    /// `uniform` uniform draws (none when no item is drawable) and `in_batch` draws among the
    /// batch's `real_targets` (at most their number) per sequence.
    pub fn new(
        uniform: usize,
        in_batch: usize,
        real_targets: usize,
        items: &'a ItemDistribution,
    ) -> Self {
        Self {
            uniform: if items.n_drawable() == 0 { 0 } else { uniform },
            in_batch: in_batch.min(real_targets),
            items,
        }
    }

    /// Negatives per sequence.
    pub fn per_sequence(&self) -> usize {
        self.uniform + self.in_batch
    }

    /// log of item `j`'s expected count among one sequence's negatives: uniform draws (for a
    /// drawable item) plus in-batch draws (which follow the training distribution).
    pub fn log_q(&self, j: usize) -> f32 {
        let uniform = if self.items.drawable[j] {
            self.uniform as f64 / self.items.n_drawable() as f64
        } else {
            0.0
        };
        (uniform + self.in_batch as f64 * f64::from(self.items.share[j]))
            .max(1e-12)
            .ln() as f32
    }

    /// `sequences` rows of [`NegativeSampler::per_sequence`] negatives, row-major: each row's
    /// uniform draws, then its in-batch draws among `real_targets`. Each sequence draws its own
    /// (shared by its tokens): as cheap as one shared set (one batched matmul), but every step
    /// pushes `batch` times more items away, which the item table needs to learn quickly.
    pub fn draw(&self, sequences: usize, real_targets: &[i64], rng: &mut impl RngExt) -> Vec<i64> {
        let pool = &self.items.drawable_items;
        let mut neg = Vec::with_capacity(sequences * self.per_sequence());
        for _ in 0..sequences {
            neg.extend((0..self.uniform).map(|_| pool[rng.random_range(0..pool.len())]));
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
        let share = ItemDistribution::new(vec![0.5, 0.25, 0.25, 0.0]);
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

    #[test]
    fn titles_not_yet_in_the_catalog_are_never_drawn_uniformly() {
        // Items 1 and 3 arrive after the training data: only 0 and 2 are drawn uniformly.
        let items = ItemDistribution::with_drawable(
            vec![0.5, 0.0, 0.5, 0.0],
            vec![true, false, true, false],
        );
        assert_eq!(items.n_drawable(), 2);
        assert_eq!(items.absent_bias(), Some(&[0.0, -1e9, 0.0, -1e9][..]));
        assert_eq!(ItemDistribution::new(vec![0.5, 0.5]).absent_bias(), None);
        let sampler = NegativeSampler::new(50, 0, 0, &items);
        let neg = sampler.draw(4, &[], &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(neg.len(), 200);
        assert!(neg.iter().all(|&j| j == 0 || j == 2), "{neg:?}");
        assert!(neg.contains(&0) && neg.contains(&2));
        // Expected count of item 0: 50 uniform draws over 2 items; item 1 is never drawn.
        assert!((sampler.log_q(0) - 25f32.ln()).abs() < 1e-6);
        assert!(sampler.log_q(1) < -27.0);
        // With nothing drawable, no uniform draws are made.
        let none = ItemDistribution::with_drawable(vec![1.0], vec![false]);
        assert_eq!(NegativeSampler::new(5, 2, 3, &none).per_sequence(), 2);
    }
}
