//! The weights of a serving step in plain host vectors, as every engine reads them.

use burn::nn::{LayerNorm, Linear};

use crate::model::host_values;

/// A linear layer: `weight` `[inner, out]` row-major (burn's layout) and `bias` `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWeights {
    /// `[inner, out]`, row-major.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
    /// Output width.
    pub out: usize,
}

impl LinearWeights {
    /// A burn linear layer's weights (a missing bias reads as zeros).
    pub fn from_linear(l: &Linear) -> Self {
        let [_, out] = l.weight.val().dims();
        Self {
            weight: host_values(l.weight.val()),
            bias: l
                .bias
                .as_ref()
                .map_or_else(|| vec![0.0; out], |b| host_values(b.val())),
            out,
        }
    }

    /// Input width (`weight.len() / out`).
    pub fn inner(&self) -> usize {
        self.weight.len() / self.out.max(1)
    }

    /// One layer computing each of `parts` (same input width) side by side: its output is
    /// the parts' outputs one after another.
    pub fn side_by_side(parts: &[LinearWeights]) -> Self {
        let inner = parts.first().map_or(0, LinearWeights::inner);
        let out = parts.iter().map(|p| p.out).sum();
        let mut weight = Vec::with_capacity(inner * out);
        for r in 0..inner {
            for p in parts {
                weight.extend_from_slice(&p.weight[r * p.out..(r + 1) * p.out]);
            }
        }
        Self {
            weight,
            bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
            out,
        }
    }
}

/// A layer norm's scale and shift, `[width]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct NormWeights {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
}

impl NormWeights {
    /// A burn layer norm's scale and shift (a missing shift reads as zeros).
    pub fn from_norm(n: &LayerNorm) -> Self {
        let gamma = host_values(n.gamma.val());
        let beta = n
            .beta
            .as_ref()
            .map_or_else(|| vec![0.0; gamma.len()], |b| host_values(b.val()));
        Self { gamma, beta }
    }
}
