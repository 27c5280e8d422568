//! Titles the bundle has never seen, pushed with their metadata: the bundle's content encoder
//! embeds them on the device exactly as training embeds an unseen title; scores of pushed
//! titles equal those of the same titles baked into a bundle; bundled titles keep their
//! bundled path; bad metadata and titles neither bundled nor described are refused by name.

use std::collections::{HashMap, HashSet};

use burn::tensor::Device;
use encore_core::data::split::group_by_member;
use encore_core::runtime::Candidate;
use encore_core::serving::MetadataError;
use encore_core::weights::{
    Quantization, load_model, requantize, retain_items, save_bundle, save_model,
};
use encore_core::{
    Catalog, Event, MemberSession, RerankError, RerankRequest, Reranker, Surface, SyntheticWorld,
    TitleMetadata, WeightFile,
};
use encore_tests::{small_world, split, tiny_config, train_on};

/// Width of the fixture's content vectors.
const CONTENT_DIM: usize = 6;

/// The small world with a content vector on every title, and every event of 12 titles (the
/// "withheld" ones) removed, so that the model never sees them in training.
fn world_with_withheld_titles() -> (SyntheticWorld, HashSet<u32>) {
    let mut world = small_world();
    let items = world
        .catalog
        .items
        .iter()
        .map(|item| {
            let mut item = item.clone();
            item.content = Some(
                (0..CONTENT_DIM)
                    .map(|k| (item.id as f32 * 0.37 + k as f32 * 1.3).sin())
                    .collect(),
            );
            item
        })
        .collect();
    world.catalog = Catalog::new(world.catalog.genres.clone(), items).unwrap();
    let withheld: HashSet<u32> = world.catalog.ids().into_iter().step_by(10).collect();
    assert_eq!(withheld.len(), 12);
    world.events.retain(|e| !withheld.contains(&e.item));
    (world, withheld)
}

/// The last training event's time: the time a training export measures item ages to.
fn reference_time(world: &SyntheticWorld) -> i64 {
    let (train, _) = split(world);
    train
        .iter()
        .flat_map(|h| &h.events)
        .map(|e| e.timestamp)
        .max()
        .unwrap()
}

fn by_item(ranked: &[encore_core::ScoredItem]) -> HashMap<u32, f32> {
    ranked.iter().map(|s| (s.item, s.score)).collect()
}

fn assert_close(a: &HashMap<u32, f32>, b: &HashMap<u32, f32>, tolerance: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: same candidates");
    for (item, x) in a {
        let y = b[item];
        assert!(
            (x - y).abs() <= tolerance,
            "{what}: item {item}: {x} vs {y}"
        );
    }
}

#[test]
fn pushed_titles_score_as_if_the_bundle_had_them() {
    let (world, withheld) = world_with_withheld_titles();
    let trained = train_on(&world, &tiny_config(1)).unwrap();
    let device = Device::flex();
    let full = Reranker::from_bytes(&trained.weights, &device).unwrap();
    let encoder = full
        .content_encoder()
        .expect("the training export carries the encoder");
    assert_eq!(encoder.spec.content_dim, CONTENT_DIM);
    assert_eq!(encoder.spec.genres, world.catalog.genres);
    // Ages are measured to the end of the training data, as training measured them.
    assert_eq!(encoder.spec.reference_time, reference_time(&world));
    let reference = reference_time(&world);
    let d = full.config().d_model;

    // The on-device embedding of every never-seen title equals the training-side one (its
    // baked row) to 1e-4; a seen title's baked row differs from its content-only vector.
    let rows = full.item_vectors().unwrap();
    let mut largest = 0f32;
    for &id in &withheld {
        let row = full.items().index_of(id).unwrap();
        let metadata = world.catalog.metadata(id).unwrap();
        let v = full.title_vector(&metadata).unwrap().unwrap();
        for (a, b) in v.iter().zip(&rows[row * d..(row + 1) * d]) {
            largest = largest.max((a - b).abs());
        }
    }
    assert!(largest <= 1e-4, "largest difference {largest}");
    let seen = world
        .catalog
        .ids()
        .into_iter()
        .find(|id| !withheld.contains(id))
        .unwrap();
    let row = full.items().index_of(seen).unwrap();
    let v = full
        .title_vector(&world.catalog.metadata(seen).unwrap())
        .unwrap()
        .unwrap();
    assert!(
        v.iter()
            .zip(&rows[row * d..(row + 1) * d])
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "a seen title's row mixes in its ID embedding"
    );

    // The bundle as it was before the withheld titles joined the catalog.
    let loaded = load_model(&trained.weights, &device).unwrap();
    let before = retain_items(loaded, |id| !withheld.contains(&id));
    let bytes = save_bundle(
        &before.model,
        &before.config,
        before.items.ids(),
        before.content_encoder.as_ref(),
        Quantization::F32,
    );
    let small = Reranker::from_bytes(&bytes, &device).unwrap();
    assert_eq!(small.items().len(), world.catalog.len() - withheld.len());
    // The same model without the round trip through a file.
    let in_memory = Reranker::new(before.model, before.config, before.items)
        .with_content_encoder(before.content_encoder.unwrap());

    // A member's history of seen titles; candidates mixing withheld titles (with metadata),
    // bundled titles with metadata and bundled titles by id alone.
    let histories = group_by_member(&world.events);
    let bundled_history: Vec<Event> = histories[3].events.iter().take(20).cloned().collect();
    let ids: Vec<u32> = world.catalog.ids().into_iter().take(40).collect();
    // The member also watched two of the titles the bundle lacks.
    let mut history = bundled_history.clone();
    history[5].item = ids[10];
    history[12].item = ids[20];
    assert!(
        withheld.contains(&ids[10]) && withheld.contains(&ids[20]) && withheld.contains(&ids[30])
    );
    // Days after the export: the request's time changes the context, not the item vectors.
    let request = RerankRequest {
        timestamp: Some(reference + 5 * 86_400),
        ..RerankRequest::on(Surface::Home)
    };
    let candidates: Vec<Candidate> = ids
        .iter()
        .enumerate()
        .map(|(k, &id)| {
            if withheld.contains(&id) || k % 3 == 0 {
                Candidate::with_metadata(id, world.catalog.metadata(id).unwrap())
            } else {
                Candidate::known(id)
            }
        })
        .collect();
    assert!(ids.iter().filter(|id| withheld.contains(id)).count() >= 4);
    let expected = by_item(&full.rerank(&history, &ids, &request).unwrap());
    let pushed = small
        .rerank_pushed(&history, &candidates, &request)
        .unwrap();
    assert_close(&by_item(&pushed), &expected, 1e-4, "pushed vs baked");
    assert_eq!(
        in_memory
            .rerank_pushed(&history, &candidates, &request)
            .unwrap(),
        pushed,
        "in memory vs loaded"
    );
    assert!(
        pushed.windows(2).all(|w| w[0].score >= w[1].score),
        "best first"
    );
    // The full bundle given the same metadata scores its own rows: exactly its plain scores.
    let on_full = full.rerank_pushed(&history, &candidates, &request).unwrap();
    assert_eq!(
        by_item(&on_full),
        expected,
        "bundled titles keep their bundled path"
    );

    // A member session gives the same scores, before and after an appended event of a title
    // the bundle lacks.
    let mut session = MemberSession::new(history.clone()).unwrap();
    let first = small
        .rerank_session_pushed(&mut session, &candidates, &request)
        .unwrap();
    assert_close(&by_item(&first), &expected, 1e-4, "session vs baked");
    let mut next = history.last().unwrap().clone();
    next.item = ids[30];
    next.timestamp += 60;
    session.append(next.clone()).unwrap();
    let mut longer = history.clone();
    longer.push(next);
    let again = small
        .rerank_session_pushed(&mut session, &candidates, &request)
        .unwrap();
    assert_eq!(
        session.last_encoded_tokens(),
        2,
        "one event and the request token"
    );
    let stateless = small.rerank_pushed(&longer, &candidates, &request).unwrap();
    assert_close(
        &by_item(&again),
        &by_item(&stateless),
        1e-4,
        "session vs stateless",
    );

    // Later calls need not describe the titles the session's history already holds: a plain
    // rerank of bundled candidates equals the full bundle's.
    let bundled: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|id| !withheld.contains(id))
        .collect();
    let plain = small
        .rerank_session(&mut session, &bundled, &request)
        .unwrap();
    assert_eq!(session.last_encoded_tokens(), 1, "the request token alone");
    assert_close(
        &by_item(&plain),
        &by_item(&full.rerank(&longer, &bundled, &request).unwrap()),
        1e-4,
        "session of described titles, plain rerank",
    );
    // Stateless, an undescribed title in the history is refused by position.
    assert_eq!(
        small.rerank(&longer, &bundled, &request).unwrap_err(),
        RerankError::UnknownHistoryItem {
            position: 5,
            item: ids[10]
        }
    );

    // burn's wgpu backend (not the CPU engine) scores pushed candidates the same; a history
    // naming a title the bundle lacks is refused there (only the CPU engine embeds it).
    let on_wgpu = Reranker::from_bytes(&bytes, &Device::wgpu(Default::default())).unwrap();
    assert_eq!(
        on_wgpu
            .rerank_pushed(&history, &candidates, &request)
            .unwrap_err(),
        RerankError::DescribedHistoryOffCpu
    );
    let history = bundled_history;
    let expected = by_item(&full.rerank(&history, &ids, &request).unwrap());
    let gpu = on_wgpu
        .rerank_pushed(&history, &candidates, &request)
        .unwrap();
    assert_close(&by_item(&gpu), &expected, 1e-3, "burn wgpu vs baked");

    // int8: the encoder travels through requantization, its vectors within int8 error.
    let int8 =
        Reranker::from_bytes(&requantize(&bytes, Quantization::Int8).unwrap(), &device).unwrap();
    let encoder8 = int8
        .content_encoder()
        .expect("requantize keeps the encoder");
    assert_eq!(encoder8.spec, small.content_encoder().unwrap().spec);
    let metadata = world.catalog.metadata(ids[0]).unwrap();
    let (a, b) = (
        small.title_vector(&metadata).unwrap().unwrap(),
        int8.title_vector(&metadata).unwrap().unwrap(),
    );
    let cos = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
            * b.iter().map(|x| x * x).sum::<f32>().sqrt());
    assert!(cos > 0.99, "int8 encoder vector cosine {cos}");
    assert_ne!(a, b, "int8 storage changes the values");
}

#[test]
fn bad_pushed_candidates_are_refused_by_position_and_id() {
    let (world, withheld) = world_with_withheld_titles();
    let trained = train_on(&world, &tiny_config(1)).unwrap();
    let device = Device::flex();
    let loaded = load_model(&trained.weights, &device).unwrap();
    let before = retain_items(loaded, |id| !withheld.contains(&id));
    let with_encoder = save_bundle(
        &before.model,
        &before.config,
        before.items.ids(),
        before.content_encoder.as_ref(),
        Quantization::F32,
    );
    let without_encoder = save_model(
        &before.model,
        &before.config,
        before.items.ids(),
        Quantization::F32,
    );
    let reranker = Reranker::from_bytes(&with_encoder, &device).unwrap();
    let bare = Reranker::from_bytes(&without_encoder, &device).unwrap();
    assert!(bare.content_encoder().is_none());
    assert!(
        WeightFile::decode(&without_encoder)
            .unwrap()
            .content_encoder()
            .is_none()
    );

    let history: Vec<Event> = group_by_member(&world.events)[0]
        .events
        .iter()
        .take(5)
        .cloned()
        .collect();
    let request = RerankRequest::on(Surface::Home);
    let known = before.items.ids()[0];
    let new = *withheld.iter().min().unwrap();
    let good = world.catalog.metadata(new).unwrap();
    let with = |m: TitleMetadata| vec![Candidate::known(known), Candidate::with_metadata(new, m)];
    let refusal =
        |r: &Reranker, c: &[Candidate]| r.rerank_pushed(&history, c, &request).unwrap_err();

    assert!(
        reranker
            .rerank_pushed(&history, &with(good.clone()), &request)
            .is_ok()
    );
    // A title neither in the bundle nor described.
    assert_eq!(
        refusal(&reranker, &[Candidate::known(known), Candidate::known(new)]),
        RerankError::UnknownCandidate {
            position: 1,
            item: new
        }
    );
    // A bundle without a content encoder.
    assert_eq!(
        refusal(&bare, &with(good.clone())),
        RerankError::NoContentEncoder {
            position: 1,
            item: new
        }
    );
    // An unknown genre, a content vector of the wrong width, a non-finite one, an arrival
    // time out of range: each names the candidate and what is wrong.
    let mut bad_genre = good.clone();
    bad_genre.genres.push("space-western".into());
    let e = refusal(&reranker, &with(bad_genre));
    assert!(
        matches!(&e, RerankError::InvalidMetadata { position: 1, item, source: MetadataError::UnknownGenre { genre, .. } } if *item == new && genre == "space-western"),
        "{e:?}"
    );
    assert!(e.to_string().contains("space-western"), "{e}");
    let mut wide = good.clone();
    wide.content = Some(vec![0.5; CONTENT_DIM + 1]);
    assert_eq!(
        refusal(&reranker, &with(wide)),
        RerankError::InvalidMetadata {
            position: 1,
            item: new,
            source: MetadataError::ContentWidth {
                found: CONTENT_DIM + 1,
                expected: CONTENT_DIM
            }
        }
    );
    let mut nan = good.clone();
    nan.content = Some(vec![f32::NAN; CONTENT_DIM]);
    assert!(matches!(
        refusal(&reranker, &with(nan)),
        RerankError::InvalidMetadata {
            source: MetadataError::NonFiniteContent { index: 0 },
            ..
        }
    ));
    let mut far = good.clone();
    far.added_at = i64::MAX;
    assert!(matches!(
        refusal(&reranker, &with(far)),
        RerankError::InvalidMetadata {
            source: MetadataError::AddedAtOutOfRange { .. },
            ..
        }
    ));
    // Bad metadata on a bundled title is refused too.
    let mut bundled_bad = world.catalog.metadata(known).unwrap();
    bundled_bad.genres = vec!["nope".into()];
    assert!(matches!(
        refusal(&reranker, &[Candidate::with_metadata(known, bundled_bad)]),
        RerankError::InvalidMetadata { position: 0, .. }
    ));
    // The same id twice, once bundled-style and once pushed.
    assert_eq!(
        refusal(
            &reranker,
            &[
                Candidate::with_metadata(new, good.clone()),
                Candidate::known(known),
                Candidate::with_metadata(new, good.clone())
            ]
        ),
        RerankError::DuplicateCandidate {
            item: new,
            first: 0,
            second: 2
        }
    );
    assert_eq!(
        refusal(
            &reranker,
            &[
                Candidate::known(known),
                Candidate::with_metadata(new, good.clone()),
                Candidate::known(known)
            ]
        ),
        RerankError::DuplicateCandidate {
            item: known,
            first: 0,
            second: 2
        }
    );
    assert_eq!(refusal(&reranker, &[]), RerankError::EmptyCandidates);
    // A history event of a title neither in the bundle nor described by the call is refused;
    // described, it is embedded.
    let mut h = history.clone();
    h.last_mut().unwrap().item = new;
    assert_eq!(
        reranker
            .rerank_pushed(&h, &[Candidate::known(known)], &request)
            .unwrap_err(),
        RerankError::UnknownHistoryItem {
            position: h.len() - 1,
            item: new
        }
    );
    assert!(
        reranker
            .rerank_pushed(&h, &with(good.clone()), &request)
            .is_ok()
    );
}

/// A bundle re-encoded after `edit` changes its content encoder part (spec and tensors, with
/// their bytes).
fn with_edited_encoder(
    bytes: &[u8],
    mut edit: impl FnMut(&mut encore_core::weights::ContentEncoderPart, &mut Vec<Vec<u8>>),
) -> Vec<u8> {
    use encore_core::weights::PartKind;
    let file = WeightFile::decode(bytes).unwrap();
    let mut manifest = file.manifest.clone();
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for part in &mut manifest.parts {
        let mut own: Vec<Vec<u8>> = part
            .kind
            .tensors()
            .iter()
            .map(|t| file.tensor_bytes(t).to_vec())
            .collect();
        if let PartKind::ContentEncoder(encoder) = &mut part.kind {
            edit(encoder, &mut own);
        }
        blobs.extend(own);
    }
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    WeightFile::encode(manifest, &refs)
}

#[test]
fn a_bad_content_encoder_part_is_refused_by_name_before_decoding() {
    let world = small_world();
    let bytes = encore_tests::tiny_weight_file(&world, 1);
    let device = Device::flex();
    let load = |b: &[u8]| {
        Reranker::from_bytes(b, &device)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    // Unchanged, the bundle loads with its encoder.
    assert!(
        Reranker::from_bytes(&with_edited_encoder(&bytes, |_, _| {}), &device)
            .unwrap()
            .content_encoder()
            .is_some()
    );
    let e = load(&with_edited_encoder(&bytes, |p, _| p.spec.d_model = 8));
    assert!(
        e.contains("content encoder: width 8 for a model of width 16"),
        "{e}"
    );
    let e = load(&with_edited_encoder(&bytes, |p, _| {
        p.spec.genres[1] = p.spec.genres[0].clone()
    }));
    assert!(e.contains("is named twice"), "{e}");
    let e = load(&with_edited_encoder(&bytes, |p, blobs| {
        let i = p.tensors.iter().position(|t| t.name == "unknown").unwrap();
        p.tensors.remove(i);
        blobs.remove(i);
    }));
    assert!(e.contains("content encoder unknown"), "{e}");
    let e = load(&with_edited_encoder(&bytes, |p, _| {
        p.spec.genres.push("Western".into())
    }));
    assert!(
        e.contains("content encoder genre.weight") && e.contains("expected [15, 16]"),
        "{e}"
    );
    // The decoded-size limit counts the encoder: the model alone fits, model + encoder not.
    let file = WeightFile::decode(&bytes).unwrap();
    let model_bytes: u64 = file
        .foundation_model()
        .unwrap()
        .tensors
        .iter()
        .map(|t| t.shape.iter().map(|&d| u64::from(d)).product::<u64>() * 4)
        .sum();
    let without = save_model(
        &load_model(&bytes, &device).unwrap().model,
        &Reranker::from_bytes(&bytes, &device)
            .unwrap()
            .config()
            .clone(),
        world.catalog.ids().as_slice(),
        Quantization::F32,
    );
    assert!(Reranker::from_bytes_within(&without, &device, model_bytes).is_ok());
    assert!(matches!(
        Reranker::from_bytes_within(&bytes, &device, model_bytes).unwrap_err(),
        encore_core::WeightFileError::DecodedTooLarge { .. }
    ));
}

/// A bundle cut down to its model (one title kept) reranks candidates and a history whose
/// titles are all pushed with their int8 item vectors exactly as the int8 bundle of the whole
/// catalog reranks them by id; a bad vector is refused by position and id.
#[test]
fn a_bundle_of_its_model_alone_reranks_titles_pushed_with_their_vectors() {
    let world = small_world();
    let trained = train_on(&world, &tiny_config(2)).unwrap();
    let device = Device::flex();
    let int8 = requantize(&trained.weights, Quantization::Int8).unwrap();
    let whole = Reranker::from_bytes(&int8, &device).unwrap();
    let f32_model = Reranker::from_bytes(&trained.weights, &device).unwrap();
    let d = f32_model.config().d_model;
    let vectors = f32_model.item_vectors().unwrap();
    let ids = f32_model.items().ids().to_vec();
    let vector_of = |id: u32| {
        let row = ids.iter().position(|&i| i == id).unwrap();
        encore_core::PushedVector::quantize(&vectors[row * d..(row + 1) * d])
    };
    let loaded = load_model(&int8, &device).unwrap();
    let kept = ids[0];
    let alone = retain_items(loaded, |id| id == kept);
    let alone = alone.to_bundle(&alone.prompts, Quantization::Int8);
    // What the cut saves is the other titles' rows (d int8 values and a scale each) and ids.
    let saved = int8.len() - alone.len();
    let rows = (ids.len() - 1) * (d + 4);
    assert!(
        saved >= rows && saved <= rows + (ids.len() - 1) * 5 + 64,
        "saved {saved} bytes for {} rows of {d}",
        ids.len() - 1
    );
    let model_only = Reranker::from_bytes(&alone, &device).unwrap();
    let (train_set, held_out) = split(&world);
    let case = held_out.iter().find(|c| c.history.len() >= 20).unwrap();
    let history = &train_set
        .iter()
        .find(|h| h.member == case.member)
        .unwrap()
        .events;
    let history = &history[history.len().saturating_sub(40)..];
    let request = RerankRequest::on(case.target.surface);
    let candidates: Vec<u32> = ids.iter().rev().take(40).copied().collect();
    let want = by_item(&whole.rerank(history, &candidates, &request).unwrap());
    let pushed: Vec<Candidate> = candidates
        .iter()
        .map(|&id| Candidate::with_vector(id, vector_of(id)))
        .collect();
    let mut history_ids: Vec<u32> = history.iter().map(|e| e.item).collect();
    history_ids.sort_unstable();
    history_ids.dedup();
    let history_titles: Vec<Candidate> = history_ids
        .iter()
        .map(|&id| Candidate::with_vector(id, vector_of(id)))
        .collect();
    let got = model_only
        .rerank_pushed_with_history(history, &pushed, &history_titles, &request)
        .unwrap();
    assert_eq!(got.len(), candidates.len());
    assert_close(
        &by_item(&got),
        &want,
        1e-4,
        "model alone, everything pushed",
    );
    // Without the history's titles, the history is refused by position.
    let e = model_only
        .rerank_pushed(history, &pushed, &request)
        .unwrap_err();
    assert!(matches!(e, RerankError::UnknownHistoryItem { .. }), "{e}");
    // Bad vectors: too short, a negative scale; and in the history titles, wrapped.
    let mut short = pushed.clone();
    short[3].vector.as_mut().unwrap().values.pop();
    assert_eq!(
        model_only
            .rerank_pushed(history, &short, &request)
            .unwrap_err(),
        RerankError::PushedVectorLength {
            position: 3,
            item: candidates[3],
            expected: d,
            got: d - 1,
        }
    );
    let mut negative = pushed.clone();
    negative[5].vector.as_mut().unwrap().scale = -1.0;
    let e = model_only
        .rerank_pushed_with_history(history, &negative, &history_titles, &request)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "candidate 5 (item id {}): its pushed vector's scale -1 is not a finite non-negative \
             number",
            candidates[5]
        )
    );
    // A history title that neither the bundle nor a candidate gives: its vector is read.
    let last = history_ids
        .iter()
        .rposition(|id| *id != kept && !candidates.contains(id))
        .unwrap();
    let mut bad_titles = history_titles.clone();
    bad_titles[last].vector.as_mut().unwrap().scale = f32::NAN;
    let e = model_only
        .rerank_pushed_with_history(history, &pushed, &bad_titles, &request)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "history title: candidate {last} (item id {})",
            history_ids[last]
        )),
        "{e}"
    );
    // A session on the model alone: the same scores as the stateless call, and after an
    // appended event of a title described only by the next call's history titles, as the
    // whole bundle's session gives them.
    let (older, newest) = history.split_at(history.len() - 1);
    let mut session = MemberSession::new(older.to_vec()).unwrap();
    let first = model_only
        .rerank_session_pushed_with_history(&mut session, &pushed, &history_titles, &request)
        .unwrap();
    let want_older = by_item(&whole.rerank(older, &candidates, &request).unwrap());
    assert_close(&by_item(&first), &want_older, 1e-4, "model alone, session");
    let mut appended = newest[0].clone();
    appended.item = *ids
        .iter()
        .find(|&&id| id != kept && !history_ids.contains(&id) && !candidates.contains(&id))
        .unwrap();
    session.append(appended.clone()).unwrap();
    // (A refused call clears the session's cache, so it is made on a copy.)
    let e = model_only
        .rerank_session_pushed_with_history(
            &mut session.clone(),
            &pushed,
            &history_titles,
            &request,
        )
        .unwrap_err();
    assert_eq!(
        e,
        RerankError::UnknownHistoryItem {
            position: older.len(),
            item: appended.item,
        }
    );
    let mut with_new = history_titles.clone();
    with_new.push(Candidate::with_vector(
        appended.item,
        vector_of(appended.item),
    ));
    let second = model_only
        .rerank_session_pushed_with_history(&mut session, &pushed, &with_new, &request)
        .unwrap();
    let longer = [older, &[appended][..]].concat();
    let want_longer = by_item(&whole.rerank(&longer, &candidates, &request).unwrap());
    assert_close(
        &by_item(&second),
        &want_longer,
        1e-4,
        "model alone, session after an append",
    );
    // More history titles than a call takes are refused before any is read.
    let too_many = vec![Candidate::known(kept); encore_core::runtime::MAX_CANDIDATES + 1];
    assert_eq!(
        model_only
            .rerank_pushed_with_history(history, &pushed, &too_many, &request)
            .unwrap_err()
            .to_string(),
        format!(
            "history title: {} candidates given; at most {} per call",
            encore_core::runtime::MAX_CANDIDATES + 1,
            encore_core::runtime::MAX_CANDIDATES
        )
    );
}
