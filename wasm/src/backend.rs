//! Choosing the browser backend: WebGPU (Encore's WGSL engine on the browser's GPU) or
//! burn's CPU backend (flex), whichever reranks faster on this device, unless the caller forces
//! one.

use burn::tensor::Device;
use encore_core::Reranker;
use encore_core::runtime::backend_choice::{Faster, TIMED_RUNS, TimingProbe, choose, median_ms};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[cfg(feature = "webgpu")]
use encore_shaders::plain_wgpu::GpuDevice;

#[cfg(feature = "webgpu")]
thread_local! {
    /// WebGPU is set up once per page; later loads reuse the device.
    static WEBGPU: std::cell::RefCell<Option<GpuDevice>> = const { std::cell::RefCell::new(None) };
}

/// The backend a [`super::Reranker`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// Encore's WGSL engine on the browser's WebGPU (stateless reranks; sessions step on
    /// the CPU, where one token costs less than a GPU round trip).
    WebGpu,
    /// burn's CPU backend compiled to wasm.
    Cpu,
}

impl BackendChoice {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::WebGpu => "webgpu",
            BackendChoice::Cpu => "cpu",
        }
    }
}

/// True when `navigator.gpu` exists.
fn browser_has_webgpu() -> bool {
    let navigator =
        js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or(JsValue::UNDEFINED);
    !navigator.is_undefined()
        && js_sys::Reflect::get(&navigator, &"gpu".into())
            .map(|g| !g.is_undefined())
            .unwrap_or(false)
}

/// Opens (or reuses) the WebGPU device.
#[cfg(feature = "webgpu")]
pub(crate) async fn webgpu_device() -> Result<GpuDevice, String> {
    // A device the browser has lost (destroyed, reset) is replaced by a new one.
    if let Some(d) = WEBGPU.with(|w| w.borrow().clone())
        && d.lost_reason().is_none()
    {
        return Ok(d);
    }
    if !browser_has_webgpu() {
        return Err("this browser does not expose WebGPU (navigator.gpu is undefined)".into());
    }
    let device = GpuDevice::open()
        .await
        .map_err(|e| format!("WebGPU could not be initialised: {e}"))?;
    WEBGPU.with(|w| *w.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// A reranker on WebGPU: the CPU reranker's weights, its stateless reranks on the GPU.
#[cfg(feature = "webgpu")]
async fn on_webgpu(bytes: &[u8], max_decoded_bytes: u64) -> Result<Reranker, String> {
    let gpu = webgpu_device().await?;
    Reranker::from_bytes_within(bytes, &Device::flex(), max_decoded_bytes)
        .map_err(|e| e.to_string())?
        .with_wgsl_engine(gpu)
        .map_err(|e| e.to_string())
}

/// The CPU-only package has no WebGPU backend.
#[cfg(not(feature = "webgpu"))]
async fn on_webgpu(_bytes: &[u8], _max_decoded_bytes: u64) -> Result<Reranker, String> {
    Err(if browser_has_webgpu() {
        "this is the CPU-only package of Encore (no WebGPU backend); load the full one for WebGPU"
    } else {
        "this browser does not expose WebGPU (navigator.gpu is undefined)"
    }
    .into())
}

/// True when this package was built with the WebGPU backend (the full package).
#[wasm_bindgen(js_name = hasWebGpuBackend)]
pub fn has_webgpu_backend() -> bool {
    cfg!(feature = "webgpu")
}

/// Milliseconds from the page's clock (`performance.now()`).
fn now_ms() -> f64 {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .unwrap_or(JsValue::UNDEFINED);
    js_sys::Reflect::get(&perf, &"now".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(&perf).ok())
        .and_then(|v| v.as_f64())
        .unwrap_or_else(js_sys::Date::now)
}

/// Median milliseconds of a warm rerank of the [`TimingProbe`] (one untimed call first, which
/// compiles shaders and fills caches).
async fn warm_rerank_ms(reranker: &Reranker) -> Result<f64, String> {
    let probe = TimingProbe::of(reranker);
    let run = || async {
        let start = now_ms();
        reranker
            .rerank_async(&probe.history, &probe.candidates, &probe.request)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<f64, String>(now_ms() - start)
    };
    run().await?;
    let mut ms = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        ms.push(run().await?);
    }
    Ok(median_ms(ms))
}

/// Loads the weight file on the backend `wanted` names (`"auto"`, `"webgpu"` or `"cpu"`) and
/// says why that backend runs it.
pub(crate) async fn load(
    bytes: &[u8],
    wanted: &str,
    max_decoded_bytes: u64,
) -> Result<(Reranker, BackendChoice, String), String> {
    let on = |device: &Device| {
        Reranker::from_bytes_within(bytes, device, max_decoded_bytes).map_err(|e| e.to_string())
    };
    match wanted {
        "cpu" => Ok((
            on(&Device::flex())?,
            BackendChoice::Cpu,
            "CPU requested by the caller".into(),
        )),
        "webgpu" => Ok((
            on_webgpu(bytes, max_decoded_bytes).await?,
            BackendChoice::WebGpu,
            "WebGPU requested by the caller".into(),
        )),
        "auto" => {
            let cpu = on(&Device::flex())?;
            let gpu = match on_webgpu(bytes, max_decoded_bytes).await {
                Ok(r) => r,
                Err(why) => return Ok((cpu, BackendChoice::Cpu, format!("CPU: {why}"))),
            };
            let (cpu_ms, gpu_ms) = (warm_rerank_ms(&cpu).await, warm_rerank_ms(&gpu).await);
            Ok(match choose(cpu_ms, gpu_ms, "WebGPU") {
                (Faster::Gpu, reason) => (gpu, BackendChoice::WebGpu, reason),
                (Faster::Cpu, reason) => (cpu, BackendChoice::Cpu, reason),
            })
        }
        other => Err(format!(
            "unknown backend {other:?}: use \"auto\", \"webgpu\" or \"cpu\""
        )),
    }
}
