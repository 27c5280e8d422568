//! Embeddings out: the member representations and item vectors `encore embed` writes score
//! exactly as the reranker does, `as_of` cuts histories where it says, and a rotation into
//! another model's space changes no score.

use encore::backend::Backend;
use encore::embeddings::align::Rotation;
use encore::embeddings::{EmbeddingTable, extract};
use encore_core::{RerankRequest, Reranker, Surface};
use encore_tests::{small_world, split, tiny_weight_file};

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn member_and_item_vectors_score_as_the_reranker_does() {
    let world = small_world();
    let weights = tiny_weight_file(&world, 1);
    let reranker = Reranker::from_bytes(&weights, &Backend::Cpu.device()).unwrap();
    let (histories, _) = split(&world);
    let all = extract(&reranker, &weights, &histories, None).unwrap();
    assert_eq!(all.items.len(), world.catalog.len());
    assert_eq!(all.items.ids, reranker.items().ids());
    assert_eq!(all.members.len(), histories.len());
    let body = &weights[..weights.len() - 4];
    assert_eq!(
        all.source.model_version,
        format!("{:08x}", crc32fast::hash(body))
    );
    assert_eq!(
        all.source.training_data_until,
        histories
            .iter()
            .map(|h| h.events.last().unwrap().timestamp)
            .max()
            .unwrap()
    );
    let home = RerankRequest::on(Surface::Home);
    for m in [0usize, 7, 31] {
        let h = &histories[m];
        assert_eq!(all.members.ids[m], h.member);
        let scores = reranker
            .score_catalog(&[(&h.events, home.clone())])
            .unwrap()
            .remove(0);
        for (i, s) in scores.iter().enumerate() {
            let ours = dot(all.members.row(m), all.items.row(i));
            assert!(
                (ours - s).abs() < 1e-4,
                "member {m} item {i}: {ours} vs {s}"
            );
        }
    }

    // As of a time: each member's events before it, asked at it; members with none left out.
    // The median of the members' first event times leaves about half of them out.
    let mut firsts: Vec<i64> = histories.iter().map(|h| h.events[0].timestamp).collect();
    firsts.sort_unstable();
    let as_of = firsts[firsts.len() / 2];
    let cut = extract(&reranker, &weights, &histories, Some(as_of)).unwrap();
    let with_events = histories
        .iter()
        .filter(|h| h.events[0].timestamp < as_of)
        .count();
    assert_eq!(cut.members.len(), with_events);
    assert!(
        with_events > 0 && with_events < histories.len(),
        "{with_events}"
    );
    let early = histories
        .iter()
        .find(|h| h.events.len() > 2 && h.events[0].timestamp < as_of)
        .unwrap();
    let n = early.events.partition_point(|e| e.timestamp < as_of);
    assert!(n < early.events.len(), "the cut drops some of its events");
    let at = RerankRequest {
        timestamp: Some(as_of),
        ..home.clone()
    };
    let row = cut
        .members
        .ids
        .iter()
        .position(|&id| id == early.member)
        .unwrap();
    let scores = reranker
        .score_catalog(&[(&early.events[..n], at)])
        .unwrap()
        .remove(0);
    for (i, s) in scores.iter().enumerate() {
        assert!((dot(cut.members.row(row), cut.items.row(i)) - s).abs() < 1e-4);
    }

    // A rotation fitted into another model's space keeps every member–item score.
    let other_weights = tiny_weight_file(&world, 2);
    let other = Reranker::from_bytes(&other_weights, &Backend::Cpu.device()).unwrap();
    let theirs = extract(&other, &other_weights, &histories, None).unwrap();
    assert_ne!(theirs.source.model_version, all.source.model_version);
    let r = Rotation::fit(&all.items, &theirs.items).unwrap();
    let (items, members): (EmbeddingTable, EmbeddingTable) =
        (r.apply(&all.items), r.apply(&all.members));
    for m in [0usize, 7] {
        for i in [0usize, 5, 60] {
            let before = dot(all.members.row(m), all.items.row(i));
            let after = dot(members.row(m), items.row(i));
            assert!((before - after).abs() < 1e-4, "{before} vs {after}");
        }
    }
}
