//! Every engine that computes the model's scores, held to every other directly: burn's training
//! forward (all tokens through every layer, the layer mix, the last position), the CPU serving
//! engine, the WGSL engine on a plain wgpu device (Mesa's software Vulkan here) and burn's wgpu
//! backend, for stateless, session and batch reranks, on trained weights and on random weights
//! with several layers and heads. Scores are compared by item, pairwise, to 1e-4.

use burn::tensor::Device;
use encore_core::data::split::group_by_member;
use encore_core::model::{FoundationModelConfig, last_rows};
use encore_core::weights::{LoadedModel, Quantization, load_model, save_model};
use encore_core::{
    Event, MemberRequest, MemberSession, RerankRequest, Reranker, ScoredItem, Surface, TokenBatch,
};
use encore_shaders::kernel_launches;
use encore_shaders::plain_wgpu::GpuDevice;
use encore_tests::{ByItem, assert_pairwise, by_item, small_world, tiny_weight_file};

/// burn's training forward: on the autodiff CPU device (the burn-ops attention that training
/// differentiates), every token through every block (`FoundationModel::forward`), the user
/// representation at the last token, dot products with the item vectors. `loaded` lives there.
fn training_forward(
    loaded: &LoadedModel,
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> ByItem {
    let device = Device::flex().autodiff();
    let seq = loaded
        .config
        .tokenizer()
        .serving_sequence(&loaded.items, history, &request.context(history))
        .unwrap();
    let batch = TokenBatch::new(&[seq], &device);
    // Every token's state (no cache, not only the last), then the last real token's.
    let hidden = loaded
        .model
        .forward(&batch, &loaded.model.token_tables(), None, false);
    let user = loaded
        .model
        .user_representation(last_rows(hidden, &batch.lengths));
    let scores: Vec<f32> = user
        .matmul(loaded.model.item_vectors().transpose())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    candidates
        .iter()
        .map(|&id| (id, scores[loaded.items.index_of(id).unwrap()]))
        .collect()
}

fn untrained(
    world: &encore_core::SyntheticWorld,
    d: usize,
    n_heads: usize,
    n_layers: usize,
    max_len: usize,
    context: bool,
) -> Vec<u8> {
    let config = FoundationModelConfig::new(world.catalog.len())
        .with_d_model(d)
        .with_n_heads(n_heads)
        .with_n_layers(n_layers)
        .with_d_ff(2 * d + 8)
        .with_max_len(max_len)
        .with_context_features(context)
        .with_dropout(0.0);
    let model = config.init(&Device::flex());
    save_model(&model, &config, &world.catalog.ids(), Quantization::F32)
}

#[test]
fn every_engine_scores_like_every_other() {
    let world = small_world();
    let histories: Vec<Vec<Event>> = group_by_member(&world.events)
        .into_iter()
        .map(|h| h.events)
        .filter(|e| e.len() > 12)
        .take(5)
        .collect();
    let longest = histories.iter().map(Vec::len).max().unwrap();
    let ids = world.catalog.ids();
    let candidates: Vec<u32> = ids.iter().rev().step_by(2).copied().collect();
    let gpu = GpuDevice::open_native().expect("a wgpu adapter (Mesa's software Vulkan here)");
    let models = [
        ("trained d16 h2 l2", tiny_weight_file(&world, 2)),
        ("random d32 h4 l3", untrained(&world, 32, 4, 3, 40, true)),
        (
            "random d24 h2 l2 id-only",
            untrained(&world, 24, 2, 2, 30, false),
        ),
    ];
    for (model, bytes) in &models {
        let reference = load_model(bytes, &Device::flex().autodiff()).unwrap();
        let cpu = Reranker::from_bytes(bytes, &Device::flex()).unwrap();
        let wgsl = Reranker::from_bytes(bytes, &Device::flex())
            .unwrap()
            .with_wgsl_engine(gpu.clone())
            .unwrap();
        let burn_wgpu = Reranker::from_bytes(bytes, &Device::wgpu(Default::default())).unwrap();
        let n_layers = cpu.config().n_layers;
        assert!(n_layers >= 2 && cpu.config().n_heads >= 2, "{model}");
        let window = cpu.config().max_len;
        assert!(
            longest > window,
            "{model}: a history longer than the window"
        );
        let request = RerankRequest::on(Surface::Kids);

        // Stateless: one event, a few, and a history longer than the window.
        for history in &histories {
            for n in [1, 7, history.len()] {
                let events = &history[history.len() - n..];
                let what = format!("{model}, stateless, history {n}");
                let before = kernel_launches();
                let on_burn_wgpu =
                    by_item(&burn_wgpu.rerank(events, &candidates, &request).unwrap());
                let after = kernel_launches();
                // burn's wgpu backend reaches both WGSL kernels: attention in every layer but
                // the last (process-wide counts: other tests may add to them), scoring once.
                assert!(
                    after.attention >= before.attention + n_layers as u64 - 1,
                    "{what}: attention kernel"
                );
                assert!(after.scoring > before.scoring, "{what}: scoring kernel");
                let engines = [
                    (
                        "training forward",
                        training_forward(&reference, events, &candidates, &request),
                    ),
                    (
                        "cpu",
                        by_item(&cpu.rerank(events, &candidates, &request).unwrap()),
                    ),
                    (
                        "wgsl",
                        by_item(&wgsl.rerank(events, &candidates, &request).unwrap()),
                    ),
                    ("burn wgpu", on_burn_wgpu),
                ];
                assert_pairwise(&what, &engines, &candidates);
            }
        }

        // Sessions: appends one at a time, each followed by a rerank, past the window.
        let history = histories.iter().max_by_key(|h| h.len()).unwrap();
        let start = 4;
        let mut sessions: Vec<(&str, &Reranker, MemberSession)> =
            [("cpu", &cpu), ("wgsl", &wgsl), ("burn wgpu", &burn_wgpu)]
                .into_iter()
                .map(|(name, r)| {
                    (
                        name,
                        r,
                        MemberSession::new(history[..start].to_vec()).unwrap(),
                    )
                })
                .collect();
        for n in start..=history.len().min(window + 6) {
            if n > start {
                for (_, _, s) in &mut sessions {
                    s.append(history[n - 1].clone()).unwrap();
                }
            }
            let what = format!("{model}, session after {n} events");
            let mut engines = vec![(
                "training forward",
                training_forward(&reference, &history[..n], &candidates, &request),
            )];
            for (name, reranker, session) in &mut sessions {
                engines.push((
                    *name,
                    by_item(
                        &reranker
                            .rerank_session(session, &candidates, &request)
                            .unwrap(),
                    ),
                ));
            }
            assert_pairwise(&what, &engines, &candidates);
        }

        // Batches: several members in one call, each against its own training forward.
        let members: Vec<MemberRequest> = histories
            .iter()
            .map(|h| MemberRequest {
                history: h,
                candidates: &candidates,
                request: request.clone(),
            })
            .collect();
        let results: Vec<Vec<Vec<ScoredItem>>> = [&cpu, &wgsl, &burn_wgpu]
            .iter()
            .map(|r| {
                r.rerank_batch(&members)
                    .into_iter()
                    .map(Result::unwrap)
                    .collect()
            })
            .collect();
        for (m, history) in histories.iter().enumerate() {
            let engines = [
                (
                    "training forward",
                    training_forward(&reference, history, &candidates, &request),
                ),
                ("cpu", by_item(&results[0][m])),
                ("wgsl", by_item(&results[1][m])),
                ("burn wgpu", by_item(&results[2][m])),
            ];
            assert_pairwise(&format!("{model}, batch member {m}"), &engines, &candidates);
        }
    }
}
