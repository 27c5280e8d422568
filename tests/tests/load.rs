//! One `Reranker` shared by 8 threads, 10,000 calls each, stateless reranks, member sessions
//! and batches mixed: every result equals the single-thread result exactly, nothing
//! deadlocks, and the process's resident memory stays flat.

use std::sync::Arc;

use burn::tensor::Device;
use encore_core::data::split::group_by_member;
use encore_core::{
    Event, MemberRequest, MemberSession, RerankRequest, Reranker, ScoredItem, Surface,
};
use encore_tests::{small_world, tiny_weight_file};

const THREADS: usize = 8;
const CALLS: usize = 10_000;

/// One member's inputs.
struct Member {
    history: Vec<Event>,
    appended: Vec<Event>,
    candidates: Vec<u32>,
    request: RerankRequest,
}

/// The resident set size of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The three kinds of call a member can be served with.
fn stateless(r: &Reranker, m: &Member) -> Vec<ScoredItem> {
    r.rerank(&m.history, &m.candidates, &m.request).unwrap()
}

fn session(r: &Reranker, m: &Member) -> Vec<ScoredItem> {
    let mut s = MemberSession::new(m.history.clone()).unwrap();
    r.rerank_session(&mut s, &m.candidates, &m.request).unwrap();
    for e in &m.appended {
        s.append(e.clone()).unwrap();
    }
    r.rerank_session(&mut s, &m.candidates, &m.request).unwrap()
}

fn batch(r: &Reranker, ms: &[Member]) -> Vec<Vec<ScoredItem>> {
    let requests: Vec<MemberRequest> = ms
        .iter()
        .map(|m| MemberRequest {
            history: &m.history,
            candidates: &m.candidates,
            request: m.request.clone(),
        })
        .collect();
    r.rerank_batch(&requests)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn eight_threads_share_a_reranker_with_single_thread_results_and_flat_memory() {
    let world = small_world();
    let reranker =
        Arc::new(Reranker::from_bytes(&tiny_weight_file(&world, 1), &Device::flex()).unwrap());
    let ids = world.catalog.ids();
    let members: Arc<Vec<Member>> = Arc::new(
        group_by_member(&world.events)
            .iter()
            .filter(|h| h.events.len() >= 12)
            .take(16)
            .enumerate()
            .map(|(k, h)| {
                let n = h.events.len();
                Member {
                    history: h.events[..n - 3].to_vec(),
                    appended: h.events[n - 3..].to_vec(),
                    candidates: ids.iter().skip(k).step_by(3).take(40).copied().collect(),
                    request: RerankRequest::on(Surface::ALL[k % Surface::ALL.len()]),
                }
            })
            .collect(),
    );
    assert_eq!(members.len(), 16);
    // Single-thread results.
    let expected_stateless: Vec<_> = members.iter().map(|m| stateless(&reranker, m)).collect();
    let expected_session: Vec<_> = members.iter().map(|m| session(&reranker, m)).collect();
    let expected_batch: Vec<_> = members.chunks(4).map(|c| batch(&reranker, c)).collect();
    // A session's last call equals the stateless rerank of its whole history (to rounding).
    let whole = |m: &Member| [m.history.clone(), m.appended.clone()].concat();
    for (m, got) in members.iter().zip(&expected_session) {
        let want = reranker
            .rerank(&whole(m), &m.candidates, &m.request)
            .unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.item, b.item);
            assert!((a.score - b.score).abs() <= 1e-4);
        }
    }
    let expected = Arc::new((expected_stateless, expected_session, expected_batch));

    let warm = rss_kib();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (reranker, members, expected) = (
                Arc::clone(&reranker),
                Arc::clone(&members),
                Arc::clone(&expected),
            );
            std::thread::spawn(move || {
                let mut rss_quarter = 0;
                for k in 0..CALLS {
                    let i = (t * 7 + k) % members.len();
                    match k % 20 {
                        // A batch of four members now and then (burn's forward: slower).
                        0 => {
                            let c = i / 4;
                            let got = batch(&reranker, &members[c * 4..c * 4 + 4]);
                            assert_eq!(got, expected.2[c], "thread {t} call {k}: batch");
                        }
                        1..=7 => assert_eq!(
                            session(&reranker, &members[i]),
                            expected.1[i],
                            "thread {t} call {k}: session"
                        ),
                        _ => assert_eq!(
                            stateless(&reranker, &members[i]),
                            expected.0[i],
                            "thread {t} call {k}: stateless"
                        ),
                    }
                    if k == CALLS / 4 {
                        rss_quarter = rss_kib();
                    }
                }
                rss_quarter
            })
        })
        .collect();
    let quarter = handles
        .into_iter()
        .map(|h| h.join().expect("no thread panicked"))
        .max()
        .unwrap();
    let end = rss_kib();
    eprintln!(
        "RSS: {warm} KiB warm, {quarter} KiB a quarter through, {end} KiB after 80,000 calls"
    );
    assert!(
        end <= quarter + 16 * 1024,
        "resident memory grew from {quarter} KiB to {end} KiB over the last three quarters"
    );
}
