//! Arbitrary histories, candidate lists (ids and pushed titles with metadata), sessions and
//! requests against a real small model: a ranking of exactly the candidates or a typed refusal,
//! never a panic; a session's last call equals the stateless rerank of the same history.
#![no_main]

use std::sync::LazyLock;

use burn::tensor::Device;
use encore_core::runtime::Candidate;
use encore_core::serving::{ContentEncoderSpec, ServingContentEncoder};
use encore_core::{
    Action, DeviceType, Event, ItemKind, MemberSession, RerankRequest, Reranker, Surface,
    TitleMetadata,
};
use libfuzzer_sys::fuzz_target;

const ITEMS: usize = 24;
const D: usize = 8;

/// A small untrained model (the refusals and the bookkeeping do not depend on the weights)
/// with a content encoder, over item ids 100..124.
static RERANKER: LazyLock<Reranker> = LazyLock::new(|| {
    let config = encore_core::FoundationModelConfig::new(ITEMS)
        .with_d_model(D)
        .with_n_heads(2)
        .with_n_layers(1)
        .with_d_ff(16)
        .with_max_len(12)
        .with_dropout(0.0);
    let model = config.init(&Device::flex());
    let items =
        encore_core::data::catalog::ItemVocabulary::new((100..100 + ITEMS as u32).collect())
            .unwrap();
    let values = |n: usize, seed: f32| {
        (0..n)
            .map(|i| ((i as f32 + seed) * 0.37).sin() * 0.1)
            .collect::<Vec<f32>>()
    };
    let encoder = ServingContentEncoder {
        spec: ContentEncoderSpec {
            d_model: D,
            genres: vec!["a".into(), "b".into(), "c".into()],
            content_dim: 3,
            normalize: false,
            reference_time: 1_000_000,
        },
        genre: values(3 * D, 1.0),
        kind: values(ItemKind::ALL.len() * D, 2.0),
        language: values(16 * D, 3.0),
        year: values(21 * D, 4.0),
        gate: values(12, 5.0),
        unknown: values(D, 6.0),
        content: Some(encore_core::serving::LinearWeights {
            weight: values(3 * D, 7.0),
            bias: values(D, 8.0),
            out: D,
        }),
        unknown_share: None,
    };
    Reranker::new(model, config, items).with_content_encoder(encoder)
});

/// Reads values off the input, one byte or word at a time (zeros once it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn word(&mut self) -> u64 {
        (0..8).fold(0, |w, _| (w << 8) | u64::from(self.byte()))
    }
    /// An item id: mostly known ones, sometimes unknown.
    fn item(&mut self) -> u32 {
        90 + u32::from(self.byte() % 40)
    }
}

fuzz_target!(|data: &[u8]| {
    let r = &*RERANKER;
    let mut input = Input(data);
    let n_events = usize::from(input.byte() % 30);
    let mut t = (input.word() as i64) >> (input.byte() % 64);
    let mut history = Vec::with_capacity(n_events);
    for _ in 0..n_events {
        t = t.wrapping_add(i64::from(input.byte()) - 16);
        history.push(Event {
            member: 0,
            item: input.item(),
            timestamp: t,
            action: Action::ALL[usize::from(input.byte()) % Action::ALL.len()],
            duration_s: f32::from_bits(input.word() as u32),
            surface: Surface::ALL[usize::from(input.byte()) % Surface::ALL.len()],
            country: ["US", "DE", ""][usize::from(input.byte()) % 3].into(),
            device: DeviceType::ALL[usize::from(input.byte()) % DeviceType::ALL.len()],
            rating: None,
        });
    }
    let n_candidates = usize::from(input.byte() % 40);
    let candidates: Vec<Candidate> = (0..n_candidates)
        .map(|_| {
            let id = input.item();
            if input.byte() % 3 == 0 {
                let genres = (0..input.byte() % 3)
                    .map(|_| ["a", "b", "c", "zz"][usize::from(input.byte()) % 4].to_string())
                    .collect();
                let content = match input.byte() % 4 {
                    0 => None,
                    1 => Some(vec![f32::from_bits(input.word() as u32); 3]),
                    2 => Some(vec![0.5; usize::from(input.byte() % 6)]),
                    _ => Some(vec![0.25, -1.0, 2.0]),
                };
                Candidate::with_metadata(
                    id,
                    TitleMetadata {
                        genres,
                        kind: ItemKind::ALL[usize::from(input.byte()) % ItemKind::ALL.len()],
                        language: ["en", "fr", ""][usize::from(input.byte()) % 3].into(),
                        release_year: input.word() as u16,
                        added_at: input.word() as i64 >> (input.byte() % 64),
                        content,
                        title: None,
                    },
                )
            } else {
                Candidate::known(id)
            }
        })
        .collect();
    let request = RerankRequest {
        timestamp: (input.byte() % 2 == 0).then(|| input.word() as i64 >> (input.byte() % 64)),
        ..RerankRequest::on(Surface::ALL[usize::from(input.byte()) % Surface::ALL.len()])
    };
    let ids: Vec<u32> = candidates.iter().map(|c| c.id).collect();
    if let Ok(ranked) = r.rerank(&history, &ids, &request) {
        let mut got: Vec<u32> = ranked.iter().map(|s| s.item).collect();
        got.sort_unstable();
        let mut want = ids.clone();
        want.sort_unstable();
        assert_eq!(got, want, "a ranking holds exactly the candidates");
    }
    let stateless = r.rerank_pushed(&history, &candidates, &request);
    if let Ok(ranked) = &stateless {
        assert_eq!(ranked.len(), candidates.len());
    }
    // A session over the same history, in two halves.
    let half = history.len() / 2;
    if let Ok(mut session) = MemberSession::new(history[..half].to_vec()) {
        let _ = r.rerank_session_pushed(&mut session, &candidates, &request);
        let appended = history[half..]
            .iter()
            .all(|e| session.append(e.clone()).is_ok());
        if appended {
            let again = r.rerank_session_pushed(&mut session, &candidates, &request);
            if let (Ok(a), Ok(b)) = (&again, &stateless) {
                // By item: near-ties may order differently.
                for x in a {
                    let y = b
                        .iter()
                        .find(|y| y.item == x.item)
                        .expect("same candidates");
                    assert!(
                        (x.score - y.score).abs() <= 1e-3 * (1.0 + y.score.abs()),
                        "session {x:?} vs stateless {y:?}"
                    );
                }
            }
        }
    }
});
