//! Encore's WGSL kernels on a plain wgpu device, without burn's backend or CubeCL: what a
//! serving engine strings together into a forward on the browser's WebGPU (and natively on
//! any wgpu adapter).
//!
//! burn's wgpu backend brings CubeCL (its compiler, its kernel library and the IR behind them):
//! about 10 MB of the 15 MB browser module, 2 MB of its gzipped download. A serving forward
//! needs five fixed kernels: layer norm, linear (with GELU or a residual add), causal attention
//! over the heads side by side, the layer mix with the final norm, and the candidate gather +
//! dot. This module opens the device ([`GpuDevice`]), compiles the five pipelines once
//! ([`Pipelines`]), states each kernel's parameter block ([`KernelParams`]) and reads results
//! back ([`PendingScores`]). The engine that runs a model on them lives with the runtime.

mod device;
mod pipelines;
mod readback;

#[cfg(not(target_arch = "wasm32"))]
pub use device::scope_result;
pub use device::{GpuDevice, GpuError};
pub use pipelines::{KernelParams, Pipelines, WORKGROUP};
pub use readback::PendingScores;

/// Largest head width the attention kernel holds in registers (`MAX_HEAD_DIM` in its WGSL).
pub const MAX_ROW_ATTENTION_HEAD_DIM: usize = 128;
