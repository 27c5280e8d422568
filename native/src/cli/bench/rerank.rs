//! The runtime's cases: stateless reranks, one event appended to a warm session, a stream of
//! appends past the window, batches, per backend (and on the WGSL engine).

use encore_core::ranker::RankContext;
use encore_core::runtime::Candidate;
use encore_core::serving::ServingModel;
use encore_core::{
    Event, ItemKind, MemberRequest, MemberSession, RerankRequest, Reranker, Surface, TitleMetadata,
};

use super::BenchArgs;
use super::timing::{percentile, time_ms};
use crate::backend::{Backend, run_inline};
use crate::batch::rerank_batch_parallel;

/// Times every case of `a` on the model in `bytes` (catalog `ids`), with `events` as the
/// member's history and the appended events; prints one `RESULT` line per case.
pub fn measure(a: &BenchArgs, bytes: &[u8], ids: &[u32], events: &[Event]) -> anyhow::Result<()> {
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
                if a.pushed_vectors && backend == Backend::Cpu {
                    vectors_case(a, &reranker, bytes, history, &candidates, &request)?;
                }

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

                if a.prompts > 0 {
                    prompt_cases(a, &reranker, backend.name(), history, &candidates, &request)?;
                }

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

/// Prompt sets (see [`BenchArgs::prompts`]): per form, the stateless rerank under a prompt,
/// and a warm session that switches between the form's two prompts at every rerank (no new
/// event: the swap alone); prints one RESULT line each.
fn prompt_cases(
    a: &BenchArgs,
    reranker: &Reranker,
    backend: &str,
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> anyhow::Result<()> {
    let (h, c) = (history.len(), candidates.len());
    for form in ["input", "deep"] {
        let named = |x: &str| request.clone().with_prompt(format!("{form}_{x}"));
        let (first, second) = (named("a"), named("b"));
        let ms = run_inline(|| {
            time_ms(a.warmup, a.iters, || {
                reranker.rerank(history, candidates, &first)?;
                Ok(())
            })
        })?;
        println!(
            "RESULT rerank-prompt backend={backend} form={form} length={} history={h} candidates={c} p50={:.3} ms p99={:.3} ms",
            a.prompts,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
        let mut session = MemberSession::new(history.to_vec())?;
        reranker.rerank_session(&mut session, candidates, &first)?;
        let mut k = 0usize;
        let mut encoded = 0;
        let ms = run_inline(|| {
            time_ms(a.warmup, a.iters, || {
                k += 1;
                let next = if k % 2 == 1 { &second } else { &first };
                reranker.rerank_session(&mut session, candidates, next)?;
                encoded = session.last_encoded_tokens();
                Ok(())
            })
        })?;
        println!(
            "RESULT prompt-swap backend={backend} form={form} length={} history={h} candidates={c} p50={:.3} ms p99={:.3} ms tokens_encoded={encoded}",
            a.prompts,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
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
    if a.pushed > 0 {
        pushed_case(a, reranker, backend, history, &candidates, &request)?;
    }
    if reranker.ranker().is_some() && reranker.serving_model().is_some() {
        contextual_case(a, reranker, backend, history, &candidates, &request)?;
    }
    Ok((candidates, request))
}

/// With a contextual ranker in the bundle: a stateless search rerank (the foundation model's
/// forward, then the ranker over the candidates), and a warm session whose every call is a new
/// query on the same history (the request token, then the ranker); one RESULT line each.
fn contextual_case(
    a: &BenchArgs,
    reranker: &Reranker,
    backend: &str,
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> anyhow::Result<()> {
    let ranker = reranker.ranker().expect("checked by the caller");
    // Two queries: the first word of two candidates' titles, cut to four characters.
    let query = |k: usize| -> String {
        let row = reranker
            .items()
            .index_of(candidates[k])
            .expect("a bundled candidate");
        let word = ranker.vocabulary.titles[row]
            .words
            .first()
            .cloned()
            .unwrap_or_default();
        word.chars().take(4).collect()
    };
    let (q1, q2) = (query(0), query(candidates.len() / 2));
    let context = |q: &str| RankContext::task("search").with_query(q).with_alpha(0.5);
    let (c1, c2) = (context(&q1), context(&q2));
    let (h, c) = (history.len(), candidates.len());
    let ms = run_inline(|| {
        time_ms(a.warmup, a.iters, || {
            reranker.rerank_in_context(history, candidates, request, &c1)?;
            Ok(())
        })
    })?;
    let mflop = ranker.weights.rerank_flops(c) / 1e6;
    println!(
        "RESULT rerank-contextual backend={backend} task=search history={h} candidates={c} p50={:.3} ms p99={:.3} ms ranker_mflop={mflop:.2} ranker_width={} ranker_parameters={}",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ranker.weights.config.width(),
        ranker.weights.parameter_count()
    );
    let mut session = MemberSession::new(history.to_vec())?;
    reranker.rerank_session_in_context(&mut session, candidates, request, &c1)?;
    let mut k = 0usize;
    let mut encoded = 0;
    let ms = run_inline(|| {
        time_ms(a.warmup, a.iters, || {
            k += 1;
            let next = if k % 2 == 1 { &c2 } else { &c1 };
            reranker.rerank_session_in_context(&mut session, candidates, request, next)?;
            encoded = session.last_encoded_tokens();
            Ok(())
        })
    })?;
    println!(
        "RESULT query-swap backend={backend} task=search history={h} candidates={c} p50={:.3} ms p99={:.3} ms tokens_encoded={encoded}",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99)
    );
    Ok(())
}

/// Times stateless reranks of the same case with the last `a.pushed` candidates replaced by
/// titles the bundle lacks, pushed with metadata, and prints its RESULT line.
fn pushed_case(
    a: &BenchArgs,
    reranker: &Reranker,
    backend: &str,
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> anyhow::Result<()> {
    let spec = &reranker
        .content_encoder()
        .ok_or_else(|| {
            anyhow::anyhow!("--pushed needs a --model whose bundle has a content encoder")
        })?
        .spec;
    let n = a.pushed.min(candidates.len());
    let fresh = reranker.items().ids().iter().max().copied().unwrap_or(0) + 1;
    let mut list: Vec<Candidate> = candidates[..candidates.len() - n]
        .iter()
        .map(|&id| Candidate::known(id))
        .collect();
    for k in 0..n {
        let metadata = TitleMetadata {
            genres: spec
                .genres
                .iter()
                .skip(k % spec.genres.len().max(1))
                .take(2)
                .cloned()
                .collect(),
            kind: ItemKind::Movie,
            language: "en".into(),
            release_year: 2020,
            added_at: spec.reference_time,
            content: (spec.content_dim > 0).then(|| {
                (0..spec.content_dim)
                    .map(|j| ((k * 31 + j) as f32 * 0.01).sin())
                    .collect()
            }),
            title: Some(format!("Pushed title {k}")),
        };
        list.push(Candidate::with_metadata(fresh + k as u32, metadata));
    }
    let ms = run_inline(|| {
        time_ms(a.warmup, a.iters, || {
            reranker.rerank_pushed(history, &list, request)?;
            Ok(())
        })
    })?;
    println!(
        "RESULT rerank-pushed backend={backend} history={} candidates={} pushed={n} content_dim={} p50={:.3} ms p99={:.3} ms",
        history.len(),
        list.len(),
        spec.content_dim,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99)
    );
    // With a contextual ranker: the same list in a search whose query the pushed titles match.
    if reranker.ranker().is_some() && reranker.serving_model().is_some() {
        let context = RankContext::task("search")
            .with_query("pushed ti")
            .with_alpha(0.5);
        let ms = run_inline(|| {
            time_ms(a.warmup, a.iters, || {
                reranker.rerank_pushed_in_context(history, &list, &[], request, &context)?;
                Ok(())
            })
        })?;
        println!(
            "RESULT rerank-contextual-pushed backend={backend} task=search history={} candidates={} pushed={n} p50={:.3} ms p99={:.3} ms",
            history.len(),
            list.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
    }
    Ok(())
}

/// Times stateless reranks of the same case with every candidate pushed with its int8 item
/// vector: on the bundle, then on the bundle cut down to its model (one title kept), with
/// every history title pushed too; prints the RESULT lines with each bundle's size.
fn vectors_case(
    a: &BenchArgs,
    reranker: &Reranker,
    bytes: &[u8],
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> anyhow::Result<()> {
    use encore_core::PushedVector;
    use encore_core::weights::{Quantization, load_model, requantize, retain_items};
    let d = reranker.config().d_model;
    let ids = reranker.items().ids().to_vec();
    let vectors = reranker.item_vectors()?;
    let row_of: std::collections::HashMap<u32, usize> =
        ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
    let pushed = |id: u32| {
        let r = row_of[&id];
        Candidate::with_vector(id, PushedVector::quantize(&vectors[r * d..(r + 1) * d]))
    };
    let list: Vec<Candidate> = candidates.iter().map(|&id| pushed(id)).collect();
    let mut history_ids: Vec<u32> = history.iter().map(|e| e.item).collect();
    history_ids.sort_unstable();
    history_ids.dedup();
    let history_titles: Vec<Candidate> = history_ids.iter().map(|&id| pushed(id)).collect();
    let bundle = requantize(bytes, Quantization::Int8)?;
    let kept = ids
        .iter()
        .copied()
        .find(|id| !candidates.contains(id) && !history_ids.contains(id))
        .unwrap_or(ids[0]);
    let loaded = load_model(&bundle, &burn::tensor::Device::flex())?;
    let alone = retain_items(loaded, |id| id == kept);
    let alone = alone.to_bundle(&alone.prompts, Quantization::Int8);
    let model_only = Reranker::from_bytes(&alone, &burn::tensor::Device::flex())?;
    let (h, c) = (history.len(), candidates.len());
    for (what, r, size, titles) in [
        ("bundle", reranker, bundle.len(), &[][..]),
        ("model-only", &model_only, alone.len(), &history_titles[..]),
    ] {
        let ms = run_inline(|| {
            time_ms(a.warmup, a.iters, || {
                r.rerank_pushed_with_history(history, &list, titles, request)?;
                Ok(())
            })
        })?;
        println!(
            "RESULT rerank-pushed-vectors bundle={what} bundle_int8_bytes={size} history={h} \
             candidates={c} history_titles_pushed={} p50={:.3} ms p99={:.3} ms",
            titles.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
    }
    Ok(())
}
