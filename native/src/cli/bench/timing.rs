//! Clocks for the benchmark: percentiles of repeated host-side runs, and the mean of queued
//! device computations.

use std::time::Instant;

use super::BenchArgs;
use crate::backend::run_inline;

/// The `p` quantile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Milliseconds of each of `iters` runs of `f` after `warmup` untimed ones, sorted.
pub fn time_ms(
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// Mean milliseconds per call of `f` (a device computation): `a.warmup` calls read back, then
/// `a.iters` calls queued and only the last read back, so the mean covers the device's work and
/// not only the submissions.
pub fn queued_mean_ms<const D: usize>(
    a: &BenchArgs,
    f: impl Fn() -> burn::tensor::Tensor<D> + Sync,
) -> f64 {
    run_inline(|| {
        for _ in 0..a.warmup {
            f().into_data();
        }
        let t = Instant::now();
        let mut last = None;
        for _ in 0..a.iters {
            last = Some(f());
        }
        last.map(burn::tensor::Tensor::into_data);
        t.elapsed().as_secs_f64() * 1e3 / a.iters as f64
    })
}
