//! End to end in the browser: a model trained natively, exported, reranking the same inputs in
//! headless Chromium on WebGPU and on the CPU backend, agreeing with native to 1e-4; and the
//! CPU-only package doing the same without a WebGPU backend.
//!
//! Needs the wasm package (`bash wasm/build.sh`), Debian's chromium and
//! `npm ci --prefix tests/browser`; `.ci/run` does all three. Set `ENCORE_SKIP_BROWSER=1` to
//! skip it explicitly.

use burn::tensor::Device;
use encore::browser_fixture;
use encore_core::data::split::group_by_member;
use encore_core::model::{NamedPromptSet, PromptForm, PromptSetConfig};
use encore_core::ranker::RankContext;
use encore_core::runtime::Candidate;
use encore_core::weights::{Quantization, load_model, requantize, retain_items, save_bundle};
use encore_core::{DeviceType, RerankRequest, Reranker, Surface};
use encore_tests::{
    browser_prerequisites, fixture_content_encoder, native_cases, ranker_fixture,
    run_browser_script, small_world, temp_dir, tiny_weight_file,
};

/// Inputs and native results the page is checked against.
struct Fixture {
    dir: std::path::PathBuf,
    cases: Vec<browser_fixture::BrowserCase>,
    int8_native: Vec<f32>,
    /// Native results for `pushed.encore` (the model without some titles) with those titles
    /// pushed with metadata: ids and scores, best first.
    pushed_native: (Vec<u32>, Vec<f32>),
    /// The withheld titles (pushed by id alone they are refused).
    withheld: Vec<u32>,
    /// Native scores (best first) when the history also holds a withheld title.
    watched_native: Vec<f32>,
    /// Native ranking (ids and scores, best first) when the history holds a withheld title
    /// that no candidate describes, described by the call's history titles instead.
    history_titles_native: (Vec<u32>, Vec<f32>),
    /// Native rankings of `prompts.encore` per name of `prompts.json` (ids and scores, best
    /// first), and the tokens a session switching to each encodes.
    prompt_native: Vec<(Vec<u32>, Vec<f32>, usize)>,
    /// Native rankings for a member without history under `kids`, then `partner_row`
    /// (ids and scores, best first).
    prompt_new_profile: Vec<(Vec<u32>, Vec<f32>)>,
    /// Native contextual rankings of `ranker.encore` per call of `ranker.json` (ids and scores,
    /// best first).
    ranker_native: Vec<(Vec<u32>, Vec<f32>)>,
}

/// Writes the weight files (f32 and int8) and cases, each with the native reranker's answer.
fn fixture(name: &str) -> Fixture {
    let world = small_world();
    let weights = tiny_weight_file(&world, 1);
    let native = Reranker::from_bytes(&weights, &Device::flex()).unwrap();
    let histories = group_by_member(&world.events);
    let long = histories.iter().max_by_key(|h| h.events.len()).unwrap();
    let ids = world.catalog.ids();
    let cases = native_cases(
        &world,
        &native,
        &[
            (1, Surface::Home, 10),
            (12, Surface::Kids, 40),
            (50, Surface::Search, 100),
        ],
        DeviceType::Mobile,
        "DE",
    );
    let dir = temp_dir(name);
    browser_fixture::write(&dir, &weights, &cases).unwrap();
    let int8_weights = requantize(&weights, Quantization::Int8).unwrap();
    std::fs::write(dir.join("model-int8.encore"), &int8_weights).unwrap();
    let last = cases.last().unwrap();
    let int8_native = Reranker::from_bytes(&int8_weights, &Device::flex())
        .unwrap()
        .rerank(
            &long.events[long.events.len() - 50..],
            &last.candidates,
            &RerankRequest {
                surface: Surface::Search,
                timestamp: Some(long.events.last().unwrap().timestamp + 600),
                device: Some(DeviceType::Mobile),
                country: Some("DE".into()),
                prompt: None,
            },
        )
        .unwrap()
        .iter()
        .map(|s| s.score)
        .collect();
    // The model as exported before five titles joined the catalog; the page pushes them with
    // their metadata (as JSON objects) among plain ids.
    let withheld: Vec<u32> = ids.iter().rev().take(10).step_by(2).copied().collect();
    let loaded = load_model(&weights, &Device::flex()).unwrap();
    let before = retain_items(loaded, |id| !withheld.contains(&id));
    let pushed_weights = save_bundle(
        &before.model,
        &before.config,
        before.items.ids(),
        before.content_encoder.as_ref(),
        Quantization::F32,
    );
    let pushed = Reranker::from_bytes(&pushed_weights, &Device::flex()).unwrap();
    let history = &long.events[long.events.len() - 12..];
    let request = RerankRequest {
        surface: Surface::Home,
        timestamp: Some(history.last().unwrap().timestamp + 600),
        device: Some(DeviceType::Web),
        country: Some("DE".into()),
        prompt: None,
    };
    let candidates: Vec<Candidate> = ids
        .iter()
        .rev()
        .take(30)
        .map(|&id| match withheld.contains(&id) {
            true => Candidate::with_metadata(id, world.catalog.metadata(id).unwrap()),
            false => Candidate::known(id),
        })
        .collect();
    let ranked = pushed
        .rerank_pushed(history, &candidates, &request)
        .unwrap();
    // The member then watched a withheld title: the call's description of it embeds it.
    let mut watched = history.to_vec();
    let mut event = watched.last().unwrap().clone();
    event.item = withheld[0];
    event.timestamp += 60;
    watched.push(event);
    let ranked_watched = pushed
        .rerank_pushed(&watched, &candidates, &request)
        .unwrap();
    // The watched title described by the call's history titles, not among the candidates.
    let others: Vec<Candidate> = candidates
        .iter()
        .filter(|c| c.id != withheld[0])
        .cloned()
        .collect();
    let watched_title =
        Candidate::with_metadata(withheld[0], world.catalog.metadata(withheld[0]).unwrap());
    let ranked_titles = pushed
        .rerank_pushed_with_history(
            &watched,
            &others,
            std::slice::from_ref(&watched_title),
            &request,
        )
        .unwrap();
    let js_title = |c: &Candidate| match &c.metadata {
        None => serde_json::json!(c.id),
        Some(m) => serde_json::json!({
            "id": c.id, "genres": m.genres, "kind": m.kind.name(), "language": m.language,
            "release_year": m.release_year, "added_at": m.added_at,
        }),
    };
    let js_candidates: Vec<serde_json::Value> = candidates.iter().map(js_title).collect();
    std::fs::write(dir.join("pushed.encore"), &pushed_weights).unwrap();
    let case = serde_json::json!({
        "events": history.iter().map(browser_fixture::js_event).collect::<Vec<_>>(),
        "candidates": js_candidates,
        "surface": "home",
        "options": { "timestamp": request.timestamp, "device": "web", "country": "DE" },
        "withheld": withheld,
        "watchedEvents": watched.iter().map(browser_fixture::js_event).collect::<Vec<_>>(),
        "otherCandidates": others.iter().map(js_title).collect::<Vec<_>>(),
        "watchedTitle": js_title(&watched_title),
    });
    std::fs::write(dir.join("pushed.json"), serde_json::to_vec(&case).unwrap()).unwrap();
    let (prompt_native, prompt_new_profile) = prompt_fixture(&dir, &weights, history, &ids);
    let ranker_native = contextual_fixture(&dir, &world);
    Fixture {
        dir,
        cases,
        int8_native,
        pushed_native: (
            ranked.iter().map(|s| s.item).collect(),
            ranked.iter().map(|s| s.score).collect(),
        ),
        watched_native: ranked_watched.iter().map(|s| s.score).collect(),
        history_titles_native: (
            ranked_titles.iter().map(|s| s.item).collect(),
            ranked_titles.iter().map(|s| s.score).collect(),
        ),
        withheld,
        prompt_native,
        prompt_new_profile,
        ranker_native,
    }
}

/// Writes `ranker.encore` (a model with a contextual ranker over the world's titles) and
/// `ranker.json` (a history, candidates and the calls a page makes in turn: a search, the same
/// search at α = 0, another query, a "more like this" page, a home row); returns the native
/// answer per call.
fn contextual_fixture(
    dir: &std::path::Path,
    world: &encore_core::SyntheticWorld,
) -> Vec<(Vec<u32>, Vec<f32>)> {
    let fixture = ranker_fixture(world, 21);
    // With a content encoder, so that a title the bundle lacks can be pushed in context.
    let mut loaded = encore_core::weights::load_model(&fixture.bytes, &Device::flex()).unwrap();
    loaded.content_encoder = Some(fixture_content_encoder(world));
    let bytes = loaded.to_bundle(&[], encore_core::weights::Quantization::F32);
    std::fs::write(dir.join("ranker.encore"), &bytes).unwrap();
    let native = Reranker::from_bytes(&bytes, &Device::flex()).unwrap();
    let histories = group_by_member(&world.events);
    let history = &histories[4].events;
    let candidates: Vec<u32> = world.catalog.ids().into_iter().take(35).collect();
    let title = |k: usize| world.catalog.get(candidates[k]).unwrap().title.clone();
    let query: String = title(4).chars().take(6).collect();
    let other: String = title(9).chars().take(4).collect();
    let timestamp = history.last().unwrap().timestamp + 900;
    let calls = [
        RankContext::task("search")
            .with_query(query.clone())
            .with_alpha(1.0),
        RankContext::task("search")
            .with_query(query)
            .with_alpha(0.0),
        RankContext::task("search").with_query(other),
        RankContext::task("more_like_this")
            .with_source(candidates[2])
            .with_alpha(0.5),
        RankContext::task("home_row"),
    ];
    let request = RerankRequest {
        timestamp: Some(timestamp),
        device: Some(DeviceType::Tv),
        country: Some("FR".into()),
        ..RerankRequest::on(Surface::Search)
    };
    let mut native_out: Vec<(Vec<u32>, Vec<f32>)> = calls
        .iter()
        .map(|ctx| {
            let ranked = native
                .rerank_in_context(history, &candidates, &request, ctx)
                .unwrap();
            (
                ranked.iter().map(|s| s.item).collect(),
                ranked.iter().map(|s| s.score).collect(),
            )
        })
        .collect();
    // The first search again, with a title the bundle lacks pushed with its metadata first.
    let new_title = encore_core::TitleMetadata {
        title: Some(format!("{} Returns", title(4))),
        ..world.catalog.metadata(candidates[4]).unwrap()
    };
    let mut pushed = vec![encore_core::runtime::Candidate::with_metadata(
        999_999,
        new_title.clone(),
    )];
    pushed.extend(
        candidates
            .iter()
            .map(|&c| encore_core::runtime::Candidate::known(c)),
    );
    let ranked = native
        .rerank_pushed_in_context(history, &pushed, &[], &request, &calls[0])
        .unwrap();
    native_out.push((
        ranked.iter().map(|s| s.item).collect(),
        ranked.iter().map(|s| s.score).collect(),
    ));
    let js_title = serde_json::json!({
        "id": 999_999, "title": new_title.title, "genres": new_title.genres,
        "kind": new_title.kind.name(), "language": new_title.language,
        "release_year": new_title.release_year, "added_at": new_title.added_at,
    });
    let options: Vec<serde_json::Value> = calls
        .iter()
        .map(|c| {
            let mut o = serde_json::json!({
                "timestamp": timestamp, "device": "tv", "country": "FR", "task": c.task,
            });
            if let Some(q) = &c.query {
                o["query"] = q.clone().into();
            }
            if let Some(a) = c.alpha {
                o["alpha"] = a.into();
            }
            if let Some(s) = c.source {
                o["source"] = s.into();
            }
            o
        })
        .collect();
    let case = serde_json::json!({
        "events": history.iter().map(browser_fixture::js_event).collect::<Vec<_>>(),
        "candidates": candidates,
        "surface": "search",
        "calls": options,
        "pushedTitle": js_title,
    });
    std::fs::write(dir.join("ranker.json"), serde_json::to_vec(&case).unwrap()).unwrap();
    native_out
}

/// The page's ranker section: on every backend the contextual reranks (stateless and in a
/// session, which encodes the request token alone after its first call) equal native's, an α
/// change moves the search's order, the tasks are listed, and bad contexts are refused by name.
fn assert_ranker(out: &serde_json::Value, fx: &Fixture, backends: &[&str]) {
    let r = &out["ranker"];
    for backend in backends {
        let b = &r["backends"][backend];
        assert_eq!(b["backend"], *backend, "ranker on {backend}: {b}");
        assert_eq!(
            b["rankerTasks"],
            serde_json::json!(["search", "home_row", "more_like_this"]),
            "{backend}"
        );
        for run in ["stateless", "session"] {
            let calls = fx.ranker_native.len() - 1;
            for (k, (items, scores)) in fx.ranker_native[..calls].iter().enumerate() {
                let got = &b[run][k];
                let what = format!("ranker on {backend}, {run}, call {k}");
                assert_native_ranking(&what, got, items, scores);
                if run == "session" && k > 0 {
                    assert_eq!(
                        got["encoded"], 1,
                        "{what}: a new context encodes the request alone"
                    );
                }
            }
        }
    }
    // The α change (calls 0 and 1: the same search at α = 1 and α = 0) moves the order.
    assert_ne!(
        fx.ranker_native[0].0, fx.ranker_native[1].0,
        "α does not move the ranking"
    );
    let rej = &r["rejections"];
    let has = |k: &str, m: &str| {
        let msg = rej[k].as_str().unwrap_or_default();
        assert!(msg.contains(m), "ranker, {k}: {msg:?} lacks {m:?}");
    };
    has("unknownTask", "unknown ranker task \"kids\"");
    has("emptyQuery", "holds no word");
    has("longQuery", "at most 256");
    has("nanAlpha", "alpha NaN is not in [0, 1]");
    has("badAlpha", "alpha 2 is not in [0, 1]");
    has("unknownSource", "source title 999999 is not in the bundle");
    has(
        "queryWithoutTask",
        "query is read by the contextual ranker and needs a task",
    );
    // A title the bundle lacks, pushed with its metadata into a search, stateless and in a
    // session, as native ranks it; without its name it is refused.
    let (items, scores) = fx.ranker_native.last().unwrap();
    assert!(items.contains(&999_999));
    for (backend, b) in r["backends"].as_object().unwrap() {
        for run in ["pushed", "pushedSession"] {
            let got = &b[run];
            assert_native_ranking(&format!("ranker {run} on {backend}"), got, items, scores);
        }
    }
    has("pushedWithoutTitle", "needs its metadata with a title name");
    has("noRanker", "no contextual ranker");
}

/// Writes `prompts.encore` (the model with a `kids` input-form prompt of 2 vectors and a
/// `partner_row` deep-form one of 3) and `prompts.json` (a history, candidates and the names a
/// page selects in turn, `home` among them, which has no prompt set and falls back to none);
/// returns the native answer per name and the tokens a session switching to it encodes, and
/// the native answers for a member without history under `kids` and `partner_row`.
#[allow(clippy::type_complexity)]
fn prompt_fixture(
    dir: &std::path::Path,
    weights: &[u8],
    history: &[encore_core::Event],
    ids: &[u32],
) -> (Vec<(Vec<u32>, Vec<f32>, usize)>, Vec<(Vec<u32>, Vec<f32>)>) {
    let device = Device::flex();
    device.seed(5);
    let loaded = load_model(weights, &device).unwrap();
    let (d, l) = (loaded.config.d_model, loaded.config.n_layers);
    let prompt = |form, length| {
        PromptSetConfig::new(form, d, l)
            .with_length(length)
            .with_init_std(1.0)
            .init(&device)
    };
    let prompts = vec![
        NamedPromptSet {
            name: "kids".into(),
            prompt: prompt(PromptForm::Input, 2),
        },
        NamedPromptSet {
            name: "partner_row".into(),
            prompt: prompt(PromptForm::Deep, 3),
        },
    ];
    let bytes = loaded.to_bundle(&prompts, Quantization::F32);
    std::fs::write(dir.join("prompts.encore"), &bytes).unwrap();
    let native = Reranker::from_bytes(&bytes, &device).unwrap();
    let names = ["kids", "partner_row", "home", "kids"];
    let candidates: Vec<u32> = ids.iter().take(25).copied().collect();
    let timestamp = history.last().unwrap().timestamp + 600;
    let mut out = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let request = RerankRequest {
            timestamp: Some(timestamp),
            device: Some(DeviceType::Tv),
            country: Some("FR".into()),
            ..native.request_named(name, true).unwrap()
        };
        let ranked = native.rerank(history, &candidates, &request).unwrap();
        // The first call encodes the history's tokens too; a switch, the prompt's tokens (the
        // input form's) and the request's.
        let prompt_tokens = match *name {
            "kids" => 2,
            _ => 0,
        };
        let history_tokens = if k == 0 { history.len() } else { 0 };
        out.push((
            ranked.iter().map(|s| s.item).collect(),
            ranked.iter().map(|s| s.score).collect(),
            history_tokens + prompt_tokens + 1,
        ));
    }
    let new_profile = ["kids", "partner_row"]
        .iter()
        .map(|name| {
            let request = RerankRequest {
                timestamp: Some(timestamp),
                device: Some(DeviceType::Tv),
                country: Some("FR".into()),
                ..native.request_named(name, false).unwrap()
            };
            let ranked = native.rerank(&[], &candidates, &request).unwrap();
            (
                ranked.iter().map(|s| s.item).collect(),
                ranked.iter().map(|s| s.score).collect(),
            )
        })
        .collect();
    let case = serde_json::json!({
        "events": history.iter().map(browser_fixture::js_event).collect::<Vec<_>>(),
        "candidates": candidates,
        "names": names,
        "options": { "timestamp": timestamp, "device": "tv", "country": "FR" },
    });
    std::fs::write(dir.join("prompts.json"), serde_json::to_vec(&case).unwrap()).unwrap();
    (out, new_profile)
}

/// The page's ranking `got` (`{items, scores}`) equals native's: the same order, as many
/// scores, each within 1e-4.
fn assert_native_ranking(what: &str, got: &serde_json::Value, items: &[u32], scores: &[f32]) {
    let got_items: Vec<u32> =
        serde_json::from_value(got["items"].clone()).unwrap_or_else(|_| panic!("{what}: {got}"));
    assert_eq!(got_items, items, "{what}: order differs from native");
    let got_scores: Vec<f32> = serde_json::from_value(got["scores"].clone()).unwrap();
    assert_eq!(got_scores.len(), scores.len(), "{what}");
    for (s, e) in got_scores.iter().zip(scores) {
        assert!((s - e).abs() <= 1e-4, "{what}: {s} vs native {e}");
    }
}

/// The page's prompt section: every backend's stateless and session rankings per name equal
/// native's, the session encodes the prompt's and the request's tokens alone at a switch (the
/// history stays cached), the prompt sets are listed, and bad names are refused by name.
fn assert_prompts(out: &serde_json::Value, fx: &Fixture, backends: &[&str]) {
    let p = &out["prompts"];
    for backend in backends {
        let b = &p["backends"][backend];
        assert_eq!(b["backend"], *backend, "prompts on {backend}: {b}");
        assert_eq!(
            b["promptSets"],
            serde_json::json!([
                { "name": "kids", "form": "input", "length": 2 },
                { "name": "partner_row", "form": "deep", "length": 3 },
            ]),
            "{backend}"
        );
        for run in ["stateless", "switched"] {
            for (k, (items, scores, encoded)) in fx.prompt_native.iter().enumerate() {
                let got = &b[run][k];
                let what = format!("prompts on {backend}, {run}, call {k}");
                assert_native_ranking(&what, got, items, scores);
                if run == "switched" {
                    assert_eq!(got["encoded"], *encoded, "{what}: tokens encoded");
                    assert_eq!(got["cached"], 12, "{what}: the history stays cached");
                }
            }
        }
        // A member without history: `kids`, `partner_row` stateless, then `kids` in a session
        // opened on no events.
        let expected = [0, 1, 0].map(|k| &fx.prompt_new_profile[k]);
        for (k, (items, scores)) in expected.into_iter().enumerate() {
            let got = &b["newProfile"][k];
            let what = format!("prompts on {backend}, no history, call {k}");
            assert_native_ranking(&what, got, items, scores);
        }
    }
    let rej = &p["rejections"];
    let has = |k: &str, m: &str| {
        let msg = rej[k].as_str().unwrap_or_default();
        assert!(msg.contains(m), "prompts, {k}: {msg:?} lacks {m:?}");
    };
    has(
        "unknown",
        "no prompt set named \"attic\" (this bundle has: [\"kids\", \"partner_row\"])",
    );
    has("noPromptSet", "no prompt set named \"home\"");
    has("noHistoryNoPrompt", "the member's history is empty");
    has("noHistoryNoTime", "its timestamp is needed");
    has("fallbackType", "promptFallback");
}

/// Runs the harness page on the package in `pkg` against `fx`.
fn run_page(pkg: &std::path::Path, fx: &Fixture) -> serde_json::Value {
    run_browser_script(
        "run.mjs",
        &[
            "--pkg",
            pkg.to_str().unwrap(),
            "--fixture",
            fx.dir.to_str().unwrap(),
        ],
    )
}

/// The page's results on `backend` equal native's order, with scores within 1e-4.
fn assert_backend_matches_native(
    out: &serde_json::Value,
    backend: &str,
    cases: &[browser_fixture::BrowserCase],
) {
    let b = &out["backends"][backend];
    assert_eq!(b["backend"], backend, "asked for {backend}: {b}");
    for (case, got) in cases.iter().zip(b["results"].as_array().unwrap()) {
        let items: Vec<u32> = serde_json::from_value(got["items"].clone()).unwrap();
        let scores: Vec<f32> = serde_json::from_value(got["scores"].clone()).unwrap();
        assert_eq!(
            items, case.expected_items,
            "{backend}: order differs from native"
        );
        for (s, e) in scores.iter().zip(&case.expected_scores) {
            assert!((s - e).abs() <= 1e-4, "{backend}: score {s} vs native {e}");
        }
    }
}

/// What both packages must do on the CPU backend: rejections, sessions, int8, no memory growth.
fn assert_cpu_page_behaviour(out: &serde_json::Value, fx: &Fixture) {
    let cases = &fx.cases;
    assert_backend_matches_native(out, "cpu", cases);
    let rej = &out["rejections"];
    let expect = [
        ("truncated", "checksum"),
        ("foreign", "not an Encore weight file"),
        ("empty", "shorter than the minimum"),
        ("badBackend", "unknown backend"),
        ("unknownCandidate", "4242424"),
        ("unknownHistoryItem", "4242424"),
        ("emptyHistory", "history is empty"),
        ("emptyCandidates", "candidate list is empty"),
        ("duplicateCandidate", "appears twice"),
        ("badSurface", "unknown surface"),
        ("nanTimestamp", "timestamp"),
        ("notAnArray", "events must be an array"),
        ("rerankOptionTypo", "options: unknown key \"contry\""),
        ("eventKeyTypo", "event 0: unknown key \"acton\""),
        ("columnsKeyTypo", "columns: unknown key \"duration\""),
        ("columnsLengths", "column timestamps has"),
        ("columnsMissing", "needs a timestamps column"),
        ("columnsBadItem", "event 3: item 1.5 is not an item id"),
        ("columnsNanTimestamp", "event 2: timestamp NaN"),
        ("columnsBadSurface", "unknown surface \"attic\""),
        ("columnsBadName", "column countries: entry 1 is not a name"),
        (
            "objectsBadItem",
            "event 3 must be an {item, timestamp, ...} object",
        ),
        (
            "objectsBadName",
            "event 2 must be an {item, timestamp, ...} object",
        ),
        (
            "objectsNotAnEvent",
            "event 1 must be an {item, timestamp, ...} object",
        ),
        (
            "windowStepZero",
            "windowStep must be a whole number from 1, not 0",
        ),
        ("windowStepFraction", "not 2.5"),
        ("loadOptionTypo", "windwStep"),
        ("overDecodedLimit", "over the caller's limit of 1000"),
        (
            "decodedLimitFraction",
            "maxDecodedBytes must be a whole number of bytes from 1, not 0.5",
        ),
    ];
    for (name, needle) in expect {
        let msg = rej[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} was not rejected: {rej}"));
        assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
    }
    for (name, needle) in [
        ("olderEvent", "older than the event before it"),
        ("badEvent", "event 12"),
        ("appendKeyTypo", "event 12: unknown key \"durration\""),
        ("sessionUnknownItem", "4242424"),
    ] {
        let msg = rej[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} was not rejected: {rej}"));
        assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
    }
    // A history passed as columns ranks exactly as the same history passed as objects.
    let columns = &out["columns"];
    assert_eq!(columns["columns"], columns["objects"], "columnar history");
    // A session keeps every layer's keys and values; a stateless forward skips the last
    // layer's, which changes the arithmetic's order: the same ranking, scores within 1e-4.
    let objects: (Vec<u32>, Vec<f32>) = (
        serde_json::from_value(columns["objects"]["items"].clone()).unwrap(),
        serde_json::from_value(columns["objects"]["scores"].clone()).unwrap(),
    );
    assert_native_ranking(
        "columnar session",
        &columns["session"],
        &objects.0,
        &objects.1,
    );
    assert_eq!(
        columns["bareNames"], columns["speltNames"],
        "absent names as their defaults"
    );
    assert!(
        columns["bareNames"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert_eq!(
        columns["plainArraysLength"].as_u64(),
        Some(cases[cases.len() - 1].candidates.len() as u64)
    );
    // The session's rerank after three appends equals the stateless one, from two new tokens.
    let session = &out["session"];
    let sc = &cases[1];
    assert_eq!(session["length"], 12);
    assert_eq!(session["lastEncodedTokens"], 2);
    let items: Vec<u32> = serde_json::from_value(session["items"].clone()).unwrap();
    let scores: Vec<f32> = serde_json::from_value(session["scores"].clone()).unwrap();
    assert_eq!(
        items, sc.expected_items,
        "session order differs from stateless"
    );
    for (s, e) in scores.iter().zip(&sc.expected_scores) {
        assert!((s - e).abs() <= 1e-4, "session score {s} vs {e}");
    }
    // After the refused unknown event is truncated away, the session ranks as before it.
    let recovered: Vec<u32> = serde_json::from_value(session["recoveredItems"].clone()).unwrap();
    assert_eq!(
        recovered, sc.expected_items,
        "session after truncating the unknown event"
    );
    // A window step: sessions still equal stateless reranks, and re-encode the window far
    // less often once the history outgrows it.
    let reencodes = |step: &str| {
        let ws = &out["windowStep"][step];
        let (a, b) = (&ws["session"], &ws["stateless"]);
        assert_eq!(a["items"], b["items"], "window step {step}: order");
        let scores = |v: &serde_json::Value| -> Vec<f32> {
            serde_json::from_value(v["scores"].clone()).unwrap()
        };
        for (s, e) in scores(a).iter().zip(scores(b)) {
            assert!((s - e).abs() <= 1e-4, "window step {step}: {s} vs {e}");
        }
        let encoded: Vec<u64> = serde_json::from_value(ws["encoded"].clone()).unwrap();
        encoded.iter().filter(|&&n| n > 2).count()
    };
    // A decoded-size limit the model fits in loads it whole.
    assert_eq!(out["loadedWithinLimit"], small_world().catalog.len());
    assert_eq!(out["windowStep"]["8"]["windowStep"], 8);
    let (every, stepped) = (reencodes("1"), reencodes("8"));
    assert!(
        every >= 5 && stepped <= 2,
        "re-encodes over ten appends: {every} with step 1, {stepped} with step 8"
    );
    // int8 weights load in the browser and score as they do natively.
    assert_eq!(out["quantization"], "f32");
    assert_eq!(out["int8"]["quantization"], "int8");
    let int8_scores: Vec<f32> = serde_json::from_value(out["int8"]["scores"].clone()).unwrap();
    for (s, e) in int8_scores.iter().zip(&fx.int8_native) {
        assert!(
            (s - e).abs() <= 1e-4,
            "int8 in the browser {s} vs natively {e}"
        );
    }
    // Titles the bundle has never seen, pushed as {id, genres, kind, ...} objects among ids:
    // the same order and scores as natively, statelessly and in a session; by id alone, or
    // with bad metadata, refused by position and name.
    let (items, scores) = &fx.pushed_native;
    assert!(fx.withheld.iter().all(|id| items.contains(id)));
    for run in ["stateless", "session"] {
        let got = &out["pushed"][run];
        let got_items: Vec<u32> = serde_json::from_value(got["items"].clone()).unwrap();
        let got_scores: Vec<f32> = serde_json::from_value(got["scores"].clone()).unwrap();
        assert_eq!(
            &got_items, items,
            "pushed titles, {run}: order differs from native"
        );
        for (s, e) in got_scores.iter().zip(scores) {
            assert!(
                (s - e).abs() <= 1e-4,
                "pushed titles, {run}: {s} vs native {e}"
            );
        }
    }
    let watched: Vec<f32> = serde_json::from_value(out["pushed"]["watched"].clone()).unwrap();
    assert_eq!(watched.len(), fx.watched_native.len());
    for (s, e) in watched.iter().zip(&fx.watched_native) {
        assert!(
            (s - e).abs() <= 1e-4,
            "history with a pushed title: {s} vs native {e}"
        );
    }
    assert_eq!(
        out["pushed"]["genres"],
        serde_json::json!(small_world().catalog.genres)
    );
    assert_eq!(out["pushed"]["contentDim"], 0);
    // A withheld title in the history described by `historyTitles` alone: the native
    // ranking, statelessly and in a session.
    let (items, scores) = &fx.history_titles_native;
    assert!(!items.contains(&fx.withheld[0]));
    for run in ["historyTitles", "historyTitlesSession"] {
        let got = &out["pushed"][run];
        let got_items: Vec<u32> = serde_json::from_value(got["items"].clone()).unwrap();
        let got_scores: Vec<f32> = serde_json::from_value(got["scores"].clone()).unwrap();
        assert_eq!(&got_items, items, "{run}: order differs from native");
        for (s, e) in got_scores.iter().zip(scores) {
            assert!((s - e).abs() <= 1e-4, "{run}: {s} vs native {e}");
        }
    }
    for (name, needle) in [
        ("pushedById", format!("unknown item id {}", fx.withheld[0])),
        (
            "pushedUnknownGenre",
            "unknown genre \"space-western\"".into(),
        ),
        ("pushedBadKind", "unknown kind \"opera\"".into()),
        ("pushedKeyTypo", "unknown key \"relase_year\"".into()),
        (
            "pushedMissingField",
            "a title needs {id, kind, language, added_at}".into(),
        ),
        (
            "pushedNotAnId",
            "candidate 1 must be an item id or a title object".into(),
        ),
        (
            "pushedContentWidth",
            "content vector of 3 values; the bundle's encoder reads 0".into(),
        ),
        (
            "historyTitleMissing",
            format!("unknown item id {}", fx.withheld[0]),
        ),
        (
            "historyTitleNotAnObject",
            "history title 1 must be a title object".into(),
        ),
        (
            "historyTitlesNotAnArray",
            "historyTitles must be an array".into(),
        ),
    ] {
        let msg = rej[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} was not rejected: {rej}"));
        assert!(msg.contains(&needle), "{name}: {msg:?} lacks {needle:?}");
    }
    assert_eq!(out["stillWorks"], true);
    assert_eq!(
        out["memoryGrowth"], 0,
        "10,000 reranks grew the wasm memory"
    );
}

#[test]
fn browser_reranks_like_native_on_webgpu_and_cpu() {
    let Some(pkg) = browser_prerequisites("browser test") else {
        return;
    };

    // wasm-ld wraps every export in a re-run of the static constructors unless the module
    // calls them itself (wasm/src/lib.rs does); the wrappers are named `*.command_export`.
    let wasm = std::fs::read(pkg.join("encore_wasm_bg.wasm")).unwrap();
    assert!(
        !wasm.windows(14).any(|w| w == b"command_export"),
        "exports are wrapped in constructor calls"
    );

    let fx = fixture("browser");
    let cases = &fx.cases;
    let out = run_page(&pkg, &fx);

    assert_eq!(
        out["navigatorGpu"], true,
        "Chromium exposed no WebGPU: {out}"
    );
    assert_eq!(out["webgpuBackend"], true);
    assert_backend_matches_native(&out, "webgpu", cases);
    // "auto" times a warm-up rerank on both backends and keeps the faster one, saying why.
    let auto = &out["auto"];
    let reason = auto["reason"].as_str().unwrap();
    let expected_start = match auto["backend"].as_str().unwrap() {
        "webgpu" => "WebGPU is faster here",
        "cpu" => "CPU is faster here",
        other => panic!("auto chose {other}"),
    };
    assert!(
        reason.starts_with(expected_start)
            && reason.contains("ms on WebGPU")
            && reason.contains("ms on CPU"),
        "{reason}"
    );
    assert_eq!(auto["items"], serde_json::json!(cases[0].expected_items));
    assert_eq!(out["kernel"].as_array().unwrap().len(), 6, "{out}");
    for k in out["kernel"].as_array().unwrap() {
        let err = k["maxError"].as_f64().unwrap();
        assert!(
            err <= 1e-4,
            "WGSL transformer in the browser vs the CPU forward: {k}"
        );
    }
    assert_cpu_page_behaviour(&out, &fx);
    assert_prompts(&out, &fx, &["webgpu", "cpu"]);
    assert_ranker(&out, &fx, &["webgpu", "cpu"]);
    std::fs::remove_dir_all(&fx.dir).unwrap();
}

/// The CPU-only package (`target/wasm-pkg/cpu`): the same answers on the CPU backend, WebGPU
/// refused by name, `auto` settling on the CPU and saying why, and a smaller download.
#[test]
fn cpu_only_package_reranks_like_native_without_the_gpu_stack() {
    let Some(pkg) = browser_prerequisites("CPU-only package test") else {
        return;
    };
    let cpu_pkg = pkg.join("cpu");
    let module = |p: &std::path::Path| {
        std::fs::metadata(p.join("encore_wasm_bg.wasm"))
            .unwrap()
            .len()
    };
    // The WebGPU path is Encore's WGSL transformer on wgpu, not burn's GPU stack: it adds
    // little to the CPU runtime, and both together stay far inside the 1.5 MB gzipped budget
    // (≈ 4.5× compression; BENCHMARKS.md has the gzipped sizes).
    assert!(
        module(&cpu_pkg) < module(&pkg) && module(&pkg) < 3 * 1024 * 1024,
        "CPU-only module {} bytes, full module {} bytes (both backends: under 3 MiB)",
        module(&cpu_pkg),
        module(&pkg)
    );
    let fx = fixture("browser-cpu");
    let out = run_page(&cpu_pkg, &fx);
    assert_eq!(out["webgpuBackend"], false, "{out}");
    let refused = out["backends"]["webgpu"]["rejected"]
        .as_str()
        .unwrap_or_default();
    assert!(refused.contains("CPU-only package"), "{refused:?}");
    assert_eq!(out["auto"]["backend"], "cpu");
    let reason = out["auto"]["reason"].as_str().unwrap();
    assert!(reason.contains("CPU-only package"), "{reason}");
    assert_eq!(
        out["auto"]["items"],
        serde_json::json!(fx.cases[0].expected_items)
    );
    assert!(out["kernel"].as_array().unwrap().is_empty());
    assert_cpu_page_behaviour(&out, &fx);
    assert_prompts(&out, &fx, &["cpu"]);
    assert_ranker(&out, &fx, &["cpu"]);
    std::fs::remove_dir_all(&fx.dir).unwrap();
}

/// A page's ranking `got` equals native's for `case`: the same order, scores within 1e-4.
fn assert_native(what: &str, got: &serde_json::Value, case: &browser_fixture::BrowserCase) {
    let items: Vec<u32> = serde_json::from_value(got["items"].clone())
        .unwrap_or_else(|_| panic!("{what}: no ranking in {got}"));
    let scores: Vec<f32> = serde_json::from_value(got["scores"].clone()).unwrap();
    assert_eq!(
        items, case.expected_items,
        "{what}: order differs from native"
    );
    for (s, e) in scores.iter().zip(&case.expected_scores) {
        assert!((s - e).abs() <= 1e-4, "{what}: score {s} vs native {e}");
    }
}

/// Faults and load in the browser (`window.runFaults`): the WebGPU device destroyed under a
/// reranker and a session (the next rerank runs on the CPU, gives native's answer and says
/// why; the session goes on; a new load opens a new device; no promise is left rejected
/// unhandled); exceptions thrown by the caller's code (in a progress callback, after a rerank,
/// around a refused append) leave everything usable; 1,000 load/free cycles and a session of
/// 100,000 appends, with the module's memory (printed for BENCHMARKS.md).
#[test]
fn browser_survives_a_lost_gpu_device_caller_errors_and_load() {
    let Some(pkg) = browser_prerequisites("browser faults test") else {
        return;
    };
    let fx = fixture("browser-faults");
    let case = fx.cases.last().unwrap();
    let out = run_browser_script(
        "run.mjs",
        &[
            "--pkg",
            pkg.to_str().unwrap(),
            "--fixture",
            fx.dir.to_str().unwrap(),
            "--faults",
        ],
    );
    assert_eq!(out["webgpuBackend"], true, "{out}");
    let lost = &out["deviceLost"];
    assert!(lost["devices"].as_u64().unwrap() >= 1, "{lost}");
    assert_eq!(lost["backendBefore"], "webgpu");
    assert_native("WebGPU before the loss", &lost["before"], case);
    assert_eq!(
        lost["firstError"],
        serde_json::Value::Null,
        "the first rerank after the loss failed: {lost}"
    );
    assert_native("the first rerank after the loss", &out["afterLoss"], case);
    assert_native("a later rerank", &lost["again"], case);
    assert_native("the session after the loss", &lost["sessionAfter"], case);
    assert_eq!(lost["backendAfter"], "cpu");
    let reason = lost["reasonAfter"].as_str().unwrap();
    assert!(
        reason.starts_with("CPU: WebGPU stopped serving ("),
        "{reason}"
    );
    assert_eq!(
        lost["reloadedBackend"], "webgpu",
        "a new load did not open a new device"
    );
    assert_native("a reranker loaded after the loss", &lost["fresh"], case);
    assert_eq!(out["unhandledRejections"], 0, "{out}");

    let caller = &out["callerErrors"];
    assert_eq!(caller["progressError"], "app bug in onProgress");
    assert_eq!(caller["thenError"], "app bug after a rerank");
    assert!(
        caller["appendError"]
            .as_str()
            .unwrap()
            .starts_with("event "),
        "{caller}"
    );
    for what in ["reference", "afterProgress", "afterThen", "session"] {
        assert_native(what, &caller[what], case);
    }

    let cycles = &out["loadCycles"];
    let growth = cycles["memoryAfter"].as_u64().unwrap() - cycles["memoryBefore"].as_u64().unwrap();
    let long = &out["longSession"];
    assert_eq!(
        long["length"].as_u64().unwrap() as usize,
        case.events.len() + 100_000
    );
    let samples: Vec<(u64, u64)> = serde_json::from_value(long["samples"].clone()).unwrap();
    assert_eq!(samples.len(), 10);
    println!(
        "browser load ({}): 1,000 load/free cycles in {:.1} s, module memory {} -> {} bytes; \
         session of 100,000 appends (window step 16, a rerank every 1,000) in {:.1} s, module \
         memory at 10k..100k appends: {:?}",
        out["browser"],
        cycles["seconds"].as_f64().unwrap(),
        cycles["memoryBefore"],
        cycles["memoryAfter"],
        long["seconds"].as_f64().unwrap(),
        samples.iter().map(|s| s.1).collect::<Vec<_>>()
    );
    assert_eq!(
        growth, 0,
        "1,000 load/free cycles grew the module's memory by {growth} bytes"
    );
    assert_eq!(
        samples.last().unwrap().1,
        samples[0].1,
        "the module's memory grew from 10,000 to 100,000 appends"
    );
    std::fs::remove_dir_all(&fx.dir).unwrap();
}
