//! Encore's hand-written WGSL kernels, run on burn's wgpu backend as a backend extension.
//!
//! Each kernel comes with a reference written in burn's own tensor ops; the high-level entry
//! points ([`causal_attention`], [`candidate_scores`]) use the WGSL kernel where the tensor lives
//! on a wgpu (WebGPU) device without autodiff, and burn's ops everywhere else (CPU, training).

pub mod attention;
pub mod scoring;

pub use attention::{
    QUERY_BLOCK, blocked_causal_attention, burn_causal_attention, causal_attention,
    causal_attention_reference, causal_attention_suffix, causal_attention_suffix_reference,
    fused_causal_attention, uses_wgsl_kernels,
};
pub use scoring::{candidate_scores, candidate_scores_reference, fused_candidate_scores};
