//! Choosing a backend by timing, the same way natively and in the browser: one representative
//! rerank ([`TimingProbe`]), the median of a few warm runs on each backend, and the faster one
//! kept with the reason in words ([`choose`]). Each caller only supplies its clock.

use crate::data::events::{Action, DeviceType, Event, Surface};

use super::{RerankRequest, Reranker};

/// Timed runs per backend after one untimed warm-up (which also compiles GPU kernels).
pub const TIMED_RUNS: usize = 5;

/// A representative rerank for timing a backend: the model's window (up to 50 events) of a
/// deterministic history over the model's own items, and up to 500 of them as candidates.
#[derive(Debug, Clone)]
pub struct TimingProbe {
    /// The member's history.
    pub history: Vec<Event>,
    /// The pushed candidates.
    pub candidates: Vec<u32>,
    /// The request.
    pub request: RerankRequest,
}

impl TimingProbe {
    /// The probe for `reranker`'s model.
    pub fn of(reranker: &Reranker) -> Self {
        let ids = reranker.items().ids();
        let window = reranker.config().max_len.saturating_sub(1).clamp(1, 50);
        let c = ids.len().min(500);
        Self {
            history: synthetic_history(ids, window),
            candidates: ids[ids.len() - c..].to_vec(),
            request: RerankRequest::on(Surface::Home),
        }
    }
}

/// A deterministic member history over `ids`: `n` events an hour and a half apart, cycling
/// through surfaces, devices and actions.
///
/// # Panics
/// If `ids` is empty.
pub fn synthetic_history(ids: &[u32], n: usize) -> Vec<Event> {
    (0..n)
        .map(|k| {
            let mut e = Event::implicit(
                1,
                ids[(k * 7919 + 13) % ids.len()],
                1_700_000_000 + k as i64 * 5400 + (k % 7) as i64 * 600,
            );
            e.surface = Surface::ALL[k % Surface::ALL.len()];
            e.device = DeviceType::ALL[k % DeviceType::ALL.len()];
            e.action = Action::ALL[k % Action::ALL.len()];
            e.duration_s = 600.0 + (k % 13) as f32 * 300.0;
            e
        })
        .collect()
}

/// The median of timed runs (milliseconds).
///
/// # Panics
/// If `ms` is empty.
pub fn median_ms(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// Which of the two backends a timing chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faster {
    /// The CPU.
    Cpu,
    /// The GPU backend.
    Gpu,
}

/// The faster of the CPU and a GPU backend named `gpu` from their warm rerank times (or why a
/// backend could not be timed), with the reason in words: a backend that failed loses; with
/// both timed the faster wins (the CPU on a tie).
pub fn choose(
    cpu_ms: Result<f64, String>,
    gpu_ms: Result<f64, String>,
    gpu: &str,
) -> (Faster, String) {
    match (cpu_ms, gpu_ms) {
        (Ok(c), Ok(g)) => {
            let timing = format!("warm-up rerank took {g:.3} ms on {gpu}, {c:.3} ms on CPU");
            if g < c {
                (Faster::Gpu, format!("{gpu} is faster here: {timing}"))
            } else {
                (Faster::Cpu, format!("CPU is faster here: {timing}"))
            }
        }
        (_, Err(why)) => (Faster::Cpu, format!("CPU: {why}")),
        (Err(why), Ok(g)) => (
            Faster::Gpu,
            format!("{gpu}: the CPU failed a warm-up rerank ({why}); {gpu} took {g:.3} ms"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_faster_backend_wins_and_a_failed_one_loses() {
        let (f, why) = choose(Ok(2.0), Ok(1.0), "WebGPU");
        assert_eq!(f, Faster::Gpu);
        assert_eq!(
            why,
            "WebGPU is faster here: warm-up rerank took 1.000 ms on WebGPU, 2.000 ms on CPU"
        );
        let (f, why) = choose(Ok(1.0), Ok(1.0), "wgpu");
        assert_eq!(f, Faster::Cpu);
        assert!(why.starts_with("CPU is faster here"), "{why}");
        let (f, why) = choose(Ok(1.0), Err("no adapter".into()), "wgpu");
        assert_eq!((f, why.as_str()), (Faster::Cpu, "CPU: no adapter"));
        let (f, why) = choose(Err("boom".into()), Ok(3.0), "wgpu");
        assert_eq!(f, Faster::Gpu);
        assert!(why.contains("boom") && why.contains("3.000 ms"), "{why}");
        assert_eq!(median_ms(vec![5.0, 1.0, 3.0, 2.0, 4.0]), 3.0);
    }
}
