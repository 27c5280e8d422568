//! Choosing the browser backend: burn's WebGPU backend where the browser offers WebGPU, its
//! CPU backend (flex) otherwise or when asked.

use std::cell::RefCell;

use burn::tensor::Device;
use wasm_bindgen::prelude::*;

thread_local! {
    /// WebGPU is set up once per page; later loads reuse the device.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The backend a [`crate::Reranker`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// burn's WebGPU backend with Encore's WGSL kernels.
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
pub(crate) async fn webgpu_device() -> Result<Device, String> {
    if let Some(d) = WEBGPU.with(|w| w.borrow().clone()) {
        return Ok(d);
    }
    if !browser_has_webgpu() {
        return Err("this browser does not expose WebGPU (navigator.gpu is undefined)".into());
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| format!("WebGPU could not be initialised: {e:?}"))?;
    WEBGPU.with(|w| *w.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// Resolves `"auto"`, `"webgpu"` or `"cpu"` to a device, the backend and the reason.
pub(crate) async fn select(wanted: &str) -> Result<(Device, BackendChoice, String), String> {
    match wanted {
        "cpu" => Ok((
            Device::flex(),
            BackendChoice::Cpu,
            "CPU requested by the caller".into(),
        )),
        "webgpu" => Ok((
            webgpu_device().await?,
            BackendChoice::WebGpu,
            "WebGPU requested by the caller".into(),
        )),
        "auto" => match webgpu_device().await {
            Ok(d) => Ok((d, BackendChoice::WebGpu, "WebGPU is available".into())),
            Err(why) => Ok((
                Device::flex(),
                BackendChoice::Cpu,
                format!("fell back to CPU: {why}"),
            )),
        },
        other => Err(format!(
            "unknown backend {other:?}: use \"auto\", \"webgpu\" or \"cpu\""
        )),
    }
}
