//! Member sessions: incremental reranking over cached keys and values agrees with a full
//! recompute, encodes only the new tokens, and refuses bad events.

use burn::tensor::Device;
use encore_core::data::split::group_by_member;
use encore_core::weights::{Quantization, save_model};
use encore_core::{
    Event, FoundationModelConfig, MemberSession, RerankError, RerankRequest, Reranker, Surface,
    SyntheticWorld,
};
use encore_tests::small_world;

/// An untrained two-layer model (agreement does not depend on training) as a weight file.
fn weights(world: &SyntheticWorld, max_len: usize, rollup_window_s: u64) -> Vec<u8> {
    let config = FoundationModelConfig::new(world.catalog.len())
        .with_d_model(32)
        .with_n_heads(4)
        .with_n_layers(2)
        .with_d_ff(48)
        .with_max_len(max_len)
        .with_rollup_window_s(rollup_window_s)
        .with_dropout(0.0);
    let model = config.init(&Device::flex());
    save_model(&model, &config, &world.catalog.ids(), Quantization::F32)
}

fn longest_history(world: &SyntheticWorld) -> Vec<Event> {
    group_by_member(&world.events)
        .into_iter()
        .max_by_key(|h| h.events.len())
        .expect("members")
        .events
}

fn assert_same(a: &[encore_core::ScoredItem], b: &[encore_core::ScoredItem], what: &str) {
    assert_eq!(a.len(), b.len());
    let score = |v: &[encore_core::ScoredItem], item: u32| {
        v.iter().find(|s| s.item == item).expect("same items").score
    };
    for s in a {
        let other = score(b, s.item);
        assert!(
            (s.score - other).abs() <= 1e-4,
            "{what}: item {} scores {} incrementally, {} in full",
            s.item,
            s.score,
            other
        );
    }
}

/// Appends `events` one at a time, reranking after each, and checks every rerank against a
/// stateless one. Returns the tokens each rerank encoded.
fn replay(reranker: &Reranker, events: &[Event], candidates: &[u32]) -> Vec<usize> {
    let mut session = MemberSession::new(Vec::new()).unwrap();
    let mut encoded = Vec::new();
    for (i, e) in events.iter().enumerate() {
        session.append(e.clone()).unwrap();
        let surface = Surface::ALL[i % Surface::ALL.len()];
        let request = RerankRequest {
            timestamp: Some(e.timestamp + 600),
            ..RerankRequest::on(surface)
        };
        let incremental = reranker
            .rerank_session(&mut session, candidates, &request)
            .unwrap();
        encoded.push(session.last_encoded_tokens());
        let full = reranker
            .rerank(&events[..=i], candidates, &request)
            .unwrap();
        assert_same(&incremental, &full, &format!("after event {i}"));
    }
    encoded
}

#[test]
fn appending_encodes_two_tokens_and_matches_a_full_recompute() {
    let world = small_world();
    let max_len = 24;
    let reranker = Reranker::from_bytes(&weights(&world, max_len, 0), &Device::flex()).unwrap();
    let history = longest_history(&world);
    assert!(
        history.len() > max_len + 5,
        "history longer than the window"
    );
    let events = &history[..max_len + 5];
    let candidates: Vec<u32> = world.catalog.ids().into_iter().step_by(4).collect();
    let encoded = replay(&reranker, events, &candidates);
    // First call: one event token + the request token. Then one new event token + request
    // token per append, until the window (max_len - 1 events + request) slides.
    assert_eq!(encoded[0], 2);
    for (i, &n) in encoded.iter().enumerate().skip(1) {
        let window_full = i + 1 > max_len - 1;
        if window_full {
            assert_eq!(
                n, max_len,
                "event {i}: a sliding window re-encodes all of it"
            );
        } else {
            assert_eq!(
                n, 2,
                "event {i}: only the new event and the request are encoded"
            );
        }
    }
}

#[test]
fn a_window_step_re_encodes_once_every_step_events_and_still_matches() {
    let world = small_world();
    let max_len = 24;
    let step = 8;
    let reranker = Reranker::from_bytes(&weights(&world, max_len, 0), &Device::flex())
        .unwrap()
        .with_window_step(step);
    assert_eq!(reranker.window_step(), step);
    let history = longest_history(&world);
    let events = &history[..max_len + 20];
    let candidates: Vec<u32> = world.catalog.ids().into_iter().step_by(4).collect();
    // `replay` checks every rerank against a stateless one with the same window step.
    let encoded = replay(&reranker, events, &candidates);
    // Up to 23 events the window holds them all. At 24 it starts at event 8 (16 events and
    // the request are encoded), and stays there until event 32 moves it to 16, then 40 to 24.
    for (i, &n) in encoded.iter().enumerate().skip(1) {
        let expected = match i + 1 {
            24 | 32 | 40 => 17,
            _ => 2,
        };
        assert_eq!(n, expected, "event {i}");
    }
}

#[test]
fn reranking_again_encodes_only_the_request_token() {
    let world = small_world();
    let reranker = Reranker::from_bytes(&weights(&world, 32, 0), &Device::flex()).unwrap();
    let history = longest_history(&world)[..20].to_vec();
    let candidates: Vec<u32> = world.catalog.ids().into_iter().take(50).collect();
    let mut session = MemberSession::new(history.clone()).unwrap();
    let last = history.last().unwrap().timestamp;
    for (k, surface) in Surface::ALL.into_iter().enumerate() {
        let request = RerankRequest {
            timestamp: Some(last + 3600 * k as i64),
            ..RerankRequest::on(surface)
        };
        let incremental = reranker
            .rerank_session(&mut session, &candidates, &request)
            .unwrap();
        let expected = if k == 0 { 21 } else { 1 };
        assert_eq!(session.last_encoded_tokens(), expected, "call {k}");
        assert_eq!(session.cached_tokens(), 20);
        let full = reranker.rerank(&history, &candidates, &request).unwrap();
        assert_same(&incremental, &full, &format!("call {k}"));
    }
}

#[test]
fn rolled_up_replays_match_a_full_recompute() {
    let world = small_world();
    // A six-hour roll-up window merges series episodes and replays into one token.
    let reranker = Reranker::from_bytes(&weights(&world, 24, 6 * 3600), &Device::flex()).unwrap();
    let history = longest_history(&world);
    let candidates: Vec<u32> = world.catalog.ids().into_iter().step_by(3).collect();
    let encoded = replay(&reranker, &history[..40], &candidates);
    assert!(
        encoded.contains(&1),
        "an event merged into the last token re-encodes only the request token: {encoded:?}"
    );
}

#[test]
fn a_session_moved_to_another_model_starts_over() {
    let world = small_world();
    let a = Reranker::from_bytes(&weights(&world, 24, 0), &Device::flex()).unwrap();
    let b = Reranker::from_bytes(&weights(&world, 24, 0), &Device::flex()).unwrap();
    let history = longest_history(&world)[..10].to_vec();
    let candidates: Vec<u32> = world.catalog.ids().into_iter().take(30).collect();
    let request = RerankRequest::on(Surface::Home);
    let mut session = MemberSession::new(history.clone()).unwrap();
    a.rerank_session(&mut session, &candidates, &request)
        .unwrap();
    let moved = b
        .rerank_session(&mut session, &candidates, &request)
        .unwrap();
    assert_eq!(session.last_encoded_tokens(), 11);
    assert_same(
        &moved,
        &b.rerank(&history, &candidates, &request).unwrap(),
        "moved",
    );
}

#[test]
fn sessions_on_wgpu_match_the_cpu() {
    let world = small_world();
    let bytes = weights(&world, 24, 0);
    let cpu = Reranker::from_bytes(&bytes, &Device::flex()).unwrap();
    let gpu = Reranker::from_bytes(&bytes, &Device::wgpu(Default::default())).unwrap();
    let history = longest_history(&world)[..12].to_vec();
    let candidates: Vec<u32> = world.catalog.ids().into_iter().take(40).collect();
    let request = RerankRequest::on(Surface::Kids);
    let mut on_cpu = MemberSession::new(history[..8].to_vec()).unwrap();
    let mut on_gpu = on_cpu.clone();
    cpu.rerank_session(&mut on_cpu, &candidates, &request)
        .unwrap();
    gpu.rerank_session(&mut on_gpu, &candidates, &request)
        .unwrap();
    for e in &history[8..] {
        on_cpu.append(e.clone()).unwrap();
        on_gpu.append(e.clone()).unwrap();
        let c = cpu
            .rerank_session(&mut on_cpu, &candidates, &request)
            .unwrap();
        let g = gpu
            .rerank_session(&mut on_gpu, &candidates, &request)
            .unwrap();
        assert_eq!(on_gpu.last_encoded_tokens(), 2);
        assert_same(&g, &c, "wgpu vs cpu");
    }
}

#[test]
fn bad_events_are_refused_where_they_are() {
    let world = small_world();
    let reranker = Reranker::from_bytes(&weights(&world, 24, 0), &Device::flex()).unwrap();
    let history = longest_history(&world)[..5].to_vec();
    let mut session = MemberSession::new(history.clone()).unwrap();

    let mut older = history[0].clone();
    older.timestamp = history[4].timestamp - 1;
    assert_eq!(
        session.append(older),
        Err(RerankError::HistoryOutOfOrder { position: 5 })
    );
    let mut nan = history[4].clone();
    nan.duration_s = f32::NAN;
    assert_eq!(
        session.append(nan),
        Err(RerankError::NonFiniteDuration { position: 5 })
    );
    assert_eq!(session.history().len(), 5, "refused events are not kept");

    let mut unknown = history[4].clone();
    unknown.item = 9_999_999;
    session.append(unknown).unwrap();
    let request = RerankRequest::on(Surface::Home);
    let candidates = world.catalog.ids()[..5].to_vec();
    assert_eq!(
        reranker.rerank_session(&mut session, &candidates, &request),
        Err(RerankError::UnknownHistoryItem {
            position: 5,
            item: 9_999_999
        })
    );
    // Dropping the refused event makes the session usable again, with the stateless scores.
    session.truncate(5).unwrap();
    assert_same(
        &reranker
            .rerank_session(&mut session, &candidates, &request)
            .unwrap(),
        &reranker.rerank(&history, &candidates, &request).unwrap(),
        "after truncate",
    );
    assert_eq!(
        reranker.rerank_session(&mut MemberSession::default(), &candidates, &request),
        Err(RerankError::EmptyHistory)
    );
    let mut reversed = history.clone();
    reversed.reverse();
    assert_eq!(
        MemberSession::new(reversed).unwrap_err(),
        RerankError::HistoryOutOfOrder { position: 1 }
    );
}

#[test]
fn ten_thousand_candidates_rerank_in_every_mode() {
    let n = encore_core::runtime::MAX_CANDIDATES;
    let config = FoundationModelConfig::new(n)
        .with_d_model(8)
        .with_n_heads(1)
        .with_n_layers(1)
        .with_d_ff(8)
        .with_max_len(16)
        .with_dropout(0.0);
    let ids: Vec<u32> = (1..=n as u32).collect();
    let bytes = save_model(
        &config.init(&Device::flex()),
        &config,
        &ids,
        Quantization::Int8,
    );
    let reranker = Reranker::from_bytes(&bytes, &Device::flex()).unwrap();
    let history: Vec<Event> = (0..40)
        .map(|k| Event::implicit(1, ids[k * 37 % n], 1_700_000_000 + k as i64 * 3600))
        .collect();
    let request = RerankRequest::on(Surface::Home);
    let full = reranker.rerank(&history, &ids, &request).unwrap();
    assert_eq!(full.len(), n);
    assert!(full.windows(2).all(|w| w[0].score >= w[1].score));
    let mut session = MemberSession::new(history.clone()).unwrap();
    assert_same(
        &reranker
            .rerank_session(&mut session, &ids, &request)
            .unwrap(),
        &full,
        "session",
    );
    let batch = reranker.rerank_batch(&[encore_core::MemberRequest {
        history: &history,
        candidates: &ids,
        request: request.clone(),
    }]);
    assert_same(batch[0].as_ref().unwrap(), &full, "batch");
}

/// A session of thousands of events (with roll-up, window steps of 1 and 5) holds a bounded
/// number of them, agrees with a stateless rerank of the whole history all along, refuses to
/// be cut below the events it dropped, and after a cut it may make agrees again.
#[test]
fn a_long_session_keeps_memory_bounded_and_agrees_with_a_full_recompute() {
    let world = small_world();
    let max_len = 16;
    let bytes = weights(&world, max_len, 3600);
    let base = longest_history(&world);
    // A long history: the member's events repeated, later and later (some repeats roll up).
    let span = base.last().unwrap().timestamp - base[0].timestamp + 86_400;
    let events: Vec<Event> = (0..4_000)
        .map(|k| {
            let mut e = base[k % base.len()].clone();
            e.timestamp += span * (k / base.len()) as i64;
            e
        })
        .collect();
    let candidates: Vec<u32> = world.catalog.ids().into_iter().take(30).collect();
    for step in [1, 5] {
        let reranker = Reranker::from_bytes(&bytes, &Device::flex())
            .unwrap()
            .with_window_step(step);
        let mut session = MemberSession::new(events[..10].to_vec()).unwrap();
        let mut held = Vec::new();
        for (i, e) in events.iter().enumerate().skip(10) {
            session.append(e.clone()).unwrap();
            if i % 37 != 0 && i != events.len() - 1 {
                continue;
            }
            let request = RerankRequest::on(Surface::ALL[i % Surface::ALL.len()]);
            let incremental = reranker
                .rerank_session(&mut session, &candidates, &request)
                .unwrap();
            let full = reranker
                .rerank(&events[..=i], &candidates, &request)
                .unwrap();
            assert_same(
                &incremental,
                &full,
                &format!("step {step}, after event {i}"),
            );
            assert_eq!(session.len(), i + 1);
            held.push(session.history().len());
        }
        let most = *held.iter().max().unwrap();
        assert!(
            most < 1_000,
            "step {step}: the session held up to {most} of 4,000 events"
        );
        assert!(session.min_len() > 0, "step {step}: nothing was dropped");
        assert!(session.history().len() < events.len());

        // Below the dropped events: refused, nothing changed.
        let min_len = session.min_len();
        assert_eq!(
            session.truncate(min_len - 1),
            Err(RerankError::TruncatedPastDropped {
                len: min_len - 1,
                min_len
            })
        );
        assert_eq!(session.len(), events.len());
        // At the bound: the window moves back, and the rerank is the stateless one again.
        session.truncate(min_len).unwrap();
        assert_eq!(session.len(), min_len);
        let request = RerankRequest::on(Surface::Home);
        let incremental = reranker
            .rerank_session(&mut session, &candidates, &request)
            .unwrap();
        let full = reranker
            .rerank(&events[..min_len], &candidates, &request)
            .unwrap();
        assert_same(
            &incremental,
            &full,
            &format!("step {step}, cut to {min_len}"),
        );
    }
}

/// A session that dropped events under a short-window model, then served by a model whose
/// window reaches further back, is refused by name (not answered from a partial history).
#[test]
fn a_longer_window_than_the_one_that_dropped_events_is_refused() {
    let world = small_world();
    let short = Reranker::from_bytes(&weights(&world, 8, 0), &Device::flex()).unwrap();
    let long = Reranker::from_bytes(&weights(&world, 400, 0), &Device::flex()).unwrap();
    let base = longest_history(&world);
    let span = base.last().unwrap().timestamp - base[0].timestamp + 86_400;
    let events: Vec<Event> = (0..1_500)
        .map(|k| {
            let mut e = base[k % base.len()].clone();
            e.timestamp += span * (k / base.len()) as i64;
            e
        })
        .collect();
    let candidates: Vec<u32> = world.catalog.ids().into_iter().take(10).collect();
    let request = RerankRequest::on(Surface::Home);
    let mut session = MemberSession::new(events).unwrap();
    short
        .rerank_session(&mut session, &candidates, &request)
        .unwrap();
    let first_held = session.len() - session.history().len();
    assert!(first_held > 0, "nothing was dropped");
    assert_eq!(
        long.rerank_session(&mut session, &candidates, &request),
        Err(RerankError::WindowPastDropped { first_held })
    );
}
