//! Keeping embeddings usable across retrains: the orthogonal rotation R that best maps a new
//! model's item vectors onto the previous model's (orthogonal Procrustes: R is the polar factor
//! of NᵀP, N and P the two models' vectors of the items both know), applied to the new item
//! and member vectors alike; and the figures that say how well it worked.
//!
//! The polar factor is computed by the Newton–Schulz iteration X ← X(3I − XᵀX)/2 from
//! NᵀP / ‖NᵀP‖, which converges to it whenever NᵀP has full rank, with matrix products only.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use super::EmbeddingTable;
use crate::io::write_atomic;

/// An orthogonal `dim × dim` matrix; a vector x (a row) is aligned as x·R.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    /// Width of the vectors it rotates.
    pub dim: usize,
    /// Row-major `[dim · dim]`.
    pub matrix: Vec<f64>,
}

/// `a` `[r × k]` · `b` `[k × c]`, row-major.
fn matmul(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for p in 0..k {
            let x = a[i * k + p];
            if x == 0.0 {
                continue;
            }
            for j in 0..c {
                out[i * c + j] += x * b[p * c + j];
            }
        }
    }
    out
}

/// `a` `[r × c]` transposed.
fn transpose(a: &[f64], r: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = a[i * c + j];
        }
    }
    out
}

/// Largest |RᵀR − I| entry.
fn orthogonality_error(r: &[f64], d: usize) -> f64 {
    let rtr = matmul(&transpose(r, d, d), r, d, d, d);
    (0..d * d)
        .map(|i| (rtr[i] - if i / d == i % d { 1.0 } else { 0.0 }).abs())
        .fold(0.0, f64::max)
}

/// Rows of `new` and `old` for the ids both hold, in `new`'s order, as f64.
fn matched(new: &EmbeddingTable, old: &EmbeddingTable) -> (Vec<f64>, Vec<f64>, usize) {
    let at: HashMap<u32, usize> = old.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let (mut a, mut b, mut n) = (Vec::new(), Vec::new(), 0);
    for (i, id) in new.ids.iter().enumerate() {
        if let Some(&j) = at.get(id) {
            a.extend(new.row(i).iter().map(|&v| f64::from(v)));
            b.extend(old.row(j).iter().map(|&v| f64::from(v)));
            n += 1;
        }
    }
    (a, b, n)
}

impl Rotation {
    /// The rotation that maps `new`'s item vectors closest (least squares) onto `old`'s, fitted
    /// on the items both hold. Refuses tables of different widths, fewer shared items than
    /// dimensions, and vectors too degenerate for a unique rotation.
    pub fn fit(new: &EmbeddingTable, old: &EmbeddingTable) -> anyhow::Result<Self> {
        let d = new.dim;
        anyhow::ensure!(
            old.dim == d,
            "the two models' vectors have widths {d} and {}: a rotation needs the same width",
            old.dim
        );
        let (a, b, n) = matched(new, old);
        anyhow::ensure!(
            n >= d,
            "{n} items shared by both models, fewer than the {d} dimensions a rotation needs"
        );
        let m = matmul(&transpose(&a, n, d), &b, d, n, d);
        let norm = m.iter().map(|v| v * v).sum::<f64>().sqrt();
        anyhow::ensure!(norm > 0.0, "the item vectors are all zero");
        let mut x: Vec<f64> = m.iter().map(|v| v / norm).collect();
        for _ in 0..200 {
            let xtx = matmul(&transpose(&x, d, d), &x, d, d, d);
            let three_minus: Vec<f64> = (0..d * d)
                .map(|i| if i / d == i % d { 3.0 } else { 0.0 } - xtx[i])
                .collect();
            x = matmul(&x, &three_minus, d, d, d)
                .into_iter()
                .map(|v| v / 2.0)
                .collect();
            if orthogonality_error(&x, d) < 1e-10 {
                break;
            }
        }
        let err = orthogonality_error(&x, d);
        anyhow::ensure!(
            err < 1e-6,
            "the item vectors do not determine a rotation (RᵀR is {err:.1e} from I): they span \
             fewer than {d} dimensions"
        );
        Ok(Self { dim: d, matrix: x })
    }

    /// `table` with every vector rotated (x·R).
    pub fn apply(&self, table: &EmbeddingTable) -> EmbeddingTable {
        let d = self.dim;
        let rows: Vec<f64> = table.vectors.iter().map(|&v| f64::from(v)).collect();
        let rotated = matmul(&rows, &self.matrix, table.len(), d, d);
        EmbeddingTable {
            ids: table.ids.clone(),
            dim: d,
            vectors: rotated.into_iter().map(|v| v as f32).collect(),
        }
    }

    /// Writes the rotation as a safetensors file (`rotation`, f32 `[dim, dim]`), with the model
    /// versions it maps from and to as metadata.
    pub fn write(&self, path: &Path, from: &str, to: &str) -> anyhow::Result<()> {
        let bytes: Vec<u8> = self
            .matrix
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        let view = TensorView::new(Dtype::F32, vec![self.dim, self.dim], &bytes)?;
        let info = HashMap::from([
            ("encore.from_model_version".to_string(), from.to_string()),
            ("encore.to_model_version".to_string(), to.to_string()),
        ]);
        let out = safetensors::serialize(vec![("rotation", view)], Some(info))?;
        write_atomic(path, &out).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Cosine of two vectors (0 when either is zero).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// Mean cosine between the vectors of the same id in `new` and `old` (ids in both), and how
/// many ids that is.
pub fn mean_cosine(new: &EmbeddingTable, old: &EmbeddingTable) -> (f64, usize) {
    let at: HashMap<u32, usize> = old.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let (mut sum, mut n) = (0.0, 0);
    for (i, id) in new.ids.iter().enumerate() {
        if let Some(&j) = at.get(id) {
            sum += cosine(new.row(i), old.row(j));
            n += 1;
        }
    }
    (if n == 0 { 0.0 } else { sum / n as f64 }, n)
}

/// Each row's `k` nearest other rows by cosine (ids), in `table`.
fn neighbours(table: &EmbeddingTable, k: usize) -> Vec<Vec<u32>> {
    let unit: Vec<Vec<f32>> = (0..table.len())
        .map(|i| {
            let r = table.row(i);
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            r.iter().map(|v| v / n).collect()
        })
        .collect();
    (0..table.len())
        .map(|i| {
            let mut sims: Vec<(f32, u32)> = (0..table.len())
                .filter(|&j| j != i)
                .map(|j| {
                    let s = unit[i]
                        .iter()
                        .zip(&unit[j])
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
                    (s, table.ids[j])
                })
                .collect();
            let k = k.min(sims.len());
            if k > 0 {
                sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            }
            sims.truncate(k);
            sims.into_iter().map(|(_, id)| id).collect()
        })
        .collect()
}

/// The mean share of each item's `k` nearest items (by cosine, within each model) that the two
/// models share, over the items both hold. A rotation leaves it unchanged.
pub fn neighbour_overlap(new: &EmbeddingTable, old: &EmbeddingTable, k: usize) -> f64 {
    let at: HashMap<u32, usize> = old.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let (a, b) = (neighbours(new, k), neighbours(old, k));
    let (mut sum, mut n) = (0.0, 0);
    for (i, id) in new.ids.iter().enumerate() {
        if let Some(&j) = at.get(id) {
            let shared = a[i].iter().filter(|x| b[j].contains(x)).count();
            sum += shared as f64 / k.max(1) as f64;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// How two models' embeddings compare before and after aligning the new one to the old.
#[derive(Debug, Clone, Serialize)]
pub struct AlignmentReport {
    /// Items in both models.
    pub items: usize,
    /// Members in both sets.
    pub members: usize,
    /// Mean cosine of the same item's two vectors, before and after the rotation.
    pub item_cosine: (f64, f64),
    /// Mean cosine of the same member's two representations, before and after.
    pub member_cosine: (f64, f64),
    /// Mean share of an item's 20 nearest items the two models agree on (rotation-invariant).
    pub item_neighbours_top20: f64,
}

impl AlignmentReport {
    /// Compares `new` (the vectors as the new model gives them) with `old`, and `new` rotated
    /// by `rotation`.
    pub fn measure(new: &super::Embeddings, old: &super::Embeddings, rotation: &Rotation) -> Self {
        let (item_before, items) = mean_cosine(&new.items, &old.items);
        let (member_before, members) = mean_cosine(&new.members, &old.members);
        let (item_after, _) = mean_cosine(&rotation.apply(&new.items), &old.items);
        let (member_after, _) = mean_cosine(&rotation.apply(&new.members), &old.members);
        Self {
            items,
            members,
            item_cosine: (item_before, item_after),
            member_cosine: (member_before, member_after),
            item_neighbours_top20: neighbour_overlap(&new.items, &old.items, 20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_table(n: usize, d: usize, seed: u64) -> EmbeddingTable {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        EmbeddingTable {
            ids: (0..n as u32).map(|i| 100 + i).collect(),
            dim: d,
            vectors: (0..n * d).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
        }
    }

    /// A random orthogonal matrix: Gram–Schmidt on random columns.
    fn random_rotation(d: usize, seed: u64) -> Rotation {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut cols: Vec<Vec<f64>> = Vec::new();
        while cols.len() < d {
            let mut v: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            for c in &cols {
                let dot: f64 = v.iter().zip(c).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(c).for_each(|(a, b)| *a -= dot * b);
            }
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            cols.push(v.into_iter().map(|x| x / n).collect());
        }
        let mut m = vec![0.0; d * d];
        for (j, c) in cols.iter().enumerate() {
            for i in 0..d {
                m[i * d + j] = c[i];
            }
        }
        Rotation { dim: d, matrix: m }
    }

    /// `table`'s rows in reverse order (ids with them).
    fn reversed(table: &EmbeddingTable) -> EmbeddingTable {
        let rows: Vec<Vec<f32>> = (0..table.len())
            .rev()
            .map(|i| table.row(i).to_vec())
            .collect();
        EmbeddingTable {
            ids: table.ids.iter().rev().copied().collect(),
            dim: table.dim,
            vectors: rows.concat(),
        }
    }

    fn residual(r: &Rotation, new: &EmbeddingTable, old: &EmbeddingTable) -> f64 {
        let rotated = r.apply(new);
        let at: HashMap<u32, usize> = old.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        (0..rotated.len())
            .map(|i| {
                let j = at[&rotated.ids[i]];
                rotated
                    .row(i)
                    .iter()
                    .zip(old.row(j))
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum::<f64>()
            })
            .sum()
    }

    #[test]
    fn a_rotated_copy_is_rotated_back_and_a_noisy_one_is_fitted_in_least_squares() {
        let old = random_table(200, 8, 1);
        let q = random_rotation(8, 2);
        // The new space is the old one turned by Qᵀ, its rows in another order: R must be Q.
        let q_t = Rotation {
            dim: 8,
            matrix: transpose(&q.matrix, 8, 8),
        };
        let new = reversed(&q_t.apply(&old));
        let r = Rotation::fit(&new, &old).unwrap();
        for (a, b) in r.matrix.iter().zip(&q.matrix) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(orthogonality_error(&r.matrix, 8) < 1e-6);
        let (before, n) = mean_cosine(&new, &old);
        let (after, _) = mean_cosine(&r.apply(&new), &old);
        assert_eq!(n, 200);
        assert!(after > 0.999_99 && before < 0.9, "{before} → {after}");
        // Neighbours within each space are the same: a rotation keeps every angle.
        assert!((neighbour_overlap(&new, &old, 20) - 1.0).abs() < 1e-12);

        // With noise, the fitted rotation leaves no more residual than the true one.
        let noise = random_table(200, 8, 3);
        let mut noisy = q_t.apply(&old);
        for (v, e) in noisy.vectors.iter_mut().zip(&noise.vectors) {
            *v += 0.3 * e;
        }
        let fitted = Rotation::fit(&noisy, &old).unwrap();
        assert!(residual(&fitted, &noisy, &old) <= residual(&q, &noisy, &old) + 1e-6);
        assert!(neighbour_overlap(&noisy, &old, 20) < 1.0);
    }

    #[test]
    fn tables_that_cannot_determine_a_rotation_are_refused() {
        let old = random_table(50, 8, 1);
        let e = Rotation::fit(&random_table(50, 4, 2), &old)
            .unwrap_err()
            .to_string();
        assert!(e.contains("widths 4 and 8"), "{e}");
        let e = Rotation::fit(&random_table(5, 8, 2), &random_table(5, 8, 3))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("5 items shared by both models, fewer than the 8"),
            "{e}"
        );
        // Every new vector in a 2-d subspace.
        let mut flat = random_table(50, 8, 4);
        for i in 0..50 {
            for j in 2..8 {
                flat.vectors[i * 8 + j] = 0.0;
            }
        }
        let e = Rotation::fit(&flat, &old).unwrap_err().to_string();
        assert!(e.contains("do not determine a rotation"), "{e}");
    }
}
