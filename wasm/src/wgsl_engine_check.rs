//! A self-check of the WGSL engine in the browser: reranks on WebGPU against the CPU
//! forward, for an untrained model of a given shape on a small synthetic world.

use burn::tensor::Device;
use encore_core::data::split::group_by_member;
use encore_core::weights::{Quantization, save_model};
use encore_core::{FoundationModelConfig, RerankRequest, Reranker, Surface, SyntheticWorld};
use wasm_bindgen::prelude::*;

/// Largest difference between WebGPU and CPU scores, relative to `max(1, |score|)`, over every
/// title of a 60-title world, for the last `history` events of its longest member history and
/// an untrained model (width `d_model`, `n_heads` heads, `n_layers` layers, window `window`)
/// initialised with `seed`.
#[wasm_bindgen(js_name = wgslEngineMaxError)]
pub async fn wgsl_engine_max_error(
    d_model: usize,
    n_heads: usize,
    n_layers: usize,
    window: usize,
    history: usize,
    seed: u32,
) -> Result<f32, JsValue> {
    let world = SyntheticWorld::generate(&encore_core::SyntheticWorldConfig {
        members: 4,
        titles: 60,
        days: 120,
        seed: u64::from(seed),
        ..Default::default()
    });
    let config = FoundationModelConfig::new(world.catalog.len())
        .with_d_model(d_model)
        .with_n_heads(n_heads)
        .with_n_layers(n_layers)
        .with_d_ff(2 * d_model)
        .with_max_len(window)
        .with_dropout(0.0);
    let cpu_device = Device::flex();
    cpu_device.seed(u64::from(seed));
    let ids = world.catalog.ids();
    let bytes = save_model(&config.init(&cpu_device), &config, &ids, Quantization::F32);
    let gpu = super::backend::webgpu_device()
        .await
        .map_err(super::error)?;
    let cpu = Reranker::from_bytes(&bytes, &cpu_device).map_err(super::error)?;
    let wgsl = Reranker::from_bytes(&bytes, &cpu_device)
        .map_err(super::error)?
        .with_wgsl_engine(gpu)
        .map_err(super::error)?;
    let events = group_by_member(&world.events)
        .into_iter()
        .map(|h| h.events)
        .max_by_key(Vec::len)
        .unwrap_or_default();
    let events = &events[events.len().saturating_sub(history)..];
    let request = RerankRequest::on(Surface::Home);
    let a = cpu
        .rerank_async(events, &ids, &request)
        .await
        .map_err(super::error)?;
    let b = wgsl
        .rerank_async(events, &ids, &request)
        .await
        .map_err(super::error)?;
    let on_gpu: std::collections::HashMap<u32, f32> = b.iter().map(|s| (s.item, s.score)).collect();
    Ok(a.iter()
        .map(|s| (s.score - on_gpu[&s.item]).abs() / s.score.abs().max(1.0))
        .fold(0.0, f32::max))
}
