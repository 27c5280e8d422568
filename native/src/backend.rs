//! Run-time choice of burn device: fixed by the caller, or the faster of wgpu and the CPU for
//! this model on this machine.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use burn::tensor::Device;
use encore_core::runtime::backend_choice::{Faster, TIMED_RUNS, TimingProbe, choose, median_ms};
use encore_core::{Reranker, WeightFileError};

pub use encore_core::runtime::backend_choice::synthetic_history;

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

    /// The training devices of `replicas` data-parallel workers (see `TrainConfig::workers`).
    /// On the CPU, burn has one device: every worker is a thread on it. On wgpu, one worker
    /// runs on the default adapter; several run one per discrete GPU (0…N−1), each checked to
    /// exist here, so a run asking for more GPUs than the machine has stops with the one that
    /// is missing.
    pub fn training_devices(self, replicas: usize) -> Result<Vec<Device>, MissingDevice> {
        match (self, replicas) {
            (Backend::Cpu, n) | (Backend::Wgpu, n @ 0..=1) => Ok(vec![self.training_device(); n]),
            (Backend::Wgpu, n) => (0..n)
                .map(|index| {
                    let device = Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index));
                    match catch_unwind(AssertUnwindSafe(|| {
                        burn::tensor::Tensor::<1>::zeros([1], &device).into_data()
                    })) {
                        Ok(_) => Ok(device.autodiff()),
                        Err(_) => Err(MissingDevice { index, replicas: n }),
                    }
                })
                .collect(),
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
        }
    }
}

/// A training run asked for more GPUs than the machine has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "training on {replicas} wgpu devices needs {replicas} discrete GPUs; discrete GPU {index} is \
     not available here (set training.workers to the number of GPUs, or train on the CPU)"
)]
pub struct MissingDevice {
    /// The 0-based discrete GPU that is missing.
    pub index: usize,
    /// The workers the run asked for.
    pub replicas: usize,
}

thread_local! {
    /// A one-thread rayon pool whose only worker is this thread.
    static INLINE_POOL: Option<rayon::ThreadPool> = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
        .ok();
}

/// Runs `f` with rayon work staying on the calling thread. burn's CPU backend hands row-wise
/// ops to rayon's global pool; for a rerank's small tensors that handoff costs more than the
/// op. Use it around latency-critical CPU reranks; batch work with large tensors is better off
/// without it.
pub fn run_inline<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    INLINE_POOL.with(|pool| match pool {
        Some(pool) => pool.install(f),
        None => f(),
    })
}

/// Which backend to rerank on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendPreference {
    /// Time a warm rerank on wgpu and on the CPU and keep the faster.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// Always wgpu.
    Wgpu,
}

/// The backend a reranker was loaded on, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendChoice {
    /// The backend in use.
    pub backend: Backend,
    /// Why it was chosen, in words.
    pub reason: String,
}

/// Median milliseconds of a warm rerank of the [`TimingProbe`] (one untimed call first,
/// which also compiles wgpu's kernels).
fn warm_rerank_ms(reranker: &Reranker) -> Result<f64, String> {
    let probe = TimingProbe::of(reranker);
    let run = || -> Result<f64, String> {
        let t = Instant::now();
        reranker
            .rerank(&probe.history, &probe.candidates, &probe.request)
            .map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    run()?;
    let ms = (0..TIMED_RUNS)
        .map(|_| run())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(median_ms(ms))
}

/// Loads `bytes` on `backend`, turning a panic of a missing GPU into an error.
fn load_on(bytes: &[u8], backend: Backend) -> Result<Result<Reranker, WeightFileError>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        Reranker::from_bytes(bytes, &backend.device())
    }))
    .map_err(|_| format!("{} is not available here", backend.name()))
}

/// Loads a weight file on the preferred backend. With [`BackendPreference::Auto`], loads it
/// on both, times a warm rerank on each and keeps the faster; a backend that fails (no GPU
/// adapter) is skipped and the reason says so. Errors only for a bad weight file.
pub fn load_preferred(
    bytes: &[u8],
    preference: BackendPreference,
) -> Result<(Reranker, BackendChoice), WeightFileError> {
    let forced = |backend: Backend| -> Result<(Reranker, BackendChoice), WeightFileError> {
        let reranker = Reranker::from_bytes(bytes, &backend.device())?;
        Ok((
            reranker,
            BackendChoice {
                backend,
                reason: "forced by the caller".into(),
            },
        ))
    };
    match preference {
        BackendPreference::Cpu => return forced(Backend::Cpu),
        BackendPreference::Wgpu => return forced(Backend::Wgpu),
        BackendPreference::Auto => {}
    }
    let cpu = Reranker::from_bytes(bytes, &Backend::Cpu.device())?;
    let cpu_ms = run_inline(|| warm_rerank_ms(&cpu));
    let gpu = match load_on(bytes, Backend::Wgpu) {
        Ok(Ok(r)) => match catch_unwind(AssertUnwindSafe(|| warm_rerank_ms(&r))) {
            Ok(Ok(ms)) => Ok((r, ms)),
            Ok(Err(e)) => Err(format!("wgpu failed a warm-up rerank: {e}")),
            Err(_) => Err("wgpu failed a warm-up rerank".to_string()),
        },
        Ok(Err(e)) => return Err(e),
        Err(e) => Err(e),
    };
    let (gpu, gpu_ms) = match gpu {
        Ok((r, ms)) => (Some(r), Ok(ms)),
        Err(why) => (None, Err(why)),
    };
    let (faster, reason) = choose(cpu_ms, gpu_ms, "wgpu");
    Ok(match (faster, gpu) {
        (Faster::Gpu, Some(gpu)) => (
            gpu,
            BackendChoice {
                backend: Backend::Wgpu,
                reason,
            },
        ),
        _ => (
            cpu,
            BackendChoice {
                backend: Backend::Cpu,
                reason,
            },
        ),
    })
}
