//! How tensors are stored: f32, f16, or int8 with one f32 scale per row.
//!
//! Vectors (biases, norms, the layer mix) always stay f32: they are tiny and sensitive.
//! Matrices follow the file's [`Quantization`]. An int8 tensor of shape `[.., cols]` holds
//! `rows = elements / cols` little-endian f32 scales, then the `rows × cols` values as i8;
//! element `x[r][c] = q[r][c] × scale[r]`, with `scale[r] = max |x[r]| / 127`.

use serde::{Deserialize, Serialize};

use super::file::{TensorDType, WeightFileError};

/// The storage a weight file uses for its matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Quantization {
    /// Every tensor as 32-bit floats (exact).
    #[default]
    F32,
    /// Matrices as IEEE half floats (half the size).
    F16,
    /// Matrices as int8 with a per-row f32 scale (about a quarter of the size).
    Int8,
}

impl Quantization {
    /// Lowercase name (`f32`, `f16`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            Quantization::F32 => "f32",
            Quantization::F16 => "f16",
            Quantization::Int8 => "int8",
        }
    }

    /// Parses [`Quantization::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::F32, Self::F16, Self::Int8]
            .into_iter()
            .find(|q| q.name() == name)
    }

    /// The element type this quantization stores a tensor of `shape` as.
    pub fn dtype_for(self, shape: &[usize]) -> TensorDType {
        match (self, shape.len()) {
            (_, 0 | 1) | (Quantization::F32, _) => TensorDType::F32,
            (Quantization::F16, _) => TensorDType::F16,
            (Quantization::Int8, _) => TensorDType::Int8Rows,
        }
    }
}

/// Rows of an int8 tensor: every dimension but the last.
fn rows_cols(shape: &[u64]) -> Option<(u64, u64)> {
    let cols = *shape.last()?;
    let elems = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
    Some((if cols == 0 { 0 } else { elems / cols }, cols))
}

impl TensorDType {
    /// Bytes a tensor of `shape` takes in this type, or `None` on overflow.
    pub fn stored_len(self, shape: &[u32]) -> Option<u64> {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let elems = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        match self {
            TensorDType::F32 => elems.checked_mul(4),
            TensorDType::F16 => elems.checked_mul(2),
            TensorDType::Int8Rows => {
                let (rows, _) = rows_cols(&shape)?;
                rows.checked_mul(4)?.checked_add(elems)
            }
        }
    }
}

/// Encodes f32 `values` of `shape` as `dtype`'s bytes.
pub fn encode_values(values: &[f32], shape: &[usize], dtype: TensorDType) -> Vec<u8> {
    match dtype {
        TensorDType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        TensorDType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        TensorDType::Int8Rows => {
            let cols = shape.last().copied().unwrap_or(1).max(1);
            let rows: Vec<&[f32]> = values.chunks(cols).collect();
            let scales: Vec<f32> = rows
                .iter()
                .map(|r| r.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0)
                .collect();
            let mut out: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            for (row, &scale) in rows.iter().zip(&scales) {
                out.extend(row.iter().map(|&v| {
                    let q = if scale > 0.0 {
                        (v / scale).round()
                    } else {
                        0.0
                    };
                    q.clamp(-127.0, 127.0) as i8 as u8
                }));
            }
            out
        }
    }
}

/// Decodes a tensor's bytes (length already checked against its shape) to f32, refusing NaN
/// and infinite values and scales. `name` names the tensor in the error.
pub fn decode_values(
    name: &str,
    bytes: &[u8],
    shape: &[u32],
    dtype: TensorDType,
) -> Result<Vec<f32>, WeightFileError> {
    let non_finite = |index: usize| WeightFileError::NonFinite {
        name: name.to_string(),
        index,
    };
    let values: Vec<f32> = match dtype {
        TensorDType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        TensorDType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        TensorDType::Int8Rows => {
            let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            let (rows, cols) = rows_cols(&shape64).expect("validated shape");
            let (scale_bytes, q) = bytes.split_at(rows as usize * 4);
            let scales: Vec<f32> = scale_bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            if let Some(row) = scales.iter().position(|s| !s.is_finite()) {
                return Err(WeightFileError::InvalidTensor {
                    name: name.to_string(),
                    reason: format!("int8 scale of row {row} is not finite"),
                });
            }
            q.iter()
                .enumerate()
                .map(|(i, &b)| (b as i8) as f32 * scales[i / cols.max(1) as usize])
                .collect()
        }
    };
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(non_finite(index)),
        None => Ok(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f32], shape: &[usize], dtype: TensorDType) -> Vec<f32> {
        let bytes = encode_values(values, shape, dtype);
        let shape32: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
        assert_eq!(Some(bytes.len() as u64), dtype.stored_len(&shape32));
        decode_values("t", &bytes, &shape32, dtype).unwrap()
    }

    #[test]
    fn int8_rows_keep_each_row_within_half_a_step_of_its_scale() {
        let values: Vec<f32> = (0..60)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.13)
            .collect();
        let mut values = values;
        values[10..20].fill(0.0); // an all-zero row: scale 0, decoded exactly
        let back = round_trip(&values, &[6, 10], TensorDType::Int8Rows);
        for r in 0..6 {
            let row = &values[r * 10..r * 10 + 10];
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            for c in 0..10 {
                let err = (back[r * 10 + c] - row[c]).abs();
                assert!(err <= max / 127.0 / 2.0 + 1e-7, "row {r} col {c}: {err}");
            }
        }
        assert!(back[10..20].iter().all(|&v| v == 0.0));
        // Each row's largest magnitude maps to ±127 and comes back (to float rounding).
        for r in [0, 2, 3, 4, 5] {
            let row = &values[r * 10..r * 10 + 10];
            let c = (0..10)
                .max_by(|&a, &b| row[a].abs().total_cmp(&row[b].abs()))
                .unwrap();
            assert!((back[r * 10 + c] - row[c]).abs() <= 1e-6 * row[c].abs());
        }
    }

    #[test]
    fn f16_round_trip_is_within_half_precision() {
        let values = [1.0f32, -0.333_333, 1e-3, 65504.0, 0.0];
        let back = round_trip(&values, &[1, 5], TensorDType::F16);
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() * 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn vectors_stay_f32_and_matrices_follow_the_quantization() {
        assert_eq!(Quantization::Int8.dtype_for(&[64]), TensorDType::F32);
        assert_eq!(
            Quantization::Int8.dtype_for(&[3, 64]),
            TensorDType::Int8Rows
        );
        assert_eq!(Quantization::F16.dtype_for(&[3, 64]), TensorDType::F16);
        assert_eq!(Quantization::F32.dtype_for(&[3, 64]), TensorDType::F32);
    }

    #[test]
    fn non_finite_scales_and_halves_are_refused() {
        let mut bytes = encode_values(&[1.0, 2.0, 3.0, 4.0], &[2, 2], TensorDType::Int8Rows);
        bytes[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = decode_values("w", &bytes, &[2, 2], TensorDType::Int8Rows).unwrap_err();
        assert!(err.to_string().contains("row 1"), "{err}");
        let inf = half::f16::INFINITY.to_le_bytes();
        let err = decode_values("w", &[0, 0, inf[0], inf[1]], &[2], TensorDType::F16).unwrap_err();
        assert_eq!(
            err,
            WeightFileError::NonFinite {
                name: "w".into(),
                index: 1
            }
        );
    }
}
