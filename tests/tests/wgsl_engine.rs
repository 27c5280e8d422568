//! The WGSL engine (Encore's kernels alone on a plain wgpu device, the browser's WebGPU path)
//! against the CPU engine, on Mesa's software Vulkan here and a real GPU elsewhere.

use burn::tensor::Device;
use encore_core::data::split::group_by_member;
use encore_core::model::FoundationModelConfig;
use encore_core::model::{NamedPromptSet, PromptForm, PromptSetConfig};
use encore_core::runtime::engines::wgsl::{DeepPrompt, WgslEngine, WgslEngineError};
use encore_core::weights::{Quantization, load_model, save_model};
use encore_core::{Event, RerankRequest, Reranker, Surface};
use encore_shaders::plain_wgpu::{GpuDevice, PendingScores};
use encore_tests::{small_world, tiny_weight_file};

fn gpu() -> GpuDevice {
    GpuDevice::open_native()
        .expect("a wgpu adapter (Mesa's software Vulkan on a machine without a GPU)")
}

/// An untrained model's weight file: d, heads, layers, ff, window.
fn untrained(
    world: &encore_core::SyntheticWorld,
    shape: (usize, usize, usize, usize, usize),
) -> Vec<u8> {
    let (d, heads, layers, ff, max_len) = shape;
    let config = FoundationModelConfig::new(world.catalog.len())
        .with_d_model(d)
        .with_n_heads(heads)
        .with_n_layers(layers)
        .with_d_ff(ff)
        .with_max_len(max_len)
        .with_dropout(0.0);
    let model = config.init(&Device::flex());
    save_model(&model, &config, &world.catalog.ids(), Quantization::F32)
}

/// The longest member history of the world.
fn longest_history(world: &encore_core::SyntheticWorld) -> Vec<Event> {
    group_by_member(&world.events)
        .into_iter()
        .max_by_key(|h| h.events.len())
        .expect("members")
        .events
}

#[test]
fn wgsl_engine_reranks_as_the_cpu_engine() {
    let world = small_world();
    let history = longest_history(&world);
    assert!(history.len() > 80, "{} events", history.len());
    let ids = world.catalog.ids();
    let gpu = gpu();
    // A trained model, and untrained ones with head widths 8, 16 and 128, one or two layers,
    // windows that are not multiples of the 64-invocation workgroup.
    let models = [
        ("trained d16 h2", tiny_weight_file(&world, 1)),
        ("d24 h3 l2", untrained(&world, (24, 3, 2, 40, 70))),
        ("d64 h4 l2", untrained(&world, (64, 4, 2, 128, 50))),
        ("d128 h1 l1", untrained(&world, (128, 1, 1, 64, 30))),
    ];
    for (name, bytes) in &models {
        let cpu = Reranker::from_bytes(bytes, &Device::flex()).unwrap();
        let wgsl = Reranker::from_bytes(bytes, &Device::flex())
            .unwrap()
            .with_wgsl_engine(gpu.clone())
            .unwrap();
        assert!(wgsl.wgsl_adapter().is_some() && cpu.wgsl_adapter().is_none());
        // One event, odd lengths, a full window and a history longer than it.
        for n in [1, 2, 29, 65, history.len()] {
            let events = &history[history.len() - n..];
            for candidates in [&ids[..], &ids[5..6]] {
                let request = RerankRequest::on(Surface::Kids);
                let a = cpu.rerank(events, candidates, &request).unwrap();
                let b = wgsl.rerank(events, candidates, &request).unwrap();
                assert_eq!(a.len(), b.len());
                let on_gpu: std::collections::HashMap<u32, f32> =
                    b.iter().map(|s| (s.item, s.score)).collect();
                for s in &a {
                    let g = on_gpu[&s.item];
                    assert!(
                        (s.score - g).abs() <= 1e-4 * s.score.abs().max(1.0),
                        "{name}, history {n}, item {}: cpu {} vs wgsl {g}",
                        s.item,
                        s.score
                    );
                }
            }
        }
        // The async read gives the same scores.
        let events = &history[history.len() - 9..];
        let request = RerankRequest::on(Surface::Home);
        let sync = wgsl.rerank(events, &ids, &request).unwrap();
        let later = std::pin::pin!(wgsl.rerank_async(events, &ids, &request));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(later, &mut context) {
            std::task::Poll::Ready(r) => assert_eq!(r.unwrap(), sync, "{name}"),
            std::task::Poll::Pending => panic!("a native read waits on the device and is ready"),
        }
    }
}

#[test]
fn submissions_in_flight_keep_their_own_scores_and_bad_shapes_are_refused() {
    let world = small_world();
    let bytes = untrained(&world, (32, 2, 2, 48, 40));
    let cpu = Reranker::from_bytes(&bytes, &Device::flex()).unwrap();
    let serving = cpu.serving_model().unwrap();
    let wgsl = WgslEngine::new(gpu(), serving, 200).unwrap();
    let host = encore_core::runtime::CpuEngine::new(std::sync::Arc::new(serving.clone()));
    let history = longest_history(&world);
    let tokens = |n: usize| {
        cpu.config()
            .tokenizer()
            .serving_sequence(
                cpu.items(),
                &history[history.len() - n..],
                &RerankRequest::on(Surface::Search).context(&history[history.len() - n..]),
            )
            .unwrap()
            .field_rows()
    };
    let rows: Vec<u32> = (0..world.catalog.len() as u32).rev().collect();
    let (short, long) = (tokens(3), tokens(39));
    // Two submissions before either is read: each keeps its own scores.
    let first = wgsl
        .submit(&serving.embed_at(&short, 0), &rows, None)
        .unwrap();
    let second = wgsl
        .submit(&serving.embed_at(&long, 0), &rows[..50], None)
        .unwrap();
    let second = second.wait().unwrap();
    let first = first.wait().unwrap();
    let dense: Vec<i64> = rows.iter().map(|&r| i64::from(r)).collect();
    for (got, toks, n) in [(first, &short, rows.len()), (second, &long, 50)] {
        let want = host.scores(&host.encode(toks), &dense[..n]);
        assert_eq!(got.len(), n);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
    // Refused by name: a row past the table, more candidates than bound, an empty window,
    // more rows than a window and the longest input prompt.
    let x = serving.embed_at(&short, 0);
    let err = |r: Result<PendingScores, WgslEngineError>| r.unwrap_err().to_string();
    assert!(err(wgsl.submit(&x, &[world.catalog.len() as u32], None)).contains("candidate row"));
    assert!(err(wgsl.submit(&x, &vec![0; 201], None)).contains("candidate count"));
    assert!(err(wgsl.submit(&[], &rows, None)).contains("embedded window"));
    let too_long = 40 + encore_core::model::MAX_PROMPT_LENGTH + 1;
    assert!(err(wgsl.submit(&vec![0.0; 32 * too_long], &rows, None)).contains("embedded window"));
    // A deep prompt whose keys do not cover every layer.
    let short_keys = vec![0.0; 32];
    let deep = DeepPrompt {
        length: 1,
        keys: &short_keys,
        values: &short_keys,
    };
    assert!(err(wgsl.submit(&x, &rows, Some(deep))).contains("deep prompt"));
}

#[test]
fn a_deep_prompt_runs_on_the_wgsl_engine_as_on_the_cpu_engine() {
    let world = small_world();
    let loaded = load_model(&untrained(&world, (32, 4, 2, 48, 40)), &Device::flex()).unwrap();
    let prompt = PromptSetConfig::new(PromptForm::Deep, 32, 2)
        .with_length(3)
        .with_init_std(3.0)
        .init(&Device::flex());
    let named = NamedPromptSet {
        name: "search".into(),
        prompt,
    };
    let bundle = loaded.to_bundle(&[named], Quantization::F32);
    let cpu = Reranker::from_bytes(&bundle, &Device::flex()).unwrap();
    let serving = cpu.serving_model().unwrap();
    let wgsl = WgslEngine::new(gpu(), serving, 200).unwrap();
    let host = encore_core::runtime::CpuEngine::new(std::sync::Arc::new(serving.clone()));
    let p = &serving.prompts[0];
    let deep = DeepPrompt {
        length: p.deep_keys(),
        keys: &p.keys,
        values: &p.values,
    };
    let history = longest_history(&world);
    let rows: Vec<u32> = (0..world.catalog.len() as u32).collect();
    let dense: Vec<i64> = rows.iter().map(|&r| i64::from(r)).collect();
    let mut moved = 0f32;
    // One event (the request token sees the prompt and itself), and a full window.
    for n in [1, 12, 39] {
        let events = &history[history.len() - n..];
        let toks = cpu
            .config()
            .tokenizer()
            .serving_sequence(
                cpu.items(),
                events,
                &RerankRequest::on(Surface::Search).context(events),
            )
            .unwrap()
            .field_rows();
        let x = serving.embed_at(&toks, 0);
        let got = wgsl.submit(&x, &rows, Some(deep)).unwrap().wait().unwrap();
        let want = host.scores(&host.encode_prompted(&toks, &[], Some(0)), &dense);
        let plain = host.scores(&host.encode(&toks), &dense);
        for ((g, w), u) in got.iter().zip(&want).zip(&plain) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "history {n}: {g} vs {w}"
            );
            moved = moved.max((w - u).abs());
        }
        // The same reranker with the engine attached serves the prompt on the GPU.
        let attached = Reranker::from_bytes(&bundle, &Device::flex())
            .unwrap()
            .with_wgsl_engine(gpu())
            .unwrap();
        let request = RerankRequest::on(Surface::Search).with_prompt("search");
        let a = cpu.rerank(events, &world.catalog.ids(), &request).unwrap();
        let b = attached
            .rerank(events, &world.catalog.ids(), &request)
            .unwrap();
        let on_gpu: std::collections::HashMap<u32, f32> =
            b.iter().map(|s| (s.item, s.score)).collect();
        for s in &a {
            assert!((s.score - on_gpu[&s.item]).abs() <= 1e-4 * s.score.abs().max(1.0));
        }
    }
    // The prompt changes the scores, so the comparison above checks its keys and values.
    assert!(
        moved > 1e-2,
        "the deep prompt moved scores by at most {moved}"
    );
}

/// A command the GPU refuses comes back as a typed error (natively wgpu would panic), both
/// around any work (`GpuDevice::checked`) and with a submission's scores; the device keeps
/// working for the next request.
#[test]
fn commands_the_gpu_refuses_are_typed_errors_and_the_device_stays_usable() {
    use encore_shaders::plain_wgpu::GpuError;
    let gpu = gpu();
    // MAP_READ with MAP_WRITE on one buffer is invalid without a native-only feature.
    let invalid = |device: &wgpu::Device| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("invalid"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE,
            mapped_at_creation: false,
        })
    };
    match gpu.checked(invalid) {
        Err(GpuError::Validation(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(gpu.checked(|_| 7).is_ok_and(|v| v == 7));

    // The same inside a submission's scope: the read-back reports it instead of the scores.
    let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let _bad = invalid(&gpu.device);
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("staging"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let e = PendingScores::map(staging, &gpu.device, scope)
        .wait()
        .unwrap_err();
    assert!(matches!(e, GpuError::Validation(_)), "{e:?}");
    assert!(
        e.to_string().starts_with("the GPU refused a command"),
        "{e}"
    );

    // A real engine on the same device still reranks.
    let world = small_world();
    let weights = tiny_weight_file(&world, 1);
    let reranker = Reranker::from_bytes(&weights, &Device::flex()).unwrap();
    let engine = WgslEngine::new(gpu, reranker.serving_model().unwrap(), 64).unwrap();
    let d = reranker.config().d_model;
    let scores = engine
        .submit(&vec![0.1; 3 * d], &[0, 1, 2], None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(scores.len(), 3);
    assert!(scores.iter().all(|s| s.is_finite()));
}
