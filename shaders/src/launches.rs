//! Counts of the WGSL kernels launched through burn's wgpu backend, so that a test can check
//! that a code path reaches the kernels its documentation says it uses.

use std::sync::atomic::{AtomicU64, Ordering};

static ATTENTION: AtomicU64 = AtomicU64::new(0);
static SCORING: AtomicU64 = AtomicU64::new(0);

/// Launches of each WGSL kernel on burn's wgpu backend since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelLaunches {
    /// Fused causal attention ([`crate::fused_causal_attention`]).
    pub attention: u64,
    /// Candidate gather + dot ([`crate::fused_candidate_scores`]).
    pub scoring: u64,
}

/// The launch counts so far (process-wide; concurrent callers add to the same counts).
pub fn kernel_launches() -> KernelLaunches {
    KernelLaunches {
        attention: ATTENTION.load(Ordering::Relaxed),
        scoring: SCORING.load(Ordering::Relaxed),
    }
}

#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
pub(crate) fn count_attention() {
    ATTENTION.fetch_add(1, Ordering::Relaxed);
}

#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
pub(crate) fn count_scoring() {
    SCORING.fetch_add(1, Ordering::Relaxed);
}
