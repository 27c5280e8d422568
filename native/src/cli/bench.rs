//! `encore bench`: the on-device runtime's numbers for one model: weight file size per
//! storage type, rerank latency (p50/p99) per backend, history length and candidate count,
//! the latency of appending one local event to a member session, batch throughput, and the
//! arithmetic each rerank does against the time it takes.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use encore_core::serving::ServingModel;
use encore_core::weights::{Quantization, requantize, save_model};
use encore_core::{
    Event, FoundationModelConfig, MemberRequest, MemberSession, RerankRequest, Reranker, Surface,
};

use crate::backend::{Backend, BackendPreference, run_inline};
use crate::batch::rerank_batch_parallel;

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
    /// Also write this benchmark's model and one input as a browser-harness fixture here, for
    /// `node tests/browser/run.mjs --pkg target/wasm-pkg --fixture DIR --bench N`.
    #[arg(long)]
    pub browser_fixture: Option<PathBuf>,
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

/// Parses `f32`, `f16` or `int8`.
pub fn parse_quantization(s: &str) -> Result<Quantization, String> {
    Quantization::from_name(s).ok_or_else(|| format!("unknown dtype {s:?}: use f32, f16 or int8"))
}

/// The `p` quantile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Milliseconds of each of `iters` runs of `f` after `warmup` untimed ones, sorted.
fn time_ms(
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
fn queued_mean_ms<const D: usize>(
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

/// Times causal attention on `[batch, heads, seq, head_dim]` shapes: Encore's fused WGSL
/// kernel, burn's attention op and the burn-ops reference (matmul, mask, softmax, matmul) on
/// wgpu, and burn's paths on the CPU. Each timing includes reading the result back.
fn kernel_comparison(a: &BenchArgs) -> anyhow::Result<()> {
    use burn::tensor::{Distribution, Tensor};
    use encore_shaders::{
        QUERY_BLOCK, blocked_causal_attention, burn_causal_attention, causal_attention_reference,
        fused_causal_attention,
    };
    type Attention = fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>;
    let gpu: (&str, Backend, Vec<(&str, Attention)>) = (
        "wgpu",
        Backend::Wgpu,
        vec![
            ("encore-wgsl-fused", fused_causal_attention as Attention),
            ("burn-attention-op", burn_causal_attention),
            ("burn-ops-reference", causal_attention_reference),
        ],
    );
    let cpu: (&str, Backend, Vec<(&str, Attention)>) = (
        "cpu",
        Backend::Cpu,
        vec![
            ("burn-attention-blocked", |q, k, v| {
                blocked_causal_attention(q, k, v, QUERY_BLOCK)
            }),
            ("burn-attention-op", burn_causal_attention),
            ("burn-ops-reference", causal_attention_reference),
        ],
    );
    for (name, backend, paths) in [gpu, cpu] {
        if !a.backends.contains(&backend) {
            continue;
        }
        let device = backend.device();
        for shape in [
            [1, 1, 51, 50],
            [1, 1, 201, 50],
            [1, 2, 201, 32],
            [1, 4, 201, 16],
            [16, 2, 201, 32],
        ] {
            let draw = || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (q, k, v) = (draw(), draw(), draw());
            for (path, f) in &paths {
                let mean_ms = queued_mean_ms(a, || f(q.clone(), k.clone(), v.clone()));
                println!(
                    "RESULT attention device={name} shape={shape:?} path={path} mean={mean_ms:.3} ms"
                );
            }
        }
    }
    // Candidate scoring: gather + dot, fused, against burn's select + matmul.
    use burn::tensor::{Int, TensorData};
    use encore_shaders::{candidate_scores_reference, fused_candidate_scores};
    type Scoring = fn(Tensor<2>, Tensor<1>, Tensor<1, Int>) -> Tensor<1>;
    for backend in [Backend::Wgpu, Backend::Cpu] {
        if !a.backends.contains(&backend) {
            continue;
        }
        let device = backend.device();
        let mut paths: Vec<(&str, Scoring)> =
            vec![("burn-select-matmul", candidate_scores_reference)];
        if backend == Backend::Wgpu {
            paths.insert(0, ("encore-wgsl-fused", fused_candidate_scores));
        }
        let (rows, d) = (3885, 50);
        let table = Tensor::<2>::random([rows, d], Distribution::Normal(0.0, 1.0), &device);
        let user = Tensor::<1>::random([d], Distribution::Normal(0.0, 1.0), &device);
        for count in [100, 500, 2000] {
            let idx: Vec<i64> = (0..count).map(|i| ((i * 7919 + 3) % rows) as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [count]), &device);
            for (path, f) in &paths {
                let mean_ms = queued_mean_ms(a, || f(table.clone(), user.clone(), idx.clone()));
                println!(
                    "RESULT scoring device={} candidates={count} d={d} path={path} mean={mean_ms:.3} ms",
                    backend.name()
                );
            }
        }
    }
    Ok(())
}

/// Runs the benchmark and prints one `RESULT` line per measurement.
pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if a.kernels {
        return kernel_comparison(a);
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
    measure(a, &bytes, &ids, &events)
}

fn measure(a: &BenchArgs, bytes: &[u8], ids: &[u32], events: &[Event]) -> anyhow::Result<()> {
    // The serving description, for the window and the FLOP counts.
    let cpu = Reranker::from_bytes(bytes, &burn::tensor::Device::flex())?;
    let serving = cpu
        .serving_model()
        .expect("a CPU reranker runs the CPU engine");
    if a.wgsl_engine {
        measure_wgsl_engine(a, bytes, serving, ids, events)?;
    }
    for &backend in &a.backends {
        let reranker =
            Reranker::from_bytes(bytes, &backend.device())?.with_window_step(a.window_step);
        for &h in &a.history {
            let history = &events[..h];
            let tokens = h.min(serving.max_len - 1) + 1;
            for &c in &a.candidates {
                let (candidates, request) =
                    stateless_case(a, &reranker, backend.name(), serving, ids, events, (h, c))?;

                // One local event appended to a warm session, then a rerank.
                let mut primed = MemberSession::new(history[..h - 1].to_vec())?;
                reranker.rerank_session(&mut primed, &candidates, &request)?;
                let event = events[h - 1].clone();
                let mut encoded = 0;
                let mut copies = vec![primed; a.warmup + a.iters].into_iter();
                let ms = run_inline(|| {
                    time_ms(a.warmup, a.iters, || {
                        let mut session = copies.next().expect("one copy per run");
                        session.append(event.clone())?;
                        reranker.rerank_session(&mut session, &candidates, &request)?;
                        encoded = session.last_encoded_tokens();
                        Ok(())
                    })
                })?;
                let p50 = percentile(&ms, 0.5);
                let flops = serving.rerank_flops(tokens - encoded, encoded, c);
                println!(
                    "RESULT append backend={} history={h} candidates={c} p50={p50:.3} ms p99={:.3} ms tokens_encoded={encoded} mflop={:.3} gflop_s={:.1}",
                    backend.name(),
                    percentile(&ms, 0.99),
                    flops / 1e6,
                    flops / (p50 * 1e6)
                );

                // A member clicking on: events appended one after another to one session past
                // its history, each followed by a rerank. Once the window is full it moves,
                // and the session re-encodes it: at every append with a window step of 1,
                // once every `window_step` appends otherwise.
                let mut session = MemberSession::new(history.to_vec())?;
                reranker.rerank_session(&mut session, &candidates, &request)?;
                let mut stream = events[h..].iter();
                let mut reencodes = 0;
                let ms = run_inline(|| {
                    time_ms(a.warmup, a.iters, || {
                        let event = stream.next().expect("events for every append");
                        session.append(event.clone())?;
                        let request = RerankRequest {
                            timestamp: Some(event.timestamp + 60),
                            ..request.clone()
                        };
                        reranker.rerank_session(&mut session, &candidates, &request)?;
                        reencodes += usize::from(session.last_encoded_tokens() > 2);
                        Ok(())
                    })
                })?;
                println!(
                    "RESULT append-stream backend={} history={h} candidates={c} window_step={} p50={:.3} ms p99={:.3} ms mean={:.3} ms reencodes={reencodes}/{}",
                    backend.name(),
                    reranker.window_step(),
                    percentile(&ms, 0.5),
                    percentile(&ms, 0.99),
                    ms.iter().sum::<f64>() / ms.len().max(1) as f64,
                    a.warmup + a.iters
                );
            }
            if a.batch_members > 0 {
                let c = a
                    .candidates
                    .iter()
                    .copied()
                    .find(|&c| c == 500)
                    .unwrap_or(a.candidates[0]);
                let candidates: Vec<u32> = ids[ids.len() - c..].to_vec();
                let members: Vec<MemberRequest> = (0..a.batch_members)
                    .map(|m| MemberRequest {
                        history,
                        candidates: &candidates,
                        request: RerankRequest::on(Surface::ALL[m % Surface::ALL.len()]),
                    })
                    .collect();
                let runs = (a.iters / 20).clamp(3, 10);
                let ms = time_ms(1, runs, || {
                    let results = match backend {
                        Backend::Cpu => rerank_batch_parallel(&reranker, &members, 0),
                        Backend::Wgpu => reranker.rerank_batch(&members),
                    };
                    for r in results {
                        r?;
                    }
                    Ok(())
                })?;
                let p50 = percentile(&ms, 0.5);
                println!(
                    "RESULT batch backend={} history={h} candidates={c} members={} p50={p50:.1} ms members_per_s={:.0}",
                    backend.name(),
                    a.batch_members,
                    a.batch_members as f64 / (p50 / 1e3)
                );
            }
        }
    }
    Ok(())
}

/// Stateless rerank latency on the WGSL engine (see [`BenchArgs::wgsl_engine`]).
fn measure_wgsl_engine(
    a: &BenchArgs,
    bytes: &[u8],
    serving: &ServingModel,
    ids: &[u32],
    events: &[Event],
) -> anyhow::Result<()> {
    let gpu = encore_shaders::plain_wgpu::GpuDevice::open_native()?;
    let reranker = Reranker::from_bytes(bytes, &burn::tensor::Device::flex())?
        .with_window_step(a.window_step)
        .with_wgsl_engine(gpu)?;
    println!(
        "wgsl-engine adapter: {}",
        reranker.wgsl_adapter().unwrap_or("?")
    );
    for &h in &a.history {
        for &c in &a.candidates {
            stateless_case(a, &reranker, "wgsl-engine", serving, ids, events, (h, c))?;
        }
    }
    Ok(())
}

/// Times stateless reranks of the first `h` events against the last `c` catalog items and
/// prints the case's RESULT line; returns the candidates and the request, for the session
/// timings of the same case.
fn stateless_case(
    a: &BenchArgs,
    reranker: &Reranker,
    backend: &str,
    serving: &ServingModel,
    ids: &[u32],
    events: &[Event],
    (h, c): (usize, usize),
) -> anyhow::Result<(Vec<u32>, RerankRequest)> {
    anyhow::ensure!(c <= ids.len(), "the model knows only {} items", ids.len());
    let history = &events[..h];
    let tokens = h.min(serving.max_len - 1) + 1;
    let candidates: Vec<u32> = ids[ids.len() - c..].to_vec();
    let request = RerankRequest {
        timestamp: Some(events[h].timestamp),
        ..RerankRequest::on(Surface::Home)
    };
    // Latency runs keep rayon on this thread (see `run_inline`): one thread, like ONNX
    // Runtime's reference figure.
    let ms = run_inline(|| {
        time_ms(a.warmup, a.iters, || {
            reranker.rerank(history, &candidates, &request)?;
            Ok(())
        })
    })?;
    let flops = serving.rerank_flops(0, tokens, c);
    let p50 = percentile(&ms, 0.5);
    println!(
        "RESULT rerank backend={backend} history={h} candidates={c} p50={p50:.3} ms p99={:.3} ms mflop={:.2} gflop_s={:.1}",
        percentile(&ms, 0.99),
        flops / 1e6,
        flops / (p50 * 1e6)
    );
    Ok((candidates, request))
}
