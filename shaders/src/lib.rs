//! Encore's hand-written WGSL kernels, run on burn's wgpu backend as a backend extension.
//!
//! Each kernel comes with a reference written in burn's own tensor ops; the high-level entry
//! points ([`causal_attention`], [`candidate_scores`]) use the WGSL kernel where the tensor lives
//! on a wgpu (WebGPU) device without autodiff, and burn's ops everywhere else (CPU, training).
//!
//! The kernels and burn's wgpu backend sit behind the `wgpu` feature (on by default); without
//! it only the burn-ops versions remain, on burn's CPU backend (the CPU-only wasm package).
//!
//! The `plain-wgpu` feature adds [`plain_wgpu`]: the serving kernels (layer norm, linear,
//! row attention, layer mix, scoring) on a plain wgpu device without burn's backend, which the
//! runtime's WGSL engine strings into a forward (the browser package's WebGPU path).

pub mod attention;
mod launches;
#[cfg(feature = "plain-wgpu")]
pub mod plain_wgpu;
pub mod scoring;

#[cfg(feature = "wgpu")]
pub use attention::{MAX_HEAD_DIM, fused_causal_attention};
pub use attention::{
    QUERY_BLOCK, blocked_causal_attention, burn_causal_attention, causal_attention,
    causal_attention_reference, causal_attention_suffix, causal_attention_suffix_reference,
    uses_wgsl_kernels,
};
pub use launches::{KernelLaunches, kernel_launches};
#[cfg(feature = "wgpu")]
pub use scoring::fused_candidate_scores;
pub use scoring::{candidate_scores, candidate_scores_reference};
