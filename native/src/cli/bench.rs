//! `encore bench`: rerank latency percentiles of one weight file on each backend.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use encore_core::data::split::group_by_member;
use encore_core::{RerankRequest, Reranker, Surface, SyntheticWorld, SyntheticWorldConfig};

use crate::backend::Backend;
use crate::training::TrainConfig;

/// `encore bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Weight file (default: an untrained model of the default shape on the synthetic catalog;
    /// latency does not depend on the weights' values).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backends to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Cpu, Backend::Wgpu])]
    pub backends: Vec<Backend>,
    /// Events in the member's history.
    #[arg(long, default_value_t = 50)]
    pub history: usize,
    /// Candidates per rerank.
    #[arg(long, default_value_t = 100)]
    pub candidates: usize,
    /// Timed reranks per backend.
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Untimed reranks first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Also write this benchmark's model and input as a browser-harness fixture here, for
    /// `node tests/browser/run.mjs --pkg target/wasm-pkg --fixture DIR --bench N`.
    #[arg(long)]
    pub browser_fixture: Option<PathBuf>,
}

/// Latency percentiles in milliseconds.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the benchmark and prints one `RESULT` line per backend.
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    let world = SyntheticWorld::generate(&SyntheticWorldConfig::default());
    let bytes = match &a.model {
        Some(p) => std::fs::read(p)?,
        None => {
            let config = TrainConfig::default()
                .model(world.catalog.len(), world.catalog.genres.len(), 0)
                .serving();
            let model = config.init(&burn::tensor::Device::flex());
            encore_core::weights::save_model(&model, &config, &world.catalog.ids())
        }
    };
    let histories = group_by_member(&world.events);
    let member = histories
        .iter()
        .max_by_key(|h| h.events.len())
        .expect("members");
    anyhow::ensure!(
        member.events.len() >= a.history,
        "longest synthetic history has {} events",
        member.events.len()
    );
    let history = &member.events[member.events.len() - a.history..];
    let ids = world.catalog.ids();
    anyhow::ensure!(
        a.candidates <= ids.len(),
        "catalog has only {} items",
        ids.len()
    );
    let candidates: Vec<u32> = ids.iter().rev().take(a.candidates).copied().collect();
    let request = RerankRequest::on(Surface::Home);
    if let Some(dir) = &a.browser_fixture {
        let native = Reranker::from_bytes(&bytes, &burn::tensor::Device::flex())?;
        crate::browser_fixture::write(
            dir,
            &bytes,
            &[crate::browser_fixture::case(
                &native,
                history,
                &candidates,
                &request,
            )?],
        )?;
        println!("browser fixture -> {}", dir.display());
    }
    for &backend in &a.backends {
        let reranker = Reranker::from_bytes(&bytes, &backend.device())?;
        for _ in 0..a.warmup {
            reranker.rerank(history, &candidates, &request)?;
        }
        let mut ms: Vec<f64> = (0..a.iters)
            .map(|_| {
                let t = Instant::now();
                reranker
                    .rerank(history, &candidates, &request)
                    .map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        ms.sort_by(f64::total_cmp);
        println!(
            "RESULT rerank backend={} history={} candidates={} iters={} p50={:.3} ms p99={:.3} ms",
            backend.name(),
            a.history,
            a.candidates,
            a.iters,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
    }
    Ok(())
}
