//! The C library (`native/c-api`) as a desktop app meets it: `include/encore.h` is what
//! cbindgen generates from the code; a C program (`tests/c/consumer.c`), linked against the
//! shared and the static library, and a Python ctypes host (`tests/c/consumer.py`) load a
//! bundle, rerank, refuse bad files and calls, and run a session; every ranking they print
//! equals the Rust library's on the same inputs, item by item.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use encore_core::model::{NamedPromptSet, PromptForm, PromptSetConfig};
use encore_core::ranker::RankContext;
use encore_core::weights::{Quantization, load_model};
use encore_core::{
    Action, Candidate, DeviceType, Event, PushedVector, RerankRequest, Reranker, ScoredItem,
    Surface,
};
use encore_tests::{
    ranker_for, run_command, small_world, temp_dir, tiny_weight_file, workspace_root,
};

/// Where cargo put `libencore_c.{so,a}`: built with every crate type as this package's
/// dependency, next to this test's executable.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    assert!(
        deps.join("libencore_c.so").exists() && deps.join("libencore_c.a").exists(),
        "libencore_c.so/.a missing in {}",
        deps.display()
    );
    deps
}

/// The inputs consumer.c and consumer.py build: a history of the bundle's first 6 titles,
/// the next 20 as candidates, a request on the kids surface.
fn inputs(items: &[u32]) -> (Vec<Event>, Vec<u32>, RerankRequest) {
    let history = (0..6)
        .map(|i| Event {
            member: 0,
            item: items[i],
            timestamp: 1_700_000_000 + 3600 * i as i64,
            action: if i % 3 == 1 {
                Action::Trailer
            } else {
                Action::Play
            },
            duration_s: 600.0 * i as f32,
            surface: if i % 2 == 1 {
                Surface::Search
            } else {
                Surface::Home
            },
            country: if i == 0 { "??".into() } else { "FR".into() },
            device: DeviceType::Tv,
            rating: None,
        })
        .collect();
    let request = RerankRequest {
        surface: Surface::Kids,
        timestamp: Some(1_700_100_000),
        device: None,
        country: None,
        prompt: None,
    };
    (history, items[6..26].to_vec(), request)
}

/// The rankings a consumer printed ("ranking NAME id:score ..."), by name.
fn rankings(stdout: &str) -> HashMap<String, Vec<(u32, f32)>> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ranking "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().expect("a name").to_string();
            let pairs = parts
                .map(|p| {
                    let (id, score) = p.split_once(':').expect("id:score");
                    (id.parse().expect("id"), score.parse().expect("score"))
                })
                .collect();
            (name, pairs)
        })
        .collect()
}

/// A printed ranking equals the Rust one: the same items in the same order, each score within
/// 1e-5 of the same item's.
fn assert_same(name: &str, printed: &[(u32, f32)], expected: &[ScoredItem]) {
    assert_eq!(
        printed.iter().map(|p| p.0).collect::<Vec<_>>(),
        expected.iter().map(|s| s.item).collect::<Vec<_>>(),
        "{name}: order"
    );
    for (p, e) in printed.iter().zip(expected) {
        assert!(
            (p.1 - e.score).abs() <= 1e-5,
            "{name}: item {} scored {} vs {}",
            e.item,
            p.1,
            e.score
        );
    }
}

/// The refusal lines a consumer printed ("refused WHAT STATUS MESSAGE"), by what.
fn refusals(stdout: &str) -> HashMap<String, (u32, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("refused "))
        .map(|l| {
            let (what, rest) = l.split_once(' ').expect("what");
            let (status, message) = rest.split_once(' ').expect("status");
            (
                what.to_string(),
                (status.parse().expect("status"), message.to_string()),
            )
        })
        .collect()
}

fn check_c_consumer(stdout: &str, reranker: &Reranker, items: &[u32], bundle: &[u8]) {
    let (history, candidates, request) = inputs(items);
    let stateless = reranker.rerank(&history, &candidates, &request).unwrap();
    let home = reranker
        .rerank(&history, &candidates, &RerankRequest::on(Surface::Home))
        .unwrap();
    let first_half = reranker
        .rerank(&history[..3], &candidates, &request)
        .unwrap();
    let prompted = reranker
        .rerank(&history, &candidates, &request.clone().with_prompt("kids"))
        .unwrap();
    let new_profile = reranker
        .rerank(&[], &candidates, &request.clone().with_prompt("kids"))
        .unwrap();
    // Titles pushed with int8 vectors, as consumer.c builds them: the first candidate and the
    // history's first title replaced by ids the bundle lacks.
    let dim = reranker.config().d_model;
    let values: Vec<i8> = (0..2 * dim)
        .map(|k| ((k * 37 % 255) as i32 - 127) as i8)
        .collect();
    let vector = |k: usize, scale: f32| PushedVector {
        values: values[k * dim..(k + 1) * dim].to_vec(),
        scale,
    };
    let mut pushed: Vec<Candidate> = candidates.iter().map(|&id| Candidate::known(id)).collect();
    pushed[0] = Candidate::with_vector(4_000_000_000, vector(0, 0.01));
    let mut watched = history.clone();
    watched[0].item = 4_000_000_001;
    let history_titles = [Candidate::with_vector(4_000_000_001, vector(1, 0.02))];
    let with_vectors = reranker
        .rerank_pushed_with_history(&watched, &pushed, &history_titles, &request)
        .unwrap();
    // The contextual ranker, as consumer.c calls it.
    let search = RankContext {
        country: Some("FR".into()),
        ..RankContext::task("search")
            .with_query("star wa")
            .with_alpha(0.5)
    };
    let in_context = reranker
        .rerank_in_context(&history, &candidates, &request, &search)
        .unwrap();
    let more_like = reranker
        .rerank_in_context(
            &history,
            &candidates,
            &request,
            &RankContext::task("more_like_this").with_source(items[0]),
        )
        .unwrap();
    let printed = rankings(stdout);
    assert_eq!(printed.len(), 11, "{stdout}");
    assert_same("in-context", &printed["in-context"], &in_context);
    assert_same(
        "in-context-session",
        &printed["in-context-session"],
        &in_context,
    );
    assert_same(
        "more-like-this-session",
        &printed["more-like-this-session"],
        &more_like,
    );
    assert_ne!(
        in_context.iter().map(|s| s.item).collect::<Vec<_>>(),
        stateless.iter().map(|s| s.item).collect::<Vec<_>>(),
        "the ranker orders otherwise than the model alone"
    );
    assert_same("pushed", &printed["pushed"], &with_vectors);
    assert_same("pushed-session", &printed["pushed-session"], &with_vectors);
    assert!(with_vectors.iter().any(|s| s.item == 4_000_000_000));
    assert_same("new_profile", &printed["new_profile"], &new_profile);
    assert_same("stateless", &printed["stateless"], &stateless);
    assert_same("prompted", &printed["prompted"], &prompted);
    assert_ne!(
        prompted.iter().map(|s| s.score).collect::<Vec<_>>(),
        stateless.iter().map(|s| s.score).collect::<Vec<_>>(),
        "the prompt set changes the scores"
    );
    assert_same("home", &printed["home"], &home);
    assert_same(
        "session-first-half",
        &printed["session-first-half"],
        &first_half,
    );
    assert_same("session", &printed["session"], &stateless);
    assert_ne!(
        stateless.iter().map(|s| s.item).collect::<Vec<_>>(),
        home.iter().map(|s| s.item).collect::<Vec<_>>(),
        "the request's surface and time change the ranking"
    );

    // Each refusal: its status code, and the Rust library's own message.
    let refused = refusals(stdout);
    let bundle_error = |bytes: &[u8], limit: u64| {
        Reranker::from_bytes_within(bytes, &Device::flex(), limit)
            .err()
            .expect("refused")
            .to_string()
    };
    let mut corrupted = bundle.to_vec();
    let n = corrupted.len();
    corrupted[n - 5] ^= 0x40;
    let unknown = [candidates[0], 4_000_000_000];
    let rerank_error = |h: &[Event], c: &[u32]| {
        reranker
            .rerank(h, c, &RerankRequest::on(Surface::Home))
            .err()
            .expect("refused")
            .to_string()
    };
    let mut backwards = history.clone();
    backwards[4].timestamp = 5;
    let expected = [
        ("truncated", 3, bundle_error(&bundle[..n / 2], u64::MAX)),
        ("corrupted", 3, bundle_error(&corrupted, u64::MAX)),
        ("limit", 3, bundle_error(bundle, 1000)),
        ("candidate", 4, rerank_error(&history, &unknown)),
        ("null", 1, "history is NULL".to_string()),
        (
            "capacity",
            2,
            "the output arrays hold 3 entries; 20 candidates need 20".to_string(),
        ),
        (
            "surface",
            2,
            "request: surface code 9 is not one of 0..3".to_string(),
        ),
        ("order", 4, rerank_error(&backwards, &candidates)),
        (
            "prompt",
            4,
            reranker
                .rerank(&history, &candidates, &request.clone().with_prompt("attic"))
                .err()
                .expect("refused")
                .to_string(),
        ),
        (
            "no_history",
            4,
            reranker
                .rerank(&[], &candidates, &request)
                .err()
                .expect("refused")
                .to_string(),
        ),
    ];
    let mut nan = pushed.clone();
    nan[0].vector.as_mut().unwrap().scale = f32::NAN;
    let pushed_error = |c: &[Candidate], t: &[Candidate]| {
        reranker
            .rerank_pushed_with_history(&watched, c, t, &request)
            .err()
            .expect("refused")
            .to_string()
    };
    let context_error = |c: RankContext| {
        reranker
            .rerank_in_context(&history, &candidates, &request, &c)
            .err()
            .expect("refused")
            .to_string()
    };
    let expected = expected.into_iter().chain([
        ("history_title", 4, pushed_error(&pushed, &[])),
        ("scale", 4, pushed_error(&nan, &history_titles)),
        ("task", 4, context_error(RankContext::task("kids"))),
        (
            "alpha",
            4,
            context_error(
                RankContext::task("search")
                    .with_query("star wa")
                    .with_alpha(f32::NAN),
            ),
        ),
    ]);
    for (what, status, message) in expected {
        assert_eq!(
            refused.get(what),
            Some(&(status, message)),
            "{what}:\n{stdout}"
        );
    }
    let (status, message) = &refused["append"];
    assert_eq!(*status, 4);
    assert!(
        message.starts_with("appended event 0 (history position 6): "),
        "{message}"
    );
    assert!(stdout.contains("\nfailures 0\n"), "{stdout}");
    assert!(
        stdout.starts_with(&format!("version {}\n", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
}

#[test]
fn the_checked_in_header_is_what_cbindgen_generates() {
    let root = workspace_root();
    let crate_dir = root.join("native/c-api");
    let checked_in = crate_dir.join("include/encore.h");
    let out = temp_dir("cbindgen").join("encore.h");
    run_command(
        Command::new("cbindgen")
            .current_dir(&crate_dir)
            .args([
                "--config",
                "cbindgen.toml",
                "--crate",
                "encore-c",
                "--quiet",
                "--output",
            ])
            .arg(&out),
    );
    let generated = std::fs::read_to_string(&out).unwrap();
    if std::env::var("ENCORE_BLESS").as_deref() == Ok("1") {
        std::fs::write(&checked_in, &generated).unwrap();
    }
    let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        current == generated,
        "native/c-api/include/encore.h differs from cbindgen's output: regenerate it with \
         `ENCORE_BLESS=1 cargo test --release -p encore-tests --test c_library`"
    );
    for function in [
        "encore_reranker_load",
        "encore_rerank",
        "encore_rerank_pushed",
        "encore_session_rerank_pushed",
        "encore_rerank_in_context",
        "encore_session_rerank_in_context",
        "encore_reranker_dim",
        "encore_session_new",
        "encore_session_append",
        "encore_session_rerank",
        "encore_session_free",
        "encore_reranker_free",
        "encore_last_error",
    ] {
        assert!(
            generated.contains(&format!("{function}(")),
            "{function} not declared"
        );
    }
}

fn compile(dir: &Path, name: &str, link: &[&str]) -> PathBuf {
    let root = workspace_root();
    let exe = dir.join(name);
    run_command(
        Command::new("cc")
            .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(root.join("native/c-api/include"))
            .arg(root.join("tests/c/consumer.c"))
            .arg("-o")
            .arg(&exe)
            .args(link),
    );
    exe
}

#[test]
fn a_c_program_and_a_python_host_rerank_as_the_rust_library_does() {
    let dir = temp_dir("c-consumer");
    // A trained bundle with a prompt set named "kids" (deep form, 2 vectors).
    let loaded = load_model(&tiny_weight_file(&small_world(), 1), &Device::flex()).unwrap();
    let prompt = PromptSetConfig::new(
        PromptForm::Deep,
        loaded.config.d_model,
        loaded.config.n_layers,
    )
    .with_length(2)
    .with_init_std(1.0)
    .init(&Device::flex());
    let kids = NamedPromptSet {
        name: "kids".into(),
        prompt,
    };
    // And a contextual ranker for this model.
    let plain = loaded.to_bundle(&[], Quantization::F32);
    let mut loaded = loaded;
    loaded.ranker = Some(ranker_for(&plain, &small_world()));
    let bundle = loaded.to_bundle(&[kids], Quantization::F32);
    let bundle_path = dir.join("model.encore");
    std::fs::write(&bundle_path, &bundle).unwrap();
    let reranker = Reranker::from_bytes(&bundle, &Device::flex()).unwrap();
    let items = reranker.items().ids().to_vec();
    let lib = library_dir();

    let shared = compile(
        &dir,
        "consumer-shared",
        &[
            &format!("-L{}", lib.display()),
            &format!("-Wl,-rpath,{}", lib.display()),
            "-lencore_c",
            "-lm",
        ],
    );
    let stdout = run_command(Command::new(&shared).arg(&bundle_path));
    check_c_consumer(&stdout, &reranker, &items, &bundle);

    let static_lib = lib.join("libencore_c.a");
    let fully_static = compile(
        &dir,
        "consumer-static",
        &[
            static_lib.to_str().unwrap(),
            "-lm",
            "-lpthread",
            "-ldl",
            "-lrt",
            "-lutil",
            "-lgcc_s",
        ],
    );
    let stdout = run_command(Command::new(&fully_static).arg(&bundle_path));
    check_c_consumer(&stdout, &reranker, &items, &bundle);

    let stdout = run_command(
        Command::new("python3")
            .arg(workspace_root().join("tests/c/consumer.py"))
            .arg(lib.join("libencore_c.so"))
            .arg(&bundle_path),
    );
    let (history, candidates, request) = inputs(&items);
    let stateless = reranker.rerank(&history, &candidates, &request).unwrap();
    let printed = rankings(&stdout);
    assert_same("python stateless", &printed["stateless"], &stateless);
    let prompted = reranker
        .rerank(&history, &candidates, &request.with_prompt("kids"))
        .unwrap();
    assert_same("python prompted", &printed["prompted"], &prompted);
    assert_same("python session", &printed["session"], &stateless);
    let truncated = Reranker::from_bytes(&bundle[..bundle.len() / 2], &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(refusals(&stdout)["truncated"], (3, truncated));
}
