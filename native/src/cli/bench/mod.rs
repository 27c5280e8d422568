//! `encore bench`: the on-device runtime's numbers for one model: weight file size per
//! storage type, rerank latency (p50/p99) per backend, history length and candidate count,
//! the latency of appending one local event to a member session, batch throughput, and the
//! arithmetic each rerank does against the time it takes (the FLOP count comes from the
//! serving description, `ServingModel::rerank_flops`).
//!
//! This module holds the options and the benchmark model; `timing` the clocks and
//! percentiles, `rerank` the runtime's cases, `kernels` the WGSL kernels against burn's ops,
//! `curves` the cost curves against history length and catalog size.

mod curves;
mod kernels;
mod memory;
mod rerank;
mod timing;

use std::path::PathBuf;

use clap::Args;
use encore_core::weights::{Quantization, requantize, save_model};
use encore_core::{FoundationModelConfig, RerankRequest, Reranker, Surface};

use crate::backend::{Backend, BackendPreference};

/// `encore bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Weight file (default: an untrained model of the shape below; latency does not depend
    /// on the weights' values).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backends to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Cpu, Backend::Wgpu])]
    pub backends: Vec<Backend>,
    /// Events in the member's history (one or more lengths).
    #[arg(long, value_delimiter = ',', default_values_t = [50, 200])]
    pub history: Vec<usize>,
    /// Candidates per rerank (one or more counts).
    #[arg(long, value_delimiter = ',', default_values_t = [100, 500, 2000])]
    pub candidates: Vec<usize>,
    /// Timed reranks per case.
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Untimed reranks first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Members per batch in the batch-mode measurement (0: skip it).
    #[arg(long, default_value_t = 256)]
    pub batch_members: usize,
    /// The untrained model's shape: fields of `FoundationModelConfig` as `KEY=VALUE`, comma
    /// separated, on top of the SASRec size on MovieLens-1M's 3,883 titles (`d_model=50,
    /// n_heads=1, n_layers=2, d_ff=50, max_len=256, n_items=3883`).
    #[arg(long, value_delimiter = ',', value_name = "KEY=VALUE")]
    pub shape: Vec<String>,
    /// Storage type of the weights the latency is measured with.
    #[arg(long, default_value = "f32", value_parser = parse_quantization)]
    pub dtype: Quantization,
    /// Instead of reranking: time Encore's WGSL kernels (attention, candidate scoring) against
    /// burn's own ops for the model's shapes on wgpu (and burn's ops on the CPU, for scale).
    #[arg(long)]
    pub kernels: bool,
    /// Once a history outgrows the window, move the window this many events at a time (see
    /// `Reranker::with_window_step`); also times a stream of appends past the window.
    #[arg(long, default_value_t = 1)]
    pub window_step: usize,
    /// Also time stateless reranks on the WGSL engine (Encore's kernels alone on a plain
    /// wgpu device: the browser package's WebGPU path), as backend `wgsl-engine`, beside
    /// burn's wgpu backend.
    #[arg(long)]
    pub wgsl_engine: bool,
    /// Also time stateless reranks where this many of the candidates are titles the bundle
    /// lacks, pushed with metadata (genres, kind, language, year, arrival and a content vector
    /// of the encoder's width) and embedded by its content encoder (needs `--model` with one).
    #[arg(long, default_value_t = 0)]
    pub pushed: usize,
    /// Also time, on the CPU, stateless reranks with every candidate pushed with its int8
    /// item vector, on the bundle and on the bundle cut down to its model (one title kept),
    /// where every history title is pushed the same way: the device holding no catalog.
    #[arg(long)]
    pub pushed_vectors: bool,
    /// Also time prompt sets of this many vectors (0: skip): the benchmark model gets two of
    /// each form (`input_a`, `input_b`, `deep_a`, `deep_b`, random vectors), and each case
    /// times a stateless rerank under a prompt and a session that switches prompts at every
    /// rerank (the swap's cost: the prompt's and the request token's forward).
    #[arg(long, default_value_t = 0)]
    pub prompts: usize,
    /// Also write this benchmark's model and one input as a browser-harness fixture here, for
    /// `node tests/browser/run.mjs --pkg target/wasm-pkg --fixture DIR --bench N`.
    #[arg(long)]
    pub browser_fixture: Option<PathBuf>,
    /// Instead of the cases above: cost curves of fresh models of the benchmark's shape, one
    /// per `--history` value (the window following it) and one per `--catalogs` size, each with
    /// the first `--candidates` count, on the CPU; prints `RESULT curve-…` lines and draws
    /// `history.svg` and `catalog.svg` into this directory.
    #[arg(long)]
    pub curves: Option<PathBuf>,
    /// Catalog sizes of the `--curves` and `--training-curves` sweeps.
    #[arg(long, value_delimiter = ',', default_values_t = [4_000, 100_000, 1_000_000])]
    pub catalogs: Vec<usize>,
    /// Instead of reranks: training's cost curves, each run one epoch in its own `encore train
    /// --config` process on a synthetic world written as Parquet shards under this directory.
    /// For each `--events` size: peak memory streamed from the shards and from memory (the
    /// same events generated in the process; `RESULT memory-…`, `memory-vs-events.svg`). For
    /// each `--catalogs` size (the first `--events` size, each choice among 2,000 titles):
    /// tokens/s with the item encoder and ID-only, peak memory and the bundle's size, whole and
    /// cut down to its model (`RESULT training-catalog …`, `training-vs-catalog.svg`).
    #[arg(long)]
    pub training_curves: Option<PathBuf>,
    /// The `--training-curves` sweeps to run: `events`, `catalogs`, `windows` (training
    /// tokens/s and peak memory against the window, on 60 members of about 5,700 events each,
    /// or about 1.2 of the largest window where that is longer; batches of about 8,000 tokens;
    /// `training-vs-window.svg`).
    #[arg(long, value_delimiter = ',', default_values_t = ["events".to_string(), "catalogs".to_string(), "windows".to_string()])]
    pub sweeps: Vec<String>,
    /// Windows of the `--training-curves` window sweep.
    #[arg(long, value_delimiter = ',', default_values_t = [50, 200, 1_000, 4_000])]
    pub windows: Vec<usize>,
    /// Event counts of the `--training-curves` sweep.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000, 3_000_000, 10_000_000])]
    pub events: Vec<usize>,
}

/// The benchmark model's shape: SASRec size with the `KEY=VALUE` fields of `sets` on top.
fn bench_shape(sets: &[String]) -> anyhow::Result<FoundationModelConfig> {
    let sasrec = FoundationModelConfig::new(3883)
        .with_d_model(50)
        .with_n_heads(1)
        .with_n_layers(2)
        .with_d_ff(50)
        .with_max_len(256)
        .with_dropout(0.0);
    let given: toml::Table =
        toml::from_str(&sets.join("\n")).map_err(|e| anyhow::anyhow!("--shape {sets:?}: {e}"))?;
    crate::training::model_config_with(sasrec, given).map_err(|e| anyhow::anyhow!("--shape: {e}"))
}

/// The bundle in `bytes` with the benchmark's prompt sets of `length` vectors added (see
/// [`BenchArgs::prompts`]).
fn with_bench_prompts(bytes: &[u8], length: usize) -> anyhow::Result<Vec<u8>> {
    use encore_core::model::{NamedPromptSet, PromptForm, PromptSetConfig};
    use encore_core::weights::load_model;
    let device = burn::tensor::Device::flex();
    let loaded = load_model(bytes, &device)?;
    let (d, l) = (loaded.config.d_model, loaded.config.n_layers);
    let mut prompts = loaded.prompts.clone();
    for (name, form) in [
        ("input_a", PromptForm::Input),
        ("input_b", PromptForm::Input),
        ("deep_a", PromptForm::Deep),
        ("deep_b", PromptForm::Deep),
    ] {
        prompts.retain(|p| p.name != name);
        let prompt = PromptSetConfig::new(form, d, l)
            .with_length(length)
            .with_init_std(0.5)
            .init(&device);
        prompts.push(NamedPromptSet {
            name: name.into(),
            prompt,
        });
    }
    Ok(loaded.to_bundle(&prompts, Quantization::F32))
}

/// Parses `f32`, `f16` or `int8`.
pub fn parse_quantization(s: &str) -> Result<Quantization, String> {
    Quantization::from_name(s).ok_or_else(|| format!("unknown dtype {s:?}: use f32, f16 or int8"))
}

/// Runs the benchmark and prints one `RESULT` line per measurement.
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if a.kernels {
        return kernels::kernel_comparison(a);
    }
    if let Some(dir) = &a.training_curves {
        return memory::training_curves(&a.sweeps, &a.events, &a.catalogs, &a.windows, dir);
    }
    if let Some(dir) = &a.curves {
        return curves::cost_curves(a, &bench_shape(&a.shape)?, dir);
    }
    let f32_bytes = match &a.model {
        Some(p) => requantize(&std::fs::read(p)?, Quantization::F32)?,
        None => {
            let config = bench_shape(&a.shape)?;
            let model = config.init(&burn::tensor::Device::flex());
            let ids: Vec<u32> = (1..=config.n_items as u32).collect();
            save_model(&model, &config, &ids, Quantization::F32)
        }
    };
    let f32_bytes = if a.prompts > 0 {
        with_bench_prompts(&f32_bytes, a.prompts)?
    } else {
        f32_bytes
    };
    for q in [Quantization::F32, Quantization::F16, Quantization::Int8] {
        let bytes = requantize(&f32_bytes, q)?;
        println!("RESULT size dtype={} bytes={}", q.name(), bytes.len());
    }
    let bytes = requantize(&f32_bytes, a.dtype)?;
    let probe = Reranker::from_bytes(&bytes, &burn::tensor::Device::flex())?;
    let config = probe.config().clone();
    let ids = probe.items().ids().to_vec();
    println!(
        "model: {} items, d {}, {} heads, {} layers, ff {}, window {}; weights {}",
        config.n_items,
        config.d_model,
        config.n_heads,
        config.n_layers,
        config.d_ff,
        config.max_len,
        a.dtype.name()
    );
    let longest = a.history.iter().copied().max().unwrap_or(1);
    // Room for the append stream after the longest history.
    let events = crate::backend::synthetic_history(&ids, longest + 1 + a.iters + a.warmup);
    if let Some(dir) = &a.browser_fixture {
        // One case per history length and candidate count, for the browser bench page.
        let mut cases = Vec::new();
        for &h in &a.history {
            for &c in &a.candidates {
                let candidates: Vec<u32> = ids[ids.len() - c.min(ids.len())..].to_vec();
                let request = RerankRequest {
                    timestamp: Some(events[h].timestamp),
                    ..RerankRequest::on(Surface::Home)
                };
                cases.push(crate::browser_fixture::case(
                    &probe,
                    &events[..h],
                    &candidates,
                    &request,
                )?);
            }
        }
        crate::browser_fixture::write(dir, &bytes, &cases)?;
        println!(
            "browser fixture ({} cases) -> {}",
            cases.len(),
            dir.display()
        );
    }
    if a.backends.len() > 1 {
        let (_, choice) = crate::backend::load_preferred(&bytes, BackendPreference::Auto)?;
        println!(
            "RESULT choice backend={} reason=\"{}\"",
            choice.backend.name(),
            choice.reason
        );
    }
    rerank::measure(a, &bytes, &ids, &events)
}
