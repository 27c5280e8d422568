//! Reading the scores back from the GPU: asynchronously in a browser, by waiting natively.

use std::future::Future;

use super::GpuError;

/// Scores on their way back from the GPU.
#[derive(Debug)]
pub struct PendingScores {
    state: Pending,
}

/// What the validation error scope around a submission caught (wgpu's future of it).
#[cfg(not(target_arch = "wasm32"))]
type ScopeFuture = std::pin::Pin<Box<dyn Future<Output = Option<wgpu::Error>> + Send>>;
/// What the validation error scope around a submission caught (wgpu's future of it).
#[cfg(target_arch = "wasm32")]
type ScopeFuture = std::pin::Pin<Box<dyn Future<Output = Option<wgpu::Error>>>>;

/// A submission's validation error scope, still to be read.
struct Scope(ScopeFuture);

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scope")
    }
}

#[derive(Debug)]
enum Pending {
    Ready(Vec<f32>),
    Mapping {
        staging: wgpu::Buffer,
        receiver: async_channel::Receiver<Result<(), String>>,
        scope: Scope,
        /// Polled natively; the browser maps by itself.
        #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
        device: wgpu::Device,
    },
}

impl PendingScores {
    /// Scores already in host memory.
    pub fn ready(scores: Vec<f32>) -> Self {
        Self {
            state: Pending::Ready(scores),
        }
    }

    /// Maps `staging` (a `MAP_READ` buffer of f32 scores that a submitted command fills) for
    /// reading, then closes `scope`, the validation error scope the submission ran in; the
    /// scores (or the error the scope caught, as [`GpuError::Validation`]) come with
    /// [`PendingScores::read`] or [`PendingScores::wait`].
    pub fn map(staging: wgpu::Buffer, device: &wgpu::Device, scope: wgpu::ErrorScopeGuard) -> Self {
        let (sender, receiver) = async_channel::bounded(1);
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.try_send(result.map_err(|e| e.to_string()));
        });
        Self {
            state: Pending::Mapping {
                staging,
                receiver,
                scope: Scope(Box::pin(scope.pop())),
                device: device.clone(),
            },
        }
    }

    /// The scores, once the GPU is done (in a browser, the page's event loop maps them).
    pub async fn read(self) -> Result<Vec<f32>, GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.wait();
        #[cfg(target_arch = "wasm32")]
        match self.state {
            Pending::Ready(scores) => Ok(scores),
            Pending::Mapping {
                staging,
                receiver,
                scope,
                ..
            } => {
                if let Some(e) = scope.0.await {
                    return Err(GpuError::Validation(e.to_string()));
                }
                let mapped = receiver
                    .recv()
                    .await
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                mapped_scores(&staging, mapped)
            }
        }
    }

    /// The scores, blocking until the GPU is done (not in a browser).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(self) -> Result<Vec<f32>, GpuError> {
        match self.state {
            Pending::Ready(scores) => Ok(scores),
            Pending::Mapping {
                staging,
                receiver,
                mut scope,
                device,
            } => {
                // Natively the scope's answer is ready once popped.
                let mut context = std::task::Context::from_waker(std::task::Waker::noop());
                if let std::task::Poll::Ready(Some(e)) = scope.0.as_mut().poll(&mut context) {
                    return Err(GpuError::Validation(e.to_string()));
                }
                device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                let mapped = receiver
                    .try_recv()
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                mapped_scores(&staging, mapped)
            }
        }
    }
}

/// The scores in a mapped read-back buffer (`mapped`: how its mapping ended).
fn mapped_scores(staging: &wgpu::Buffer, mapped: Result<(), String>) -> Result<Vec<f32>, GpuError> {
    mapped.map_err(GpuError::Readback)?;
    let scores = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    Ok(scores)
}
