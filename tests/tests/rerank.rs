//! The reranker: agreement with the training-side forward, across backends, and refusals.

use burn::tensor::Device;
use encore_core::data::split::group_by_member;
use encore_core::tokenizer::Context;
use encore_core::weights::load_model;
use encore_core::{RerankError, RerankRequest, Reranker, ScoredItem, Surface, TokenBatch};
use encore_tests::{small_world, tiny_weight_file};
use std::sync::OnceLock;

struct Fixture {
    world: encore_core::SyntheticWorld,
    weights: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let world = small_world();
        let weights = tiny_weight_file(&world, 1);
        Fixture { world, weights }
    })
}

fn member_history(f: &Fixture, n: usize) -> Vec<encore_core::Event> {
    let h = group_by_member(&f.world.events)
        .into_iter()
        .find(|h| h.events.len() >= n)
        .expect("a long history");
    h.events[h.events.len() - n..].to_vec()
}

#[test]
fn runtime_scores_equal_training_forward_logits() {
    let f = fixture();
    let reranker = Reranker::from_bytes(&f.weights, &Device::flex()).unwrap();
    let history = member_history(f, 30);
    let candidates: Vec<u32> = f.world.catalog.ids().into_iter().step_by(3).collect();
    let request = RerankRequest {
        surface: Surface::Search,
        timestamp: Some(history.last().unwrap().timestamp + 3600),
        device: None,
        country: None,
        prompt: None,
    };
    let ranked = reranker.rerank(&history, &candidates, &request).unwrap();

    // Training side: the same weights on the autodiff device, full logits at the last token.
    let ad = Device::flex().autodiff();
    let loaded = load_model(&f.weights, &ad).unwrap();
    let ctx = Context {
        timestamp: request.timestamp.unwrap(),
        surface: Surface::Search,
        device: history.last().unwrap().device,
        country: history.last().unwrap().country.clone(),
    };
    let seq = loaded
        .config
        .tokenizer()
        .serving_sequence(&loaded.items, &history, &ctx)
        .unwrap();
    let n = seq.len();
    let logits = loaded.model.logits(loaded.model.forward(
        &TokenBatch::new(&[seq], &ad),
        &loaded.model.token_tables(),
        None,
        false,
    ));
    let logits: Vec<f32> = logits
        .slice([0..1, n - 1..n])
        .into_data()
        .try_into_vec()
        .unwrap();
    for s in &ranked {
        let expected = logits[loaded.items.index_of(s.item).unwrap()];
        assert!(
            (s.score - expected).abs() <= 1e-4,
            "item {}: {} vs {}",
            s.item,
            s.score,
            expected
        );
    }
}

#[test]
fn output_is_every_candidate_once_best_first() {
    let f = fixture();
    let reranker = Reranker::from_bytes(&f.weights, &Device::flex()).unwrap();
    let history = member_history(f, 10);
    let candidates: Vec<u32> = f.world.catalog.ids()[..40].to_vec();
    let ranked = reranker
        .rerank(&history, &candidates, &RerankRequest::on(Surface::Home))
        .unwrap();
    let mut items: Vec<u32> = ranked.iter().map(|s| s.item).collect();
    items.sort();
    let mut want = candidates.clone();
    want.sort();
    assert_eq!(items, want);
    assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn surface_and_history_change_the_scores() {
    let f = fixture();
    let reranker = Reranker::from_bytes(&f.weights, &Device::flex()).unwrap();
    let history = member_history(f, 20);
    let candidates: Vec<u32> = f.world.catalog.ids()[..30].to_vec();
    let home = reranker
        .rerank(&history, &candidates, &RerankRequest::on(Surface::Home))
        .unwrap();
    let kids = reranker
        .rerank(&history, &candidates, &RerankRequest::on(Surface::Kids))
        .unwrap();
    let score = |r: &[encore_core::ScoredItem], id| r.iter().find(|s| s.item == id).unwrap().score;
    assert!(
        candidates
            .iter()
            .any(|&c| (score(&home, c) - score(&kids, c)).abs() > 1e-4)
    );
    let shorter = reranker
        .rerank(
            &history[..5],
            &candidates,
            &RerankRequest::on(Surface::Home),
        )
        .unwrap();
    assert!(
        candidates
            .iter()
            .any(|&c| (score(&home, c) - score(&shorter, c)).abs() > 1e-4)
    );
}

#[test]
fn histories_longer_than_the_window_keep_the_most_recent_events() {
    let f = fixture();
    let reranker = Reranker::from_bytes(&f.weights, &Device::flex()).unwrap();
    let window = reranker.config().max_len;
    let history = member_history(f, window + 10);
    let candidates: Vec<u32> = f.world.catalog.ids()[..20].to_vec();
    let req = RerankRequest::on(Surface::Home);
    let full = reranker.rerank(&history, &candidates, &req).unwrap();
    let recent = reranker
        .rerank(&history[history.len() - window..], &candidates, &req)
        .unwrap();
    // The window keeps the last `window - 1` events (plus the request token); the first kept
    // token still sees the event before it, so `window` events give exactly the same input.
    assert_eq!(full, recent);
    let cut = reranker
        .rerank(&history[history.len() - (window - 1)..], &candidates, &req)
        .unwrap();
    assert_ne!(
        full, cut,
        "without the event before the window, the first token starts fresh"
    );
}

#[test]
fn bad_requests_get_typed_errors() {
    let f = fixture();
    let reranker = Reranker::from_bytes(&f.weights, &Device::flex()).unwrap();
    let history = member_history(f, 10);
    let ids = f.world.catalog.ids();
    let req = RerankRequest::on(Surface::Home);
    assert_eq!(
        reranker.rerank(&[], &ids[..3], &req),
        Err(RerankError::EmptyHistory)
    );
    assert_eq!(
        reranker.rerank(&history, &[], &req),
        Err(RerankError::EmptyCandidates)
    );
    assert_eq!(
        reranker.rerank(&history, &[ids[0], 77, ids[1]], &req),
        Err(RerankError::UnknownCandidate {
            position: 1,
            item: 77
        })
    );
    assert_eq!(
        reranker.rerank(&history, &[ids[0], ids[1], ids[0]], &req),
        Err(RerankError::DuplicateCandidate {
            item: ids[0],
            first: 0,
            second: 2
        })
    );
    let many: Vec<u32> = (0..10_001).collect();
    assert!(matches!(
        reranker.rerank(&history, &many, &req),
        Err(RerankError::TooManyCandidates { count: 10_001, .. })
    ));
    let mut unknown = history.clone();
    unknown[4].item = 5;
    assert_eq!(
        reranker.rerank(&unknown, &ids[..3], &req),
        Err(RerankError::UnknownHistoryItem {
            position: 4,
            item: 5
        })
    );
    let mut nan = history.clone();
    nan[2].duration_s = f32::NAN;
    assert_eq!(
        reranker.rerank(&nan, &ids[..3], &req),
        Err(RerankError::NonFiniteDuration { position: 2 })
    );
    let mut far = history.clone();
    far[3].timestamp = i64::MIN;
    assert_eq!(
        reranker.rerank(&far, &ids[..3], &req),
        Err(RerankError::TimestampOutOfRange {
            position: 3,
            timestamp: i64::MIN
        })
    );
    let late = RerankRequest {
        timestamp: Some(2_000_000_000_000_000),
        ..req.clone()
    };
    assert_eq!(
        reranker.rerank(&history, &ids[..3], &late),
        Err(RerankError::RequestTimestampOutOfRange {
            timestamp: 2_000_000_000_000_000
        })
    );
    let mut session = encore_core::MemberSession::new(history.clone()).unwrap();
    assert_eq!(
        reranker.rerank_session(&mut session, &ids[..3], &late),
        Err(RerankError::RequestTimestampOutOfRange {
            timestamp: 2_000_000_000_000_000
        })
    );
    let mut shuffled = history.clone();
    shuffled.swap(3, 6);
    assert_eq!(
        reranker.rerank(&shuffled, &ids[..3], &req),
        Err(RerankError::HistoryOutOfOrder { position: 4 })
    );
    // Every message names what is wrong.
    assert!(
        RerankError::UnknownCandidate {
            position: 1,
            item: 77
        }
        .to_string()
        .contains("77")
    );
}

#[test]
fn cpu_and_wgpu_rerank_identically() {
    let f = fixture();
    let cpu = Reranker::from_bytes(&f.weights, &Device::flex()).unwrap();
    let gpu = Reranker::from_bytes(&f.weights, &Device::wgpu(Default::default())).unwrap();
    let candidates: Vec<u32> = f.world.catalog.ids()[..100].to_vec();
    for (n, surface) in [
        (1, Surface::Home),
        (17, Surface::Kids),
        (50, Surface::Search),
    ] {
        let history = member_history(f, n);
        let a = cpu
            .rerank(&history, &candidates, &RerankRequest::on(surface))
            .unwrap();
        let b = gpu
            .rerank(&history, &candidates, &RerankRequest::on(surface))
            .unwrap();
        assert_same_ranking(&a, &b, &format!("history {n}"));
    }
}

/// Two rankings of the same candidates agree item by item: every item is in both, its two
/// scores are within 1e-4, and each list is ordered by the other's scores up to that noise.
fn assert_same_ranking(a: &[ScoredItem], b: &[ScoredItem], what: &str) {
    use std::collections::HashMap;
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let score_a: HashMap<u32, f32> = a.iter().map(|s| (s.item, s.score)).collect();
    let score_b: HashMap<u32, f32> = b.iter().map(|s| (s.item, s.score)).collect();
    assert_eq!(score_a.len(), a.len(), "{what}: duplicate items");
    for (item, sa) in &score_a {
        let sb = score_b
            .get(item)
            .unwrap_or_else(|| panic!("{what}: item {item} missing from the second ranking"));
        assert!((sa - sb).abs() <= 1e-4, "{what}: item {item}: {sa} vs {sb}");
    }
    for (list, other) in [(a, &score_b), (b, &score_a)] {
        for pair in list.windows(2) {
            let (hi, lo) = (other[&pair[0].item], other[&pair[1].item]);
            assert!(
                hi >= lo - 2e-4,
                "{what}: {} ranked above {} though scored {hi} < {lo}",
                pair[0].item,
                pair[1].item
            );
        }
    }
}

#[test]
fn batch_rerank_equals_one_member_at_a_time_and_isolates_bad_requests() {
    use encore_core::MemberRequest;
    let f = fixture();
    let reranker = Reranker::from_bytes(&f.weights, &Device::flex()).unwrap();
    let histories: Vec<Vec<encore_core::Event>> = group_by_member(&f.world.events)
        .into_iter()
        .take(6)
        .map(|h| h.events)
        .collect();
    let ids = f.world.catalog.ids();
    let candidate_lists: Vec<Vec<u32>> = (0..histories.len())
        .map(|k| ids.iter().copied().skip(k).step_by(k + 2).collect())
        .collect();
    let mut members: Vec<MemberRequest> = histories
        .iter()
        .zip(&candidate_lists)
        .enumerate()
        .map(|(k, (h, c))| MemberRequest {
            history: h,
            candidates: c,
            request: RerankRequest::on(Surface::ALL[k % Surface::ALL.len()]),
        })
        .collect();
    let unknown = [ids[0], 9_999_999];
    members.insert(
        2,
        MemberRequest {
            history: &histories[0],
            candidates: &unknown,
            request: RerankRequest::on(Surface::Home),
        },
    );
    let results = reranker.rerank_batch(&members);
    assert_eq!(results.len(), members.len());
    // Split over threads, the same results in the same order.
    for threads in [1, 3] {
        let parallel = encore::batch::rerank_batch_parallel(&reranker, &members, threads);
        assert_eq!(parallel.len(), results.len());
        for (p, r) in parallel.iter().zip(&results) {
            match (p, r) {
                (Ok(p), Ok(r)) => {
                    let items = |v: &[encore_core::ScoredItem]| {
                        v.iter().map(|s| s.item).collect::<Vec<_>>()
                    };
                    assert_eq!(items(p), items(r));
                }
                (Err(p), Err(r)) => assert_eq!(p, r),
                _ => panic!("{threads} threads: {p:?} vs {r:?}"),
            }
        }
    }
    let gpu = Reranker::from_bytes(&f.weights, &Device::wgpu(Default::default())).unwrap();
    let gpu_results = gpu.rerank_batch(&members);
    assert_eq!(gpu_results[2], results[2]);
    for (m, (member, result)) in members.iter().zip(&results).enumerate() {
        if m == 2 {
            assert_eq!(
                result,
                &Err(RerankError::UnknownCandidate {
                    position: 1,
                    item: 9_999_999
                })
            );
            continue;
        }
        let single = reranker
            .rerank(member.history, member.candidates, &member.request)
            .unwrap();
        // The CPU batch (host-memory forwards) and the wgpu batch (one padded burn forward)
        // both equal the single rerank.
        for batch in [result.as_ref().unwrap(), gpu_results[m].as_ref().unwrap()] {
            assert_eq!(batch.len(), single.len(), "member {m}");
            for s in &single {
                let b = batch.iter().find(|b| b.item == s.item).unwrap();
                assert!(
                    (b.score - s.score).abs() <= 1e-4,
                    "member {m} item {}",
                    s.item
                );
            }
        }
    }
}
