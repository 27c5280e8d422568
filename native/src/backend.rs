//! Run-time choice of burn device.

use burn::tensor::Device;

/// Where tensors live.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's CPU backend (flex).
    Cpu,
    /// burn's wgpu backend (GPU, or Mesa's software Vulkan), with Encore's WGSL kernels.
    Wgpu,
}

impl Backend {
    /// The inference device.
    pub fn device(self) -> Device {
        match self {
            Backend::Cpu => Device::flex(),
            Backend::Wgpu => Device::wgpu(Default::default()),
        }
    }

    /// The training device (autodiff on top of [`Backend::device`]).
    pub fn training_device(self) -> Device {
        self.device().autodiff()
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
        }
    }
}
