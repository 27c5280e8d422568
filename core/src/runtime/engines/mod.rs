//! The serving engines: each executes the serving description ([`crate::serving::ServingModel`])
//! its own way. The CPU engine runs every rerank of a CPU reranker in host memory; the WGSL
//! engine runs stateless reranks on a plain wgpu device (the browser's WebGPU). burn's own
//! forward (`crate::model`) stays the training model and the reference both are tested against.

pub mod cpu;
#[cfg(feature = "wgsl-engine")]
pub mod wgsl;
