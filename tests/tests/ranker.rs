//! The contextual ranker on the device: a bundle carries it after the foundation model; the
//! CPU engine's contextual reranks (stateless and in a session) give the training-side
//! forward's scores; α = 0 ranks without the member; bad contexts, a bundle without a ranker
//! and a ranker trained on another model are refused by name.

use burn::tensor::Device;
use encore_core::data::split::MemberHistory;
use encore_core::ranker::{RankContext, RankContextError, RankerRows};
use encore_core::weights::{
    Manifest, PartKind, Quantization, WeightFileError, load_model, requantize,
};
use encore_core::{MemberSession, RerankError, RerankRequest, Reranker, SyntheticWorld};
use encore_tests::{
    ByItem, RankerFixture, assert_pairwise, by_item, edited_bundle, fixture_content_encoder,
    one_test_at_a_time, ranker_fixture, small_world, split,
};

struct Setup {
    world: SyntheticWorld,
    fixture: RankerFixture,
    reranker: Reranker,
    train: Vec<MemberHistory>,
}

fn setup() -> Setup {
    let world = small_world();
    let fixture = ranker_fixture(&world, 21);
    let reranker = Reranker::from_bytes(&fixture.bytes, &Device::flex()).expect("bundle loads");
    let (train, _) = split(&world);
    Setup {
        world,
        fixture,
        reranker,
        train,
    }
}

impl Setup {
    /// The first `n` catalog ids.
    fn candidates(&self, n: usize) -> Vec<u32> {
        self.world.catalog.ids()[..n].to_vec()
    }

    /// A query from the title of candidate `k`: its first five characters.
    fn query(&self, k: usize) -> String {
        let id = self.candidates(k + 1)[k];
        self.world
            .catalog
            .get(id)
            .unwrap()
            .title
            .chars()
            .take(5)
            .collect()
    }

    /// The training-side scores: the model's user representation and item vectors through
    /// the featurization training uses, then the burn ranker's forward (the context's absent
    /// surface, device and country filled from the request as the device fills them).
    fn training_scores(
        &self,
        history: &[encore_core::Event],
        candidates: &[u32],
        request: &RerankRequest,
        context: &RankContext,
    ) -> ByItem {
        let base = Reranker::from_bytes(&self.fixture.base, &Device::flex()).unwrap();
        let user = base
            .user_representations(&[(history, request.clone())])
            .unwrap()
            .remove(0);
        let items = base.item_vectors().unwrap();
        let bundle = &self.fixture.ranker;
        let v = &bundle.vocabulary;
        let tokens = request.context(history);
        let timestamp = tokens.timestamp;
        let context = &RankContext {
            surface: context.surface.or(Some(tokens.surface)),
            device: context.device.or(Some(tokens.device)),
            country: context.country.clone().or(Some(tokens.country)),
            ..context.clone()
        };
        let features = v
            .request(
                context,
                base.items(),
                &v.title_index(),
                bundle.config.query_buckets,
                timestamp,
            )
            .unwrap();
        let rows_of: Vec<usize> = candidates
            .iter()
            .map(|&c| base.items().index_of(c).unwrap())
            .collect();
        let mut rows = RankerRows::default();
        v.push_rows(&mut rows, &features, &rows_of, &items, &user, |_| false);
        let logits = training_logits(bundle, &rows);
        candidates.iter().copied().zip(logits).collect()
    }
}

/// The training-side (burn) ranker's logit of every row.
fn training_logits(bundle: &encore_core::weights::RankerBundle, rows: &RankerRows) -> Vec<f32> {
    bundle
        .model
        .forward(&rows.input(&bundle.config, &Device::flex()))
        .into_data()
        .try_into_vec()
        .unwrap()
}

#[test]
fn contextual_reranks_equal_the_training_forward_stateless_and_in_a_session() {
    let _alone = one_test_at_a_time();
    let s = setup();
    let history = &s.train[0].events;
    let candidates = s.candidates(40);
    let request = RerankRequest::on(encore_core::Surface::Search);
    let contexts = [
        RankContext::task("search")
            .with_query(s.query(3))
            .with_alpha(0.5),
        RankContext::task("home_row"),
        RankContext::task("more_like_this")
            .with_source(candidates[7])
            .with_alpha(0.0),
    ];
    let mut session = MemberSession::new(history.clone()).unwrap();
    for (k, context) in contexts.iter().enumerate() {
        let stateless = s
            .reranker
            .rerank_in_context(history, &candidates, &request, context)
            .unwrap();
        let in_session = s
            .reranker
            .rerank_session_in_context(&mut session, &candidates, &request, context)
            .unwrap();
        let training = s.training_scores(history, &candidates, &request, context);
        assert_pairwise(
            &format!("context {k}"),
            &[
                ("stateless", by_item(&stateless)),
                ("session", by_item(&in_session)),
                ("training", training),
            ],
            &candidates,
        );
        // Ordered best first.
        assert!(stateless.windows(2).all(|w| w[0].score >= w[1].score));
        if k > 0 {
            // A new context on the same history encodes the request token alone.
            assert_eq!(session.last_encoded_tokens(), 1, "context {k}");
        }
    }
    // The context moves the scores: the search and the home row rank differently.
    let a = by_item(
        &s.reranker
            .rerank_in_context(history, &candidates, &request, &contexts[0])
            .unwrap(),
    );
    let b = by_item(
        &s.reranker
            .rerank_in_context(history, &candidates, &request, &contexts[1])
            .unwrap(),
    );
    let moved = candidates
        .iter()
        .filter(|c| (a[c] - b[c]).abs() > 1e-3)
        .count();
    assert!(moved > candidates.len() / 2, "only {moved} scores moved");
}

#[test]
fn alpha_zero_ranks_without_the_member_and_alpha_changes_the_ranking() {
    let _alone = one_test_at_a_time();
    let s = setup();
    let candidates = s.candidates(30);
    let request = RerankRequest::on(encore_core::Surface::Search);
    let (h1, h2) = (&s.train[1].events, &s.train[2].events);
    assert_ne!(h1, h2);
    let scores = |h: &[encore_core::Event], alpha: f32| {
        let ctx = RankContext::task("search")
            .with_query(s.query(5))
            .with_alpha(alpha);
        // One request time for both members (the hour and weekday are context features).
        let request = RerankRequest {
            timestamp: Some(1_700_000_000),
            country: Some("US".into()),
            device: Some(encore_core::DeviceType::Web),
            ..request.clone()
        };
        by_item(
            &s.reranker
                .rerank_in_context(h, &candidates, &request, &ctx)
                .unwrap(),
        )
    };
    let (a, b) = (scores(h1, 0.0), scores(h2, 0.0));
    for c in &candidates {
        assert!(
            (a[c] - b[c]).abs() < 1e-5,
            "α = 0, item {c}: {} vs {}",
            a[c],
            b[c]
        );
    }
    let (a1, b1) = (scores(h1, 1.0), scores(h2, 1.0));
    let differ = candidates
        .iter()
        .filter(|c| (a1[c] - b1[c]).abs() > 1e-4)
        .count();
    assert!(differ > 0, "α = 1 gives two members the same scores");
    let changed = candidates
        .iter()
        .filter(|c| (a1[c] - a[c]).abs() > 1e-4)
        .count();
    assert!(changed > 0, "α does not move the member's scores");
}

#[test]
fn bad_contexts_and_a_bundle_without_a_ranker_are_refused_by_name() {
    let _alone = one_test_at_a_time();
    let s = setup();
    let history = &s.train[0].events;
    let candidates = s.candidates(10);
    let request = RerankRequest::on(encore_core::Surface::Home);
    let err = |ctx: RankContext| {
        s.reranker
            .rerank_in_context(history, &candidates, &request, &ctx)
            .unwrap_err()
    };
    assert_eq!(
        err(RankContext::task("kids")),
        RerankError::Context(RankContextError::UnknownTask {
            name: "kids".into(),
            known: vec!["search".into(), "home_row".into(), "more_like_this".into()],
        })
    );
    assert_eq!(
        err(RankContext::task("search").with_query("")),
        RerankError::Context(RankContextError::EmptyQuery {
            query: String::new()
        })
    );
    assert_eq!(
        err(RankContext::task("search").with_query("x".repeat(257))),
        RerankError::Context(RankContextError::QueryTooLong { bytes: 257 })
    );
    assert_eq!(
        err(RankContext::task("more_like_this").with_source(999_999)),
        RerankError::Context(RankContextError::UnknownSource { item: 999_999 })
    );
    let nan = err(RankContext::task("search")
        .with_query("a b")
        .with_alpha(f32::NAN));
    assert!(
        matches!(&nan, RerankError::Context(RankContextError::InvalidAlpha { alpha }) if alpha.is_nan()),
        "{nan:?}"
    );
    assert!(
        nan.to_string().contains("alpha NaN is not in [0, 1]"),
        "{nan}"
    );
    // Candidates and history are checked as in any rerank.
    let mut dup = candidates.clone();
    dup.push(candidates[0]);
    assert!(matches!(
        s.reranker
            .rerank_in_context(history, &dup, &request, &RankContext::task("home_row")),
        Err(RerankError::DuplicateCandidate { .. })
    ));
    // The same model without the ranker part.
    let plain = Reranker::from_bytes(&s.fixture.base, &Device::flex()).unwrap();
    assert!(plain.ranker_tasks().is_empty());
    let e = plain
        .rerank_in_context(
            history,
            &candidates,
            &request,
            &RankContext::task("home_row"),
        )
        .unwrap_err();
    assert_eq!(e, RerankError::NoRanker);
    assert!(e.to_string().contains("no contextual ranker"), "{e}");
}

fn ranker_part(m: &mut Manifest) -> &mut encore_core::weights::RankerPart {
    m.parts
        .iter_mut()
        .find_map(|p| match &mut p.kind {
            PartKind::Ranker(r) => Some(r),
            _ => None,
        })
        .expect("a ranker part")
}

#[test]
fn the_bundle_round_trips_and_refuses_a_ranker_of_another_model_or_a_bad_part() {
    let _alone = one_test_at_a_time();
    let s = setup();
    let history = &s.train[3].events;
    let candidates = s.candidates(25);
    let request = RerankRequest::on(encore_core::Surface::Search);
    let context = RankContext::task("search").with_query(s.query(2));
    let want = by_item(
        &s.reranker
            .rerank_in_context(history, &candidates, &request, &context)
            .unwrap(),
    );
    // Re-encoding keeps the ranker part: the same scores.
    let again = requantize(&s.fixture.bytes, Quantization::F32).unwrap();
    let back = Reranker::from_bytes(&again, &Device::flex()).unwrap();
    assert_eq!(back.ranker_tasks(), s.reranker.ranker_tasks());
    let got = by_item(
        &back
            .rerank_in_context(history, &candidates, &request, &context)
            .unwrap(),
    );
    assert_pairwise(
        "re-encoded",
        &[("original", want.clone()), ("re-encoded", got)],
        &candidates,
    );
    // int8: the ranker's matrices stored as int8 rows too; the probe still matches.
    let int8 = requantize(&s.fixture.bytes, Quantization::Int8).unwrap();
    assert!(int8.len() < s.fixture.bytes.len());
    let small = Reranker::from_bytes(&int8, &Device::flex()).unwrap();
    let q = by_item(
        &small
            .rerank_in_context(history, &candidates, &request, &context)
            .unwrap(),
    );
    let range = want.values().fold(0f32, |m, v| m.max(v.abs()));
    for c in &candidates {
        assert!(
            (q[c] - want[c]).abs() < 0.05 * range,
            "int8 item {c}: {} vs {}",
            q[c],
            want[c]
        );
    }
    // The same ranker part on a model drawn with another seed (same shape and catalog).
    let other = ranker_fixture(&s.world, 22);
    let foreign = {
        let loaded = load_model(&other.base, &Device::flex()).unwrap();
        let mut with = loaded;
        with.ranker = Some(s.fixture.ranker.clone());
        with.to_bundle(&[], Quantization::F32)
    };
    let e = Reranker::from_bytes(&foreign, &Device::flex()).unwrap_err();
    assert!(
        matches!(e, WeightFileError::RankerOnAnotherModel { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("trained on another foundation model"),
        "{e}"
    );
    // A vocabulary that does not describe the model's titles.
    let short = edited_bundle(&s.fixture.bytes, |m| {
        ranker_part(m).vocabulary.titles.pop();
    });
    let e = Reranker::from_bytes(&short, &Device::flex()).unwrap_err();
    assert!(
        e.to_string().contains("ranker") && e.to_string().contains("item rows"),
        "{e}"
    );
    // A probe of the wrong width, a default α out of range, a shape its bytes cannot hold.
    let probe = edited_bundle(&s.fixture.bytes, |m| ranker_part(m).probe.push(0.0));
    assert!(
        Reranker::from_bytes(&probe, &Device::flex())
            .unwrap_err()
            .to_string()
            .contains("probe")
    );
    let alpha = edited_bundle(&s.fixture.bytes, |m| {
        ranker_part(m).vocabulary.default_alpha[0] = 2.0
    });
    assert!(
        Reranker::from_bytes(&alpha, &Device::flex())
            .unwrap_err()
            .to_string()
            .contains("alpha")
    );
    let huge = edited_bundle(&s.fixture.bytes, |m| ranker_part(m).config.d_hidden = 4096);
    let e = Reranker::from_bytes(&huge, &Device::flex()).unwrap_err();
    assert!(e.to_string().contains("ranker"), "{e}");
    let wide = edited_bundle(&s.fixture.bytes, |m| ranker_part(m).config.d_item = 8);
    let e = Reranker::from_bytes(&wide, &Device::flex()).unwrap_err();
    assert!(e.to_string().contains("width"), "{e}");
}

#[test]
fn home_rows_from_the_model_are_its_top_titles_at_the_time() {
    let _alone = one_test_at_a_time();
    use encore_core::data::impressions::{ImpressionConfig, generate_impressions};
    let s = setup();
    let events: Vec<encore_core::Event> = s
        .train
        .iter()
        .flat_map(|h| h.events.iter().cloned())
        .collect();
    let cfg = ImpressionConfig {
        row_share: 0.5,
        ..ImpressionConfig::default()
    };
    let mut all = generate_impressions(&s.world.catalog, &events, &cfg).impressions;
    all.truncate(400);
    let (rows, others) = all.iter().partition::<Vec<_>, _>(|r| r.task == "home_row");
    assert!(!rows.is_empty() && !others.is_empty());
    let base = Reranker::from_bytes(&s.fixture.base, &Device::flex()).unwrap();
    let out = encore::ranking::model_rows(&base, &s.train, all.clone(), 25).unwrap();
    // Other tasks pass unchanged; home rows are kept only with their engaged title in the top.
    let kept_others: Vec<_> = out.iter().filter(|r| r.task != "home_row").collect();
    assert_eq!(kept_others.len(), others.len());
    let new_rows: Vec<_> = out.iter().filter(|r| r.task == "home_row").collect();
    assert!(
        !new_rows.is_empty() && new_rows.len() <= rows.len(),
        "{} of {}",
        new_rows.len(),
        rows.len()
    );
    let ids = base.items().ids();
    for r in new_rows.iter().take(20) {
        assert_eq!(r.candidates.len(), 25);
        assert!(r.engaged.iter().all(|e| r.candidates.contains(e)));
        // The model's scores at the time: every listed title scores at least every other.
        let h = s.train.iter().find(|h| h.member == r.member).unwrap();
        let before = &h.events[..h.events.partition_point(|e| e.timestamp < r.timestamp)];
        let request = RerankRequest {
            timestamp: Some(r.timestamp),
            device: r.device,
            country: r.country.clone(),
            ..RerankRequest::on(r.surface.unwrap_or(encore_core::Surface::Home))
        };
        let scores = base.score_catalog(&[(before, request)]).unwrap().remove(0);
        let listed = |id: &u32| r.candidates.contains(id);
        let lowest_listed = ids
            .iter()
            .zip(&scores)
            .filter(|(i, _)| listed(i))
            .map(|(_, s)| *s)
            .fold(f32::MAX, f32::min);
        let best_other = ids
            .iter()
            .zip(&scores)
            .filter(|(i, _)| !listed(i))
            .map(|(_, s)| *s)
            .fold(f32::MIN, f32::max);
        assert!(
            lowest_listed >= best_other,
            "{lowest_listed} < {best_other}"
        );
    }
}

/// Titles the bundle lacks, pushed with metadata (title name included), rank in context as the
/// training side ranks them: one is a bundled title's copy under a new id with its int8 vector
/// (it scores as that title's row with its vector dequantized and no plays), one a new title
/// embedded from its metadata. Stateless and in a session alike; bundled candidates keep their
/// scores; a described candidate without a title name, without a content encoder, or with an
/// overlong name is refused by position.
#[test]
fn titles_the_bundle_lacks_rank_in_context_from_their_metadata() {
    use encore_core::ranker::features::POPULARITY_COLUMN;
    use encore_core::ranker::{DescribedRankedTitles, RankedTitle};
    use encore_core::runtime::{Candidate, PushedVector};
    use encore_core::serving::MetadataError;
    let _alone = one_test_at_a_time();
    let s = setup();
    let world = &s.world;
    let reranker = Reranker::from_bytes(&s.fixture.bytes, &Device::flex())
        .unwrap()
        .with_content_encoder(fixture_content_encoder(world));
    let history = &s.train[0].events;
    let bundled = s.candidates(30);
    let copied = bundled[3];
    let context = RankContext::task("search")
        .with_query(s.query(3))
        .with_alpha(0.75);
    let request = RerankRequest::on(encore_core::Surface::Search);
    let base = Reranker::from_bytes(&s.fixture.base, &Device::flex()).unwrap();
    let items = base.item_vectors().unwrap();
    let (d, n) = (16, base.items().len());
    let copied_row = base.items().index_of(copied).unwrap();
    let int8 = PushedVector::quantize(&items[copied_row * d..(copied_row + 1) * d]);
    let fresh = encore_core::TitleMetadata {
        title: Some("Zebra Crossing".into()),
        ..world.catalog.metadata(bundled[5]).unwrap()
    };
    let max_id = world.catalog.ids().into_iter().max().unwrap();
    let (copy_id, fresh_id) = (max_id + 1, max_id + 2);
    let mut pushed: Vec<Candidate> = bundled.iter().map(|&c| Candidate::known(c)).collect();
    pushed.insert(
        7,
        Candidate {
            id: copy_id,
            metadata: world.catalog.metadata(copied),
            vector: Some(int8.clone()),
        },
    );
    pushed.push(Candidate::with_metadata(fresh_id, fresh.clone()));

    // The training side: the copy is the copied title's vocabulary row, patched where a pushed
    // title differs (its dequantized vector, no plays); the fresh title is described.
    let user = base
        .user_representations(&[(history, request.clone())])
        .unwrap()
        .remove(0);
    let bundle = &s.fixture.ranker;
    let v = &bundle.vocabulary;
    let tokens = request.context(history);
    let filled = RankContext {
        surface: Some(tokens.surface),
        device: Some(tokens.device),
        country: Some(tokens.country.clone()),
        ..context.clone()
    };
    let index = v.title_index();
    let mut features = v
        .request(
            &filled,
            base.items(),
            &index,
            bundle.config.query_buckets,
            tokens.timestamp,
        )
        .unwrap();
    let described = DescribedRankedTitles {
        titles: vec![RankedTitle::described(&fresh, &world.catalog.genres)],
        vectors: reranker.title_vector(&fresh).unwrap().unwrap(),
    };
    features.describe_lexical(&index, context.query.as_deref(), &described.titles);
    let mut rows_of: Vec<usize> = bundled
        .iter()
        .map(|&c| base.items().index_of(c).unwrap())
        .collect();
    rows_of.extend([copied_row, n]);
    let mut rows = RankerRows::default();
    v.push_rows_with(
        &mut rows,
        &features,
        &rows_of,
        &items,
        &described,
        &user,
        |_| false,
    );
    let copy = bundled.len();
    let dequantized: Vec<f32> = int8.dequantized().collect();
    rows.candidate[copy * d..(copy + 1) * d].copy_from_slice(&dequantized);
    rows.fm_score[copy] = dequantized.iter().zip(&user).map(|(a, b)| a * b).sum();
    let width = rows.dense.len() / rows.len();
    let popular = rows.dense[(copy + 1) * width - POPULARITY_COLUMN];
    assert!(popular > 0.0, "the copied title has plays");
    rows.dense[(copy + 1) * width - POPULARITY_COLUMN] = 0.0;
    let logits = training_logits(bundle, &rows);
    let mut ids = bundled.clone();
    ids.extend([copy_id, fresh_id]);
    let training: ByItem = ids.iter().copied().zip(logits).collect();

    let stateless = reranker
        .rerank_pushed_in_context(history, &pushed, &[], &request, &context)
        .unwrap();
    let mut session = MemberSession::new(history.clone()).unwrap();
    let in_session = reranker
        .rerank_session_pushed_in_context(&mut session, &pushed, &[], &request, &context)
        .unwrap();
    // A new query on the same session encodes the request token alone.
    let other = RankContext::task("search").with_query(s.query(5));
    let again = reranker
        .rerank_session_pushed_in_context(&mut session, &pushed, &[], &request, &other)
        .unwrap();
    assert_eq!(session.last_encoded_tokens(), 1);
    let fresh_call = reranker
        .rerank_pushed_in_context(history, &pushed, &[], &request, &other)
        .unwrap();
    assert_pairwise(
        "new query",
        &[
            ("session", by_item(&again)),
            ("stateless", by_item(&fresh_call)),
        ],
        &ids,
    );
    // Bundled candidates score as a call of them alone would (the pushed ones do not match
    // the query better than the best bundled one, so the lexical scale is the same).
    let alone = reranker
        .rerank_in_context(history, &bundled, &request, &context)
        .unwrap();
    let alone = by_item(&alone);
    let plain: ByItem = bundled
        .iter()
        .map(|c| (*c, by_item(&stateless)[c]))
        .collect();
    assert_pairwise(
        "bundled",
        &[("pushed call", plain), ("id call", alone)],
        &bundled,
    );
    assert_pairwise(
        "pushed in context",
        &[
            ("stateless", by_item(&stateless)),
            ("session", by_item(&in_session)),
            ("training", training),
        ],
        &ids,
    );
    // The copy scores apart from its original (no plays, int8 vector), and the new title has
    // its own score.
    let scores = by_item(&stateless);
    assert!((scores[&copy_id] - scores[&copied]).abs() > 1e-6);

    // Refusals, by position and id.
    let call = |r: &Reranker, list: &[Candidate]| {
        r.rerank_pushed_in_context(history, list, &[], &request, &context)
            .unwrap_err()
    };
    // Without a content encoder: the new title cannot be embedded, and the copy (which
    // brings its vector) cannot have its genres read.
    assert_eq!(
        call(&s.reranker, &pushed),
        RerankError::NoContentEncoder {
            position: pushed.len() - 1,
            item: fresh_id
        }
    );
    assert_eq!(
        call(&s.reranker, &pushed[..pushed.len() - 1]),
        RerankError::NoContentEncoder {
            position: 7,
            item: copy_id
        }
    );
    let mut untitled = pushed.clone();
    untitled[7].metadata.as_mut().unwrap().title = None;
    assert_eq!(
        call(&reranker, &untitled),
        RerankError::RankerNeedsTitle {
            position: 7,
            item: copy_id
        }
    );
    untitled[7].metadata = None;
    let e = call(&reranker, &untitled);
    assert_eq!(
        e,
        RerankError::RankerNeedsTitle {
            position: 7,
            item: copy_id
        }
    );
    assert!(
        e.to_string()
            .contains("needs its metadata with a title name"),
        "{e}"
    );
    let mut long = pushed.clone();
    long.last_mut().unwrap().metadata.as_mut().unwrap().title = Some("x".repeat(2000));
    assert_eq!(
        call(&reranker, &long),
        RerankError::InvalidMetadata {
            position: pushed.len() - 1,
            item: fresh_id,
            source: MetadataError::TitleTooLong { bytes: 2000 },
        }
    );
}

#[test]
fn the_serving_ranker_read_from_the_bundle_equals_the_loaded_rankers() {
    use burn::store::ModuleSnapshot;
    use encore_core::weights::{
        WeightFile, expected_ranker_tensors, load_ranker, load_serving_ranker,
    };
    let _alone = one_test_at_a_time();
    let world = small_world();
    let fixture = ranker_fixture(&world, 21);
    // The tensor list the serving load reads equals the module's own, name and shape, for
    // shapes with and without cross layers, MLP blocks, context fields and dense features.
    let base = fixture.ranker.config.clone();
    let shapes = [
        base.clone(),
        base.clone().with_n_cross(3).with_n_mlp(0),
        encore_core::ranker::RankerConfig {
            context_fields: Vec::new(),
            n_dense: 0,
            n_cross: 0,
            ..base.clone()
        },
    ];
    for config in &shapes {
        let module: Vec<(String, Vec<usize>)> = config
            .init(&Device::flex())
            .collect(None, None, false)
            .into_iter()
            .map(|t| {
                let (name, _, shape, _, _) = t.into_parts().unwrap();
                (name, shape.to_vec())
            })
            .collect();
        assert_eq!(expected_ranker_tensors(config), module, "{config:?}");
    }
    // Read from the bundle, in f32 and in int8: the same weights as the loaded ranker's.
    for quantization in [Quantization::F32, Quantization::Int8] {
        let bytes = requantize(&fixture.bytes, quantization).unwrap();
        let file = WeightFile::decode(&bytes).unwrap();
        let config = file.foundation_model().unwrap().config.clone();
        let served = load_serving_ranker(&file, &config).unwrap().unwrap();
        let loaded = load_ranker(&file, &config).unwrap().unwrap().to_serving();
        assert_eq!(served.weights, loaded.weights, "{quantization:?}");
        assert_eq!(served.probe, loaded.probe);
        assert_eq!(
            served.vocabulary.tasks, loaded.vocabulary.tasks,
            "{quantization:?}"
        );
        assert!(served.weights.parameter_count() > 0);
    }
}
