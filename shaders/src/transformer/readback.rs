//! Reading the scores back from the GPU: asynchronously in a browser, by waiting natively.

use super::TransformerError;

/// Scores on their way back from the GPU.
#[derive(Debug)]
pub struct PendingScores {
    pub(super) state: Pending,
}

#[derive(Debug)]
pub(super) enum Pending {
    Ready(Vec<f32>),
    Mapping {
        staging: wgpu::Buffer,
        receiver: async_channel::Receiver<Result<(), String>>,
        /// Polled natively; the browser maps by itself.
        #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
        device: wgpu::Device,
    },
}

impl PendingScores {
    pub(super) fn ready(scores: Vec<f32>) -> Self {
        Self {
            state: Pending::Ready(scores),
        }
    }

    /// The scores, once the GPU is done (in a browser, the page's event loop maps them).
    pub async fn read(self) -> Result<Vec<f32>, TransformerError> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.wait();
        #[cfg(target_arch = "wasm32")]
        match self.state {
            Pending::Ready(scores) => Ok(scores),
            Pending::Mapping {
                staging, receiver, ..
            } => {
                let mapped = receiver
                    .recv()
                    .await
                    .map_err(|e| TransformerError::Readback(e.to_string()))?;
                mapped_scores(&staging, mapped)
            }
        }
    }

    /// The scores, blocking until the GPU is done (not in a browser).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(self) -> Result<Vec<f32>, TransformerError> {
        match self.state {
            Pending::Ready(scores) => Ok(scores),
            Pending::Mapping {
                staging,
                receiver,
                device,
            } => {
                device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| TransformerError::Readback(e.to_string()))?;
                let mapped = receiver
                    .try_recv()
                    .map_err(|e| TransformerError::Readback(e.to_string()))?;
                mapped_scores(&staging, mapped)
            }
        }
    }
}

/// The scores in a mapped read-back buffer (`mapped`: how its mapping ended).
fn mapped_scores(
    staging: &wgpu::Buffer,
    mapped: Result<(), String>,
) -> Result<Vec<f32>, TransformerError> {
    mapped.map_err(TransformerError::Readback)?;
    let scores = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| TransformerError::Readback(e.to_string()))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    Ok(scores)
}
