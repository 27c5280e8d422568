//! Fused candidate scoring: gather each candidate's item vector and take its dot product with
//! the user representation in one dispatch.

#[cfg(feature = "wgpu")]
mod kernel;

#[cfg(feature = "wgpu")]
use burn::backend::Dispatch;
use burn::tensor::{Int, Tensor};

#[cfg(feature = "wgpu")]
pub use kernel::CandidateScoringBackend;

#[cfg(feature = "wgpu")]
use crate::uses_wgsl_kernels;

/// Scores of candidates: `table` `[rows, d]` (item vectors), `user` `[d]`, `idx` `[c]` (rows of
/// `table`) → `[c]`, `scores[i] = table[idx[i]] · user`. The WGSL kernel where
/// [`crate::uses_wgsl_kernels`] holds, otherwise [`candidate_scores_reference`].
pub fn candidate_scores(table: Tensor<2>, user: Tensor<1>, idx: Tensor<1, Int>) -> Tensor<1> {
    #[cfg(feature = "wgpu")]
    if uses_wgsl_kernels(&table.device()) {
        return fused_candidate_scores(table, user, idx);
    }
    candidate_scores_reference(table, user, idx)
}

/// The WGSL kernel (shapes as [`candidate_scores`]).
///
/// # Panics
/// On a device that is not wgpu, or with an index type other than i32/u32.
#[cfg(feature = "wgpu")]
pub fn fused_candidate_scores(table: Tensor<2>, user: Tensor<1>, idx: Tensor<1, Int>) -> Tensor<1> {
    crate::launches::count_scoring();
    Tensor::from_dispatch(Dispatch::fused_candidate_scores(
        table.into_dispatch(),
        user.into_dispatch(),
        idx.into_dispatch(),
    ))
}

/// Reference in burn ops: `select` the rows, then a matrix-vector product.
pub fn candidate_scores_reference(
    table: Tensor<2>,
    user: Tensor<1>,
    idx: Tensor<1, Int>,
) -> Tensor<1> {
    let c = idx.dims()[0];
    let d = user.dims()[0];
    table
        .select(0, idx)
        .matmul(user.reshape([d, 1]))
        .reshape([c])
}
