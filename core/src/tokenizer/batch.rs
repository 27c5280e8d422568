//! A right-padded batch of token sequences, uploaded to a device.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::sequence::{TOKEN_FIELDS, TokenSequence};

/// A right-padded batch of token sequences on a device.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// Every token's input fields, `[batch, seq, TOKEN_FIELDS]` (see
    /// [`TokenField::ALL`](super::TokenField::ALL)).
    pub fields: Tensor<3, Int>,
    /// Dense target index per token, 0 where there is none (see `target_mask`): `[batch, seq]`.
    pub target: Tensor<2, Int>,
    /// 1.0 where `target` is a real target, 0.0 on padding: `[batch, seq]`.
    pub target_mask: Tensor<2>,
    /// Real length of each sequence.
    pub lengths: Vec<usize>,
}

impl TokenBatch {
    /// The padded sequence length of a batch of `seqs`: the longest one's (at least 1).
    pub fn padded_len(seqs: &[TokenSequence]) -> usize {
        seqs.iter()
            .map(TokenSequence::len)
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// Pads `seqs` on the right to the longest one and uploads them to `device` (three
    /// transfers: fields, targets, mask).
    pub fn new(seqs: &[TokenSequence], device: &Device) -> Self {
        let (b, s) = (seqs.len(), Self::padded_len(seqs));
        let mut fields = vec![0i64; b * s * TOKEN_FIELDS];
        let mut target = vec![0i64; b * s];
        let mut mask = vec![0f32; b * s];
        for (r, seq) in seqs.iter().enumerate() {
            for (c, token) in seq.tokens.iter().enumerate() {
                let at = (r * s + c) * TOKEN_FIELDS;
                fields[at..at + TOKEN_FIELDS].copy_from_slice(&token.fields());
                if let Some(t) = &token.target {
                    target[r * s + c] = i64::from(t.item);
                    mask[r * s + c] = 1.0;
                }
            }
        }
        Self {
            fields: Tensor::from_data(TensorData::new(fields, [b, s, TOKEN_FIELDS]), device),
            target: Tensor::from_data(TensorData::new(target, [b, s]), device),
            target_mask: Tensor::from_data(TensorData::new(mask, [b, s]), device),
            lengths: seqs.iter().map(TokenSequence::len).collect(),
        }
    }

    /// `[batch, seq]`.
    pub fn dims(&self) -> [usize; 2] {
        let [b, s, _] = self.fields.dims();
        [b, s]
    }
}
