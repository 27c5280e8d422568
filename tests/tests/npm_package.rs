//! The npm package as a web app meets it: `npm pack` the built package, install the tarball
//! into a fresh copy of the minimal app in `tests/npm-consumer` (plain ES modules and an import
//! map, no bundler), build the app with `tsc --strict` against the installed declarations, and
//! run it in headless Chromium: the wasm compiles while streaming, a bundle loads from a URL
//! with progress, from a `Response`, a `URL` and an `ArrayBuffer`; reranks and sessions equal
//! the Rust library's; the worker entry (`encore-reranker/worker`) gives the same rankings and
//! refusals; typed arrays move to the worker without a copy; and a page without WebGPU loads
//! the CPU-only entry. The app sees only the installed package, never the repository's build
//! paths.
//!
//! `cargo test --release -p encore-tests --test npm_package -- --nocapture` also prints the
//! time of a rerank on the page's thread and through the worker (BENCHMARKS.md).

use std::path::Path;
use std::process::Command;

use burn::tensor::Device;
use encore::browser_fixture::{self, BrowserCase};
use encore_core::{DeviceType, Reranker, Surface};
use encore_tests::{
    browser_prerequisites, native_cases, run_browser_script, run_command, small_world, temp_dir,
    tiny_weight_file, workspace_root,
};
use serde_json::Value;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A page's ranking equals the native one for the same case, item by item (scores within
/// 1e-4, the order the same).
fn assert_ranking(what: &str, got: &Value, case: &BrowserCase) {
    let items: Vec<u32> = got["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no ranking in {got}"))
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let scores: Vec<f32> = got["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(items, case.expected_items, "{what}: order");
    for ((item, score), expected) in items.iter().zip(&scores).zip(&case.expected_scores) {
        assert!(
            (score - expected).abs() <= 1e-4,
            "{what}: item {item} scored {score} vs {expected}"
        );
    }
}

fn assert_rankings(what: &str, got: &Value, cases: &[BrowserCase]) {
    let got = got.as_array().unwrap_or_else(|| panic!("{what}: {got}"));
    assert_eq!(got.len(), cases.len(), "{what}");
    for (k, (g, c)) in got.iter().zip(cases).enumerate() {
        assert_ranking(&format!("{what} case {k}"), g, c);
    }
}

/// Progress reports: bytes so far growing to the bundle's size, each with its total.
fn assert_progress(what: &str, progress: &Value, size: usize) {
    let reports = progress
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {progress}"));
    assert!(!reports.is_empty(), "{what}: no progress reported");
    let loaded: Vec<u64> = reports.iter().map(|r| r[0].as_u64().unwrap()).collect();
    assert!(loaded.windows(2).all(|w| w[0] < w[1]), "{what}: {loaded:?}");
    assert_eq!(*loaded.last().unwrap(), size as u64, "{what}");
    assert!(
        reports.iter().all(|r| r[1].as_u64() == Some(size as u64)),
        "{what}: {progress}"
    );
}

#[test]
fn the_packed_npm_package_works_in_a_consumer_app_with_its_worker_and_cpu_entries() {
    let Some(pkg) = browser_prerequisites("npm package consumer") else {
        return;
    };
    let root = workspace_root();
    let dir = temp_dir("npm-consumer");

    // The model and cases, with the Rust library's answers.
    let world = small_world();
    let weights = tiny_weight_file(&world, 1);
    let native = Reranker::from_bytes(&weights, &Device::flex()).unwrap();
    let cases = native_cases(
        &world,
        &native,
        &[
            (3, Surface::Home, 10),
            (12, Surface::Kids, 40),
            (40, Surface::Search, 100),
        ],
        DeviceType::Tablet,
        "FR",
    );

    // Pack, install into a fresh copy of the app, build it.
    let packed = run_command(
        Command::new("npm")
            .current_dir(&pkg)
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&dir),
    );
    let tarball = dir.join(
        packed
            .trim()
            .lines()
            .last()
            .expect("npm pack names the tarball"),
    );
    assert!(tarball.exists(), "{}", tarball.display());
    let app = dir.join("app");
    copy_dir(&root.join("tests/npm-consumer"), &app);
    run_command(
        Command::new("npm")
            .current_dir(&app)
            .args(["install", "--no-audit", "--no-fund", "--prefer-offline"])
            .arg(&tarball),
    );
    let installed = app.join("node_modules/encore-reranker");
    for file in [
        "worker.js",
        "worker-runtime.js",
        "worker.d.ts",
        "bundle.js",
        "README.md",
        "cpu/encore_wasm_bg.wasm",
    ] {
        assert!(installed.join(file).exists(), "the tarball lacks {file}");
    }
    run_command(
        Command::new("node")
            .arg(root.join("tests/browser/node_modules/typescript/bin/tsc"))
            .arg("-p")
            .arg(&app),
    );
    browser_fixture::write(&app, &weights, &cases).unwrap();

    let out = run_browser_script("consumer.mjs", &["--app", app.to_str().unwrap()]);
    let main = &out["main"];
    assert!(
        main["streamed"].as_u64().unwrap() >= 1,
        "the wasm did not compile while streaming"
    );
    assert_progress("load from a URL", &main["progress"], weights.len());
    assert_progress(
        "worker load from a URL",
        &main["workerProgress"],
        weights.len(),
    );
    assert_eq!(
        main["itemCount"].as_u64().unwrap() as usize,
        native.items().len()
    );
    assert_rankings("main entry", &main["direct"], &cases);
    for (k, loader) in ["Response", "URL", "ArrayBuffer"].iter().enumerate() {
        assert_rankings(
            &format!("loaded from a {loader}"),
            &main["loaders"][k],
            &cases,
        );
    }
    assert_rankings("sessions", &main["sessions"], &cases);
    assert_rankings("worker", &main["workerDirect"], &cases);
    assert_rankings("worker sessions", &main["workerSessions"], &cases);
    assert_eq!(
        main["transferred"], true,
        "typed arrays were copied, not moved"
    );
    assert_eq!(
        main["workerState"]["itemCount"].as_u64().unwrap() as usize,
        native.items().len()
    );

    let refusals = &main["refusals"];
    let missing = refusals["missing"].as_str().unwrap();
    assert!(
        missing.contains("missing.encore") && missing.contains("HTTP 404"),
        "{missing}"
    );
    assert_eq!(
        refusals["notBytes"],
        "the bundle must be a Uint8Array, an ArrayBuffer, a Response, a URL or a URL string"
    );
    assert!(
        refusals["surface"]
            .as_str()
            .unwrap()
            .starts_with("unknown surface \"attic\""),
        "{refusals}"
    );
    // The worker refuses with the main entry's messages.
    assert_eq!(main["workerRefusals"]["surface"], refusals["surface"]);
    assert_eq!(main["workerRefusals"]["missing"], refusals["missing"]);
    assert_eq!(main["afterFree"], "the reranker was freed");

    let hop = &main["hop"];
    let (direct, worker) = (
        hop["direct"].as_f64().unwrap(),
        hop["worker"].as_f64().unwrap(),
    );
    assert!(direct > 0.0 && worker > 0.0, "{hop}");
    assert_eq!(hop["workerBackend"], "cpu");
    println!(
        "worker hop ({} events, {} candidates, CPU backend, median of 15 batches of 30 calls): page thread {direct:.3} ms, worker {worker:.3} ms, hop {:.3} ms; {}",
        cases[2].events.len(),
        cases[2].candidates.len(),
        worker - direct,
        out["browser"]
    );

    let bare = &out["withoutWebGpu"];
    assert_eq!(bare["entry"], "encore-reranker/cpu");
    assert_eq!(bare["backend"], "cpu");
    assert_rankings("CPU-only entry", &bare["direct"], &cases);
    assert_eq!(
        bare["webgpu"],
        "this browser does not expose WebGPU (navigator.gpu is undefined)"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
