//! Prompt sets: every engine runs them as training's batched forward does, a session switches
//! prompts without re-encoding the history and gives each prompt's stateless scores, the
//! bundle carries them (and the model's scores without a prompt stay as they were), and bad
//! names and hostile prompt parts are refused by name.

use burn::tensor::{Device, Tensor};
use encore_core::data::split::group_by_member;
use encore_core::model::{
    FoundationModel, FoundationModelConfig, NamedPromptSet, PromptForm, PromptSetConfig,
};
use encore_core::weights::{
    BundleParts, LoadedModel, Manifest, PartKind, Quantization, WeightFile, WeightFileError,
    load_model, save_bundle_with, save_model,
};
use encore_core::{
    Event, MemberSession, RerankError, RerankRequest, Reranker, Surface, TokenBatch,
};
use encore_shaders::plain_wgpu::GpuDevice;
use encore_tests::{
    ByItem, assert_pairwise, by_item, edited_bundle, one_test_at_a_time, small_world,
};

/// A random three-layer model and two prompt sets large enough to move its scores: `kids`
/// (input form, 3 vectors) and `search` (deep form, 2 vectors per layer).
fn model_and_prompts(
    n_items: usize,
) -> (FoundationModel, FoundationModelConfig, Vec<NamedPromptSet>) {
    // Fixed weights: the checks below compare engines on them, and whether the prompts move
    // the scores enough to matter is checked once, for these weights. The seed is the
    // backend's, shared by the tests running at once: only one draws at a time.
    static DRAWING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = DRAWING.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    device.seed(11);
    let config = FoundationModelConfig::new(n_items)
        .with_d_model(32)
        .with_n_heads(4)
        .with_n_layers(3)
        .with_d_ff(48)
        .with_max_len(40)
        .with_dropout(0.0);
    let model = config.init(&device);
    let prompt = |form, length| {
        PromptSetConfig::new(form, 32, 3)
            .with_length(length)
            .with_init_std(3.0)
            .init(&device)
    };
    let prompts = vec![
        NamedPromptSet {
            name: "kids".into(),
            prompt: prompt(PromptForm::Input, 3),
        },
        NamedPromptSet {
            name: "search".into(),
            prompt: prompt(PromptForm::Deep, 2),
        },
    ];
    (model, config, prompts)
}

fn bundle(
    model: &FoundationModel,
    config: &FoundationModelConfig,
    ids: &[u32],
    prompts: &[NamedPromptSet],
) -> Vec<u8> {
    let parts = BundleParts {
        content_encoder: None,
        prompts,
        ranker: None,
    };
    save_bundle_with(model, config, ids, parts, Quantization::F32)
}

/// Training's batched prompted forward on the autodiff CPU device: the history and the
/// request's prompt group as one masked sequence, the user representation at the request.
fn training_forward(
    loaded: &LoadedModel,
    history: &[Event],
    candidates: &[u32],
    request: &RerankRequest,
) -> ByItem {
    let seq = loaded
        .config
        .tokenizer()
        .serving_sequence(&loaded.items, history, &request.context(history))
        .unwrap();
    let batch = TokenBatch::new(std::slice::from_ref(&seq), &Device::flex().autodiff());
    let prompt = request.prompt.as_ref().map(|name| {
        &loaded
            .prompts
            .iter()
            .find(|p| &p.name == name)
            .expect("a prompt set of that name")
            .prompt
    });
    let user = loaded.model.forward_prompted_batch(
        &batch,
        &loaded.model.token_tables(),
        &[vec![seq.len() - 1]],
        prompt,
    );
    let d = loaded.config.d_model;
    let scores: Vec<f32> = user
        .reshape([1, d])
        .matmul(loaded.model.item_vectors().transpose())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    candidates
        .iter()
        .map(|&id| (id, scores[loaded.items.index_of(id).unwrap()]))
        .collect()
}

#[test]
fn every_engine_runs_prompts_as_training_does() {
    let _alone = one_test_at_a_time();
    let world = small_world();
    let ids = world.catalog.ids();
    let (model, config, prompts) = model_and_prompts(ids.len());
    let bytes = bundle(&model, &config, &ids, &prompts);
    let reference = load_model(&bytes, &Device::flex().autodiff()).unwrap();
    assert_eq!(reference.prompts.len(), 2);
    let cpu = Reranker::from_bytes(&bytes, &Device::flex()).unwrap();
    // A reranker on the autodiff device runs burn's device path (not the CPU engine).
    let burn_cpu = Reranker::from_bytes(&bytes, &Device::flex().autodiff()).unwrap();
    let burn_wgpu = Reranker::from_bytes(&bytes, &Device::wgpu(Default::default())).unwrap();
    let gpu = GpuDevice::open_native().expect("a wgpu adapter (Mesa's software Vulkan here)");
    let wgsl = Reranker::from_bytes(&bytes, &Device::flex())
        .unwrap()
        .with_wgsl_engine(gpu)
        .unwrap();
    let history = group_by_member(&world.events)
        .into_iter()
        .map(|h| h.events)
        .max_by_key(Vec::len)
        .unwrap();
    assert!(
        history.len() > config.max_len,
        "a history longer than the window"
    );
    let candidates: Vec<u32> = ids.iter().step_by(3).copied().collect();
    let mut by_prompt = Vec::new();
    for prompt in [None, Some("kids"), Some("search")] {
        for n in [1, 9, history.len()] {
            let events = &history[history.len() - n..];
            let mut request = RerankRequest::on(Surface::Home);
            request.prompt = prompt.map(str::to_string);
            let what = format!("prompt {prompt:?}, history {n}");
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
                    "burn cpu",
                    by_item(&burn_cpu.rerank(events, &candidates, &request).unwrap()),
                ),
                (
                    "burn wgpu",
                    by_item(&burn_wgpu.rerank(events, &candidates, &request).unwrap()),
                ),
                (
                    "wgsl",
                    by_item(&wgsl.rerank(events, &candidates, &request).unwrap()),
                ),
            ];
            assert_pairwise(&what, &engines, &candidates);
            if n == 9 {
                by_prompt.push(engines[1].1.clone());
            }
        }
    }
    // The prompts change the scores (else the comparison above proves little): each moves
    // some candidate's score by more than 5% of the spread of the unprompted scores.
    let spread = {
        let s: Vec<f32> = by_prompt[0].values().copied().collect();
        s.iter().copied().fold(f32::MIN, f32::max) - s.iter().copied().fold(f32::MAX, f32::min)
    };
    eprintln!("unprompted scores spread over {spread}");
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let moved = candidates
            .iter()
            .map(|c| (by_prompt[i][c] - by_prompt[j][c]).abs())
            .fold(0f32, f32::max);
        eprintln!("prompts {i} and {j}: scores moved up to {moved}");
        assert!(
            moved > 0.05 * spread,
            "prompts {i} and {j} give the same scores ({moved})"
        );
    }
    // Batch scoring (evaluation) under a prompt equals the stateless rerank.
    let mut request = RerankRequest::on(Surface::Home);
    request.prompt = Some("search".into());
    let tail = &history[history.len() - 9..];
    let catalog = cpu
        .score_catalog(&[
            (tail, request.clone()),
            (&history[..9], RerankRequest::on(Surface::Kids)),
        ])
        .unwrap();
    for &c in &candidates {
        let row = cpu.items().index_of(c).unwrap();
        assert!(
            (catalog[0][row] - by_prompt[2][&c]).abs() <= 1e-4,
            "catalog score of {c}"
        );
    }
    let plain = by_item(
        &cpu.rerank(
            &history[..9],
            &candidates,
            &RerankRequest::on(Surface::Kids),
        )
        .unwrap(),
    );
    for &c in &candidates {
        let row = cpu.items().index_of(c).unwrap();
        assert!(
            (catalog[1][row] - plain[&c]).abs() <= 1e-4,
            "unprompted member {c}"
        );
    }
}

#[test]
fn a_session_switches_prompts_without_re_encoding_the_history() {
    let _alone = one_test_at_a_time();
    let world = small_world();
    let ids = world.catalog.ids();
    let (model, config, prompts) = model_and_prompts(ids.len());
    let bytes = bundle(&model, &config, &ids, &prompts);
    let history = group_by_member(&world.events)
        .into_iter()
        .map(|h| h.events)
        .find(|e| e.len() > 30)
        .unwrap();
    let candidates: Vec<u32> = ids.iter().step_by(2).copied().collect();
    for device in [Device::flex(), Device::flex().autodiff()] {
        let reranker = Reranker::from_bytes(&bytes, &device).unwrap();
        let mut session = MemberSession::new(history[..20].to_vec()).unwrap();
        let plain = RerankRequest::on(Surface::Home);
        reranker
            .rerank_session(&mut session, &candidates, &plain)
            .unwrap();
        let cached = session.cached_tokens();
        assert_eq!(cached, 20, "{device:?}: the history's tokens are cached");
        let sequence = [
            (Some("kids"), 3 + 1),
            (Some("search"), 1),
            (None, 1),
            (Some("kids"), 3 + 1),
            (Some("search"), 1),
        ];
        for (k, (prompt, encoded)) in sequence.into_iter().enumerate() {
            let mut request = RerankRequest::on(Surface::ALL[k % 4]);
            request.prompt = prompt.map(str::to_string);
            let ours = reranker
                .rerank_session(&mut session, &candidates, &request)
                .unwrap();
            let what = format!("{device:?}, switch {k} to {prompt:?}");
            // The prompt's tokens and the request token, never the history.
            assert_eq!(session.last_encoded_tokens(), encoded, "{what}");
            assert_eq!(
                session.cached_tokens(),
                cached,
                "{what}: the cache holds the history alone"
            );
            let stateless = reranker
                .rerank(&history[..20], &candidates, &request)
                .unwrap();
            assert_pairwise(
                &what,
                &[
                    ("session", by_item(&ours)),
                    ("stateless", by_item(&stateless)),
                ],
                &candidates,
            );
        }
        // An appended event under a prompt: its token, the prompt's and the request's.
        session.append(history[20].clone()).unwrap();
        let request = RerankRequest::on(Surface::Kids).with_prompt("kids");
        let ours = reranker
            .rerank_session(&mut session, &candidates, &request)
            .unwrap();
        assert_eq!(session.last_encoded_tokens(), 1 + 3 + 1);
        let stateless = reranker
            .rerank(&history[..21], &candidates, &request)
            .unwrap();
        assert_pairwise(
            "appended",
            &[
                ("session", by_item(&ours)),
                ("stateless", by_item(&stateless)),
            ],
            &candidates,
        );
        // An unknown prompt set is refused by name and leaves the session usable.
        let unknown = RerankRequest::on(Surface::Home).with_prompt("partner_row");
        assert_eq!(
            reranker.rerank_session(&mut session, &candidates, &unknown),
            Err(RerankError::UnknownPromptSet {
                name: "partner_row".into(),
                known: vec!["kids".into(), "search".into()],
            })
        );
        let again = reranker
            .rerank_session(&mut session, &candidates, &request)
            .unwrap();
        assert_eq!(session.last_encoded_tokens(), 3 + 1);
        assert_pairwise(
            "after a refusal",
            &[
                ("session", by_item(&again)),
                ("stateless", by_item(&stateless)),
            ],
            &candidates,
        );
    }
}

#[test]
fn prompt_sets_travel_in_the_bundle_and_leave_unprompted_scores_unchanged() {
    let _alone = one_test_at_a_time();
    let world = small_world();
    let ids = world.catalog.ids();
    let (model, config, prompts) = model_and_prompts(ids.len());
    let plain = save_model(&model, &config, &ids, Quantization::F32);
    let with = bundle(&model, &config, &ids, &prompts);
    let loaded = load_model(&with, &Device::flex()).unwrap();
    let names: Vec<(&str, PromptForm, usize)> = loaded
        .prompts
        .iter()
        .map(|p| (p.name.as_str(), p.prompt.form(), p.prompt.length()))
        .collect();
    assert_eq!(
        names,
        [
            ("kids", PromptForm::Input, 3),
            ("search", PromptForm::Deep, 2)
        ]
    );
    for (a, b) in loaded.prompts.iter().zip(&prompts) {
        assert_eq!(
            a.prompt.named_tensors(),
            b.prompt.named_tensors(),
            "{}",
            a.name
        );
    }
    let history = &world
        .events
        .iter()
        .filter(|e| e.member == world.events[0].member)
        .cloned()
        .collect::<Vec<_>>();
    let candidates: Vec<u32> = ids.iter().take(40).copied().collect();
    let request = RerankRequest::on(Surface::Search);
    let a = Reranker::from_bytes(&plain, &Device::flex()).unwrap();
    let b = Reranker::from_bytes(&with, &Device::flex()).unwrap();
    assert!(a.prompt_sets().is_empty());
    let (x, y) = (
        a.rerank(history, &candidates, &request).unwrap(),
        b.rerank(history, &candidates, &request).unwrap(),
    );
    assert_eq!(x, y, "adding prompt sets changes no unprompted score");
    // A bundle without prompt sets refuses a prompted request by name.
    assert_eq!(
        a.rerank(history, &candidates, &request.clone().with_prompt("kids")),
        Err(RerankError::UnknownPromptSet {
            name: "kids".into(),
            known: vec![]
        })
    );
    // int8: the prompts survive quantisation closely.
    let int8 = encore_core::weights::requantize(&with, Quantization::Int8).unwrap();
    let q = load_model(&int8, &Device::flex()).unwrap();
    assert_eq!(q.prompts.len(), 2);
    let (orig, back) = (
        &prompts[1].prompt.named_tensors()[0].2,
        &q.prompts[1].prompt.named_tensors()[0].2,
    );
    let largest = orig.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = orig
        .iter()
        .zip(back.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    // int8 keeps one scale per row: an error within half a step of the largest value.
    assert!(
        worst <= largest / 254.0 + 1e-6,
        "int8 prompt keys off by {worst} (largest {largest})"
    );
}

#[test]
fn hostile_prompt_parts_are_refused_by_name() {
    let _alone = one_test_at_a_time();
    let world = small_world();
    let ids = world.catalog.ids();
    let (model, config, prompts) = model_and_prompts(ids.len());
    let bytes = bundle(&model, &config, &ids, &prompts);
    let prompt_part = |m: &mut Manifest, name: &str| -> usize {
        m.parts
            .iter()
            .position(|p| p.name == format!("prompt:{name}"))
            .unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "length 0",
            edited_bundle(&bytes, |m| {
                let i = prompt_part(m, "kids");
                if let PartKind::PromptSet(p) = &mut m.parts[i].kind {
                    p.length = 0;
                }
            }),
            "holds 0 vectors",
        ),
        (
            "length 17",
            edited_bundle(&bytes, |m| {
                let i = prompt_part(m, "search");
                if let PartKind::PromptSet(p) = &mut m.parts[i].kind {
                    p.length = 17;
                }
            }),
            "holds 17 vectors",
        ),
        (
            "form swapped",
            edited_bundle(&bytes, |m| {
                let i = prompt_part(m, "kids");
                if let PartKind::PromptSet(p) = &mut m.parts[i].kind {
                    p.form = PromptForm::Deep;
                }
            }),
            "lacks tensor `prompt set \"kids\" keys`",
        ),
        (
            "empty name",
            edited_bundle(&bytes, |m| {
                let i = prompt_part(m, "kids");
                m.parts[i].name = "prompt:".into();
            }),
            "name is empty",
        ),
        (
            "control character",
            edited_bundle(&bytes, |m| {
                let i = prompt_part(m, "kids");
                m.parts[i].name = "prompt:ki\nds".into();
            }),
            "control character",
        ),
        (
            "not a prompt name",
            edited_bundle(&bytes, |m| {
                let i = prompt_part(m, "search");
                m.parts[i].name = "searching".into();
            }),
            "is not named prompt:NAME",
        ),
    ];
    for (what, bad, message) in cases {
        let err = load_model(&bad, &Device::flex()).expect_err(what);
        assert!(err.to_string().contains(message), "{what}: {err}");
        let err = Reranker::from_bytes(&bad, &Device::flex()).expect_err(what);
        assert!(err.to_string().contains(message), "{what}: {err}");
    }
    // A NaN in a prompt set's vectors, refused by the prompt set's and the tensor's name.
    let file = WeightFile::decode(&bytes).unwrap();
    let manifest = file.manifest.clone();
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for part in &manifest.parts {
        for t in part.kind.tensors() {
            let mut blob = file.tensor_bytes(t).to_vec();
            if part.name == "prompt:kids" {
                blob[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
            }
            blobs.push(blob);
        }
    }
    // (The bundle stores f32: bytes 4..8 are the second value.)
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    let nan = WeightFile::encode(manifest, &refs);
    assert_eq!(
        load_model(&nan, &Device::flex()).err(),
        Some(WeightFileError::NonFinite {
            name: "prompt set \"kids\" input".into(),
            index: 1
        })
    );
    // A shape that does not fit the model: the deep form's layers.
    let wrong = edited_bundle(&bytes, |m| {
        let i = prompt_part(m, "search");
        if let PartKind::PromptSet(p) = &mut m.parts[i].kind {
            p.tensors[0].shape = vec![2, 2, 48];
        }
    });
    assert!(matches!(
        load_model(&wrong, &Device::flex()),
        Err(WeightFileError::InvalidTensor { .. }) | Err(WeightFileError::MalformedHeader(_))
    ));
}

#[test]
fn a_member_without_history_is_ranked_under_a_prompt_and_batches_run_prompts() {
    let _alone = one_test_at_a_time();
    let world = small_world();
    let ids = world.catalog.ids();
    let (model, config, prompts) = model_and_prompts(ids.len());
    let bytes = bundle(&model, &config, &ids, &prompts);
    let reference = load_model(&bytes, &Device::flex().autodiff()).unwrap();
    let cpu = Reranker::from_bytes(&bytes, &Device::flex()).unwrap();
    let burn_cpu = Reranker::from_bytes(&bytes, &Device::flex().autodiff()).unwrap();
    let candidates: Vec<u32> = ids.iter().step_by(4).copied().collect();
    let at = world.events[0].timestamp;
    let mut by_prompt = Vec::new();
    for name in ["kids", "search"] {
        let request = RerankRequest {
            timestamp: Some(at),
            ..RerankRequest::on(Surface::Kids).with_prompt(name)
        };
        // No history: the prompt and the request's context alone.
        let engines = [
            (
                "training forward",
                training_forward(&reference, &[], &candidates, &request),
            ),
            (
                "cpu",
                by_item(&cpu.rerank(&[], &candidates, &request).unwrap()),
            ),
            (
                "burn cpu",
                by_item(&burn_cpu.rerank(&[], &candidates, &request).unwrap()),
            ),
        ];
        // Evaluation's batch scoring too (one catalog row per member).
        let catalog = cpu.score_catalog(&[(&[], request.clone())]).unwrap();
        let scored: ByItem = candidates
            .iter()
            .map(|&c| (c, catalog[0][cpu.items().index_of(c).unwrap()]))
            .collect();
        let engines = [
            engines[0].clone(),
            engines[1].clone(),
            engines[2].clone(),
            ("batch scoring", scored),
        ];
        assert_pairwise(&format!("no history, {name}"), &engines, &candidates);
        by_prompt.push(engines[1].1.clone());
    }
    assert_eq!(
        cpu.score_catalog(&[(&[], RerankRequest::on(Surface::Home))]),
        Err(RerankError::EmptyHistory)
    );
    assert!(
        candidates
            .iter()
            .any(|c| (by_prompt[0][c] - by_prompt[1][c]).abs() > 1e-3),
        "the prompt sets rank a member without history differently"
    );
    // A session of a new member: the same ranking; then its first event, encoded as usual.
    for reranker in [&cpu, &burn_cpu] {
        let request = RerankRequest {
            timestamp: Some(at),
            ..RerankRequest::on(Surface::Kids).with_prompt("kids")
        };
        let mut session = MemberSession::new(Vec::new()).unwrap();
        let first = reranker
            .rerank_session(&mut session, &candidates, &request)
            .unwrap();
        let stateless = reranker.rerank(&[], &candidates, &request).unwrap();
        assert_pairwise(
            "new member's session",
            &[
                ("session", by_item(&first)),
                ("stateless", by_item(&stateless)),
            ],
            &candidates,
        );
        assert_eq!(
            session.last_encoded_tokens(),
            3 + 1,
            "the prompt and the request"
        );
        assert_eq!(
            reranker.rerank_session(&mut session, &candidates, &RerankRequest::on(Surface::Home)),
            Err(RerankError::EmptyHistory)
        );
        let event = world.events[0].clone();
        session.append(event.clone()).unwrap();
        let later = RerankRequest {
            timestamp: Some(event.timestamp + 60),
            ..request.clone()
        };
        let next = reranker
            .rerank_session(&mut session, &candidates, &later)
            .unwrap();
        let stateless = reranker.rerank(&[event], &candidates, &later).unwrap();
        assert_pairwise(
            "after the first event",
            &[
                ("session", by_item(&next)),
                ("stateless", by_item(&stateless)),
            ],
            &candidates,
        );
    }
    // Without a prompt set, or without the request's time, an empty history is refused.
    assert_eq!(
        cpu.rerank(&[], &candidates, &RerankRequest::on(Surface::Home)),
        Err(RerankError::EmptyHistory)
    );
    assert_eq!(
        cpu.rerank(
            &[],
            &candidates,
            &RerankRequest::on(Surface::Home).with_prompt("kids")
        ),
        Err(RerankError::NoHistoryNoTimestamp)
    );
    // A batch with members under prompt sets: each result is its own rerank's.
    let history: Vec<Event> = world
        .events
        .iter()
        .filter(|e| e.member == world.events[0].member)
        .cloned()
        .collect();
    let requests = [
        RerankRequest::on(Surface::Home),
        RerankRequest::on(Surface::Search).with_prompt("search"),
        RerankRequest::on(Surface::Kids).with_prompt("kids"),
        RerankRequest::on(Surface::Kids).with_prompt("nowhere"),
    ];
    let members: Vec<encore_core::MemberRequest> = requests
        .iter()
        .map(|r| encore_core::MemberRequest {
            history: &history,
            candidates: &candidates,
            request: r.clone(),
        })
        .collect();
    for reranker in [&cpu, &burn_cpu] {
        let batch = reranker.rerank_batch(&members);
        for (request, got) in requests.iter().zip(batch) {
            let single = reranker.rerank(&history, &candidates, request);
            match (got, single) {
                (Ok(a), Ok(b)) => assert_pairwise(
                    &format!("batch, {:?}", request.prompt),
                    &[("batch", by_item(&a)), ("single", by_item(&b))],
                    &candidates,
                ),
                (a, b) => assert_eq!(a, b),
            }
        }
    }
}

/// The prefix placement (measured for comparison, not served): with no history before the
/// request it computes what the served placement computes; with a history the history sees
/// the prompt (so a swap would re-encode it), and each position depends on its prefix alone
/// (later tokens and a longer window beside it in the batch change nothing).
#[test]
fn the_prefix_placement_runs_the_history_under_the_prompt() {
    let _alone = one_test_at_a_time();
    let world = small_world();
    let ids = world.catalog.ids();
    let (model, config, prompts) = model_and_prompts(ids.len());
    let history = group_by_member(&world.events)
        .into_iter()
        .map(|h| h.events)
        .find(|e| e.len() > 30)
        .unwrap();
    let tokenizer = config.tokenizer();
    let request = RerankRequest::on(Surface::Search);
    let seq = |events: &[Event]| {
        tokenizer
            .serving_sequence(world.catalog.vocabulary(), events, &request.context(events))
            .unwrap()
    };
    let long = seq(&history[..30]);
    let short = seq(&history[..12]);
    let device = Device::flex();
    let tables = model.token_tables();
    let rows = |t: Tensor<3>| -> Vec<Vec<f32>> {
        let [b, k, d] = t.dims();
        let v: Vec<f32> = t.into_data().try_into_vec().unwrap();
        assert_eq!(v.len(), b * k * d);
        v.chunks(d).map(<[f32]>::to_vec).collect()
    };
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    for named in &prompts {
        let prompt = &named.prompt;
        let batch = TokenBatch::new(&[long.clone(), short.clone()], &device);
        let positions = vec![vec![0, 11, 29], vec![0, 11]];
        let prefixed = rows(model.forward_prefixed_batch(&batch, &tables, &positions, prompt));
        let served = rows(model.forward_prompted_batch(&batch, &tables, &positions, Some(prompt)));
        // Rows: window 0 positions 0, 11, 29; window 1 positions 0, 11, (padding).
        for r in [0, 3] {
            let d = max_diff(&prefixed[r], &served[r]);
            assert!(d < 1e-5, "{}: position 0 differs by {d}", named.name);
        }
        for r in [1, 2, 4] {
            let d = max_diff(&prefixed[r], &served[r]);
            assert!(
                d > 1e-3,
                "{}: row {r} does not see the prompt ({d})",
                named.name
            );
        }
        // Position 11 of the 30-token window = position 11 of the 12-token one, alone or not.
        let d = max_diff(&prefixed[1], &prefixed[4]);
        assert!(d < 1e-5, "{}: later tokens leak ({d})", named.name);
        let alone = TokenBatch::new(std::slice::from_ref(&short), &device);
        let single = rows(model.forward_prefixed_batch(&alone, &tables, &[vec![11]], prompt));
        let d = max_diff(&single[0], &prefixed[4]);
        assert!(d < 1e-5, "{}: the batch's padding leaks ({d})", named.name);
    }
}
