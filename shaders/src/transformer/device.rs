//! Opening a wgpu device for the WGSL transformer.

use super::TransformerError;

/// A wgpu adapter opened for the WGSL transformer, with its name.
#[derive(Debug, Clone)]
pub struct GpuDevice {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's name and backend, for reports.
    pub adapter: String,
}

impl GpuDevice {
    /// Opens the default adapter (the browser's WebGPU in wasm; natively Vulkan, Metal or DX12,
    /// as wgpu picks) with WebGPU's default limits.
    pub async fn open() -> Result<Self, TransformerError> {
        let instance = wgpu::Instance::default();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| TransformerError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("encore"),
                ..Default::default()
            })
            .await
            .map_err(|e| TransformerError::NoDevice(e.to_string()))?;
        Ok(Self {
            device,
            queue,
            adapter: format!("{} ({:?})", info.name, info.backend),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl GpuDevice {
    /// [`GpuDevice::open`] without an executor: natively wgpu answers adapter and device
    /// requests at once.
    pub fn open_native() -> Result<Self, TransformerError> {
        use std::future::Future;
        let mut request = std::pin::pin!(Self::open());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match request.as_mut().poll(&mut context) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => Err(TransformerError::NoDevice(
                "the adapter did not answer at once".into(),
            )),
        }
    }
}
