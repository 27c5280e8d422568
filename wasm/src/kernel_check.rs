//! A self-check of the WGSL attention kernel in the browser: the kernel on WebGPU against the
//! burn-ops reference on the CPU backend, on the same random inputs.

use burn::tensor::{Device, Distribution, Tensor};
use wasm_bindgen::prelude::*;

/// Largest absolute difference between the WebGPU kernel and the CPU reference for random
/// `[batch, heads, seq, head_dim]` inputs drawn with `seed`.
#[wasm_bindgen(js_name = attentionKernelMaxError)]
pub async fn attention_kernel_max_error(
    batch: usize,
    heads: usize,
    seq: usize,
    head_dim: usize,
    seed: u32,
) -> Result<f32, JsValue> {
    let gpu = crate::backend::webgpu_device()
        .await
        .map_err(crate::error)?;
    let cpu = Device::flex();
    cpu.seed(u64::from(seed));
    let shape = [batch, heads, seq, head_dim];
    let draw = || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &cpu);
    let (q, k, v) = (draw(), draw(), draw());
    let reference = encore_shaders::causal_attention_reference(q.clone(), k.clone(), v.clone());
    let on_gpu = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &gpu);
    let fused = encore_shaders::fused_causal_attention(on_gpu(&q), on_gpu(&k), on_gpu(&v));
    let fused = read_back(fused).await?;
    let reference = read_back(reference).await?;
    Ok(fused
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max))
}

/// A tensor's values on the host (async: required for WebGPU).
async fn read_back(t: Tensor<4>) -> Result<Vec<f32>, JsValue> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| crate::error(format!("{e:?}")))?;
    data.try_into_vec::<f32>()
        .map_err(|e| crate::error(format!("{e:?}")))
}
