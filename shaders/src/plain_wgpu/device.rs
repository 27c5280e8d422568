//! Opening a plain wgpu device for Encore's kernels.

/// Why the GPU could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No GPU adapter.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused a device.
    #[error("the GPU device could not be opened: {0}")]
    NoDevice(String),
    /// Results could not be read back.
    #[error("reading the scores back failed: {0}")]
    Readback(String),
    /// The GPU refused a command as invalid (a WebGPU validation error).
    #[error("the GPU refused a command: {0}")]
    Validation(String),
}

/// A wgpu adapter opened for Encore's kernels, with its name.
#[derive(Debug, Clone)]
pub struct GpuDevice {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's name and backend, for reports.
    pub adapter: String,
    /// Why the device was lost (set by wgpu's device-lost callback: destroyed, a driver reset,
    /// a browser reclaiming it), `None` while it works.
    pub lost: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl GpuDevice {
    /// Why the device was lost, once it has been (see [`GpuDevice::lost`]).
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    /// Opens the default adapter (the browser's WebGPU in wasm; natively Vulkan, Metal or DX12,
    /// as wgpu picks) with WebGPU's default limits.
    pub async fn open() -> Result<Self, GpuError> {
        let instance = wgpu::Instance::default();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("encore"),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoDevice(e.to_string()))?;
        let lost = std::sync::Arc::new(std::sync::Mutex::new(None));
        let flag = std::sync::Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut lost) = flag.lock() {
                *lost = Some(format!("{reason:?}: {message}"));
            }
        });
        Ok(Self {
            device,
            queue,
            adapter: format!("{} ({:?})", info.name, info.backend),
            lost,
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl GpuDevice {
    /// Runs `work` on the device inside a validation error scope: a command the device
    /// refuses comes back as [`GpuError::Validation`] instead of wgpu's default (a panic
    /// natively). Natively the scope's answer is ready at once.
    pub fn checked<T>(&self, work: impl FnOnce(&wgpu::Device) -> T) -> Result<T, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = work(&self.device);
        scope_result(scope).map(|()| value)
    }

    /// [`GpuDevice::open`] without an executor: natively wgpu answers adapter and device
    /// requests at once.
    pub fn open_native() -> Result<Self, GpuError> {
        use std::future::Future;
        let mut request = std::pin::pin!(Self::open());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match request.as_mut().poll(&mut context) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => Err(GpuError::NoDevice(
                "the adapter did not answer at once".into(),
            )),
        }
    }
}

/// Closes a validation error scope natively (where its answer is ready at once): the error it
/// caught, as [`GpuError::Validation`].
#[cfg(not(target_arch = "wasm32"))]
pub fn scope_result(scope: wgpu::ErrorScopeGuard) -> Result<(), GpuError> {
    use std::future::Future;
    let mut popped = std::pin::pin!(scope.pop());
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match popped.as_mut().poll(&mut context) {
        std::task::Poll::Ready(Some(e)) => Err(GpuError::Validation(e.to_string())),
        _ => Ok(()),
    }
}
