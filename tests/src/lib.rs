//! Shared fixtures for Encore's cross-crate tests: small synthetic worlds and trained models.

use encore::backend::Backend;
use encore::training::{CheckpointPolicy, Monitor, TrainConfig, TrainedModel, train};
use encore_core::data::split::{HeldOutEvent, MemberHistory, group_by_member, leave_last_out};
use encore_core::{SyntheticWorld, SyntheticWorldConfig};

/// A small world: ~150 members, 120 titles, 45 days.
pub fn small_world() -> SyntheticWorld {
    SyntheticWorld::generate(&SyntheticWorldConfig {
        members: 150,
        titles: 120,
        days: 45,
        seed: 3,
        ..Default::default()
    })
}

/// The world's training histories and held-out events.
pub fn split(world: &SyntheticWorld) -> (Vec<MemberHistory>, Vec<HeldOutEvent>) {
    leave_last_out(&group_by_member(&world.events))
}

/// A tiny model config (d 16, 2 layers, 2 heads, window 24).
pub fn tiny_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        model: TrainConfig::default()
            .model
            .with_d_model(16)
            .with_n_heads(2)
            .with_n_layers(2)
            .with_d_ff(32)
            .with_max_len(24),
        ..TrainConfig::default()
    }
}

/// Trains with `cfg` on the CPU on the world's histories minus each member's last event, without
/// checkpoints or monitoring.
pub fn train_on(world: &SyntheticWorld, cfg: &TrainConfig) -> anyhow::Result<TrainedModel> {
    let (train_set, _) = split(world);
    train(
        &train_set,
        &world.catalog,
        cfg,
        Backend::Cpu,
        CheckpointPolicy::default(),
        Monitor::default(),
    )
}

/// Trains a tiny model on the CPU and returns its weight file.
pub fn tiny_weight_file(world: &SyntheticWorld, epochs: usize) -> Vec<u8> {
    train_on(world, &tiny_config(epochs))
        .expect("training runs")
        .weights
}

/// A fresh temporary directory under the target dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("encore-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The workspace root.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The wasm package directory for a browser test, after checking what the test needs (the
/// package, the npm packages); `None` when `ENCORE_SKIP_BROWSER=1` asks to skip it.
pub fn browser_prerequisites(test: &str) -> Option<std::path::PathBuf> {
    if std::env::var("ENCORE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("ENCORE_SKIP_BROWSER=1: {test} skipped");
        return None;
    }
    let root = workspace_root();
    let pkg = root.join("target/wasm-pkg");
    assert!(
        pkg.join("encore_wasm_bg.wasm").exists(),
        "wasm package missing at {}: run `bash wasm/build.sh` (or .ci/run)",
        pkg.display()
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "run `npm ci --prefix tests/browser` (or .ci/run)"
    );
    Some(pkg)
}

/// Runs `tests/browser/<script>` with `args` in Node and returns the one JSON object it prints.
pub fn run_browser_script(script: &str, args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new("node")
        .arg(workspace_root().join("tests/browser").join(script))
        .args(args)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("the script prints JSON")
}

/// Runs `cmd` and returns its stdout; panics with its output when it cannot start or fails.
pub fn run_command(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Browser cases on the world's longest history, each with the native `reranker`'s answer:
/// per `(events, surface, candidates)` the last events, the catalog's last ids as candidates,
/// a request 10 minutes after the last event on `device` from `country`.
pub fn native_cases(
    world: &SyntheticWorld,
    reranker: &encore_core::Reranker,
    shapes: &[(usize, encore_core::Surface, usize)],
    device: encore_core::DeviceType,
    country: &str,
) -> Vec<encore::browser_fixture::BrowserCase> {
    let histories = group_by_member(&world.events);
    let long = histories
        .iter()
        .max_by_key(|h| h.events.len())
        .expect("members");
    let ids = world.catalog.ids();
    shapes
        .iter()
        .map(|&(n, surface, n_candidates)| {
            let history = &long.events[long.events.len() - n.min(long.events.len())..];
            let candidates: Vec<u32> = ids.iter().rev().take(n_candidates).copied().collect();
            let request = encore_core::RerankRequest {
                surface,
                timestamp: Some(history.last().expect("events").timestamp + 600),
                device: Some(device),
                country: Some(country.into()),
                prompt: None,
            };
            encore::browser_fixture::case(reranker, history, &candidates, &request)
                .expect("the native rerank")
        })
        .collect()
}

/// Scores by item id.
pub type ByItem = std::collections::HashMap<u32, f32>;

pub fn by_item(ranked: &[encore_core::ScoredItem]) -> ByItem {
    let map: ByItem = ranked.iter().map(|s| (s.item, s.score)).collect();
    assert_eq!(map.len(), ranked.len(), "an item ranked twice");
    map
}

/// Asserts that every pair of engines gives every candidate the same score within 1e-4.
pub fn assert_pairwise(what: &str, engines: &[(&str, ByItem)], candidates: &[u32]) {
    for (i, (name_a, a)) in engines.iter().enumerate() {
        assert_eq!(
            a.len(),
            candidates.len(),
            "{what}: {name_a} ranked {} items",
            a.len()
        );
        for (name_b, b) in &engines[i + 1..] {
            for item in candidates {
                let (x, y) = (a[item], b[item]);
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                    "{what}: item {item}: {name_a} {x} vs {name_b} {y}"
                );
            }
        }
    }
}

/// A bundle with a contextual ranker: a random foundation model over a world's catalog and a
/// random (untrained) ranker over its features, as `encore ranker --out` writes them.
pub struct RankerFixture {
    /// The bundle: the model and the ranker part.
    pub bytes: Vec<u8>,
    /// The same model without the ranker.
    pub base: Vec<u8>,
    /// The ranker as bundled (the training-side module, its shape and vocabulary).
    pub ranker: encore_core::weights::RankerBundle,
}

/// The tasks of [`ranker_fixture`]'s ranker.
pub const RANKER_FIXTURE_TASKS: [&str; 3] = ["search", "home_row", "more_like_this"];

/// [`RankerFixture`] over `world` (a model of width 16, one layer); `seed` draws the model
/// (the ranker's weights are drawn with seed 5). Countries and popularity come from the
/// world's training histories.
pub fn ranker_fixture(world: &SyntheticWorld, seed: u64) -> RankerFixture {
    use burn::tensor::Device;
    use encore_core::model::FoundationModelConfig;
    use encore_core::weights::{Quantization, load_model, save_model};
    let device = Device::flex();
    let base = {
        let _turn = DRAWING.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let config = FoundationModelConfig::new(world.catalog.len())
            .with_d_model(16)
            .with_n_heads(2)
            .with_n_layers(1)
            .with_d_ff(32)
            .with_max_len(40)
            .with_dropout(0.0);
        let model = config.init(&device);
        save_model(&model, &config, &world.catalog.ids(), Quantization::F32)
    };
    let bundle = ranker_for(&base, world);
    let mut loaded = load_model(&base, &device).expect("the base bundle loads");
    loaded.ranker = Some(bundle.clone());
    RankerFixture {
        bytes: loaded.to_bundle(&[], Quantization::F32),
        base,
        ranker: bundle,
    }
}

/// The backend's seed is shared by the tests running at once: one draws at a time.
static DRAWING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A random (untrained) small contextual ranker for the model in `base` (a bundle over
/// `world`'s catalog), with its vocabulary from the world's training events and its probe
/// from that model, as `encore ranker --out` bundles one.
pub fn ranker_for(base: &[u8], world: &SyntheticWorld) -> encore_core::weights::RankerBundle {
    use burn::tensor::Device;
    use encore_core::ranker::RankerVocabulary;
    use encore_core::weights::{RankerBundle, probe_history};
    use encore_core::{RerankRequest, Reranker, Surface};
    let device = Device::flex();
    let reranker = Reranker::from_bytes(base, &device).expect("the base bundle loads");
    let (train, _) = split(world);
    let vocabulary = RankerVocabulary::new(
        &world.catalog,
        reranker.items(),
        train.iter().flat_map(|h| h.events.iter()),
        RANKER_FIXTURE_TASKS.iter().map(|t| t.to_string()).collect(),
    )
    .expect("the model's titles are the catalog's");
    let shape = vocabulary
        .config(reranker.config().d_model)
        .with_d_embed(8)
        .with_d_hidden(24)
        .with_query_buckets(512)
        .with_dropout(0.0);
    let ranker = {
        let _turn = DRAWING.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(5);
        shape.init(&device)
    };
    let probe = reranker
        .user_representations(&[(
            &probe_history(reranker.items()),
            RerankRequest::on(Surface::Home),
        )])
        .expect("the probe history ranks")
        .remove(0);
    RankerBundle {
        model: ranker,
        config: shape,
        vocabulary,
        probe,
    }
}

/// A content encoder for [`ranker_fixture`]'s model (width 16) over the world's genres, with fixed
/// small weights: enough to embed and check pushed metadata.
pub fn fixture_content_encoder(
    world: &SyntheticWorld,
) -> encore_core::serving::ServingContentEncoder {
    use encore_core::serving::content_encoder::{AGE_BUCKETS, LANGUAGE_BUCKETS, YEAR_BUCKETS};
    use encore_core::serving::{ContentEncoderSpec, ServingContentEncoder};
    let d = 16;
    let table = |rows: usize, salt: f32| -> Vec<f32> {
        (0..rows * d)
            .map(|i| (i as f32 * 0.37 + salt).sin() * 0.1)
            .collect()
    };
    ServingContentEncoder {
        spec: ContentEncoderSpec {
            d_model: d,
            genres: world.catalog.genres.clone(),
            content_dim: 0,
            normalize: false,
            reference_time: 0,
        },
        genre: table(world.catalog.genres.len(), 0.1),
        kind: table(encore_core::ItemKind::ALL.len(), 0.2),
        language: table(LANGUAGE_BUCKETS, 0.3),
        year: table(YEAR_BUCKETS, 0.4),
        gate: vec![0.0; AGE_BUCKETS],
        unknown: vec![0.05; d],
        content: None,
        unknown_share: None,
    }
}

/// The bundle `bytes` with its manifest changed by `edit` (tensor bytes kept): a hostile or
/// inconsistent header over valid data.
pub fn edited_bundle(
    bytes: &[u8],
    edit: impl FnOnce(&mut encore_core::weights::Manifest),
) -> Vec<u8> {
    use encore_core::weights::WeightFile;
    let file = WeightFile::decode(bytes).expect("a valid bundle");
    let mut manifest = file.manifest.clone();
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for part in &manifest.parts {
        for t in part.kind.tensors() {
            blobs.push(file.tensor_bytes(t).to_vec());
        }
    }
    edit(&mut manifest);
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    WeightFile::encode(manifest, &refs)
}

/// Holds the caller's test alone among the tests of its binary that take it too. The backend's
/// random draws (a model's initial weights, and every bundle load, which builds a model before
/// applying its weights) come from one generator per process, so a test that seeds it and
/// draws a model must not run beside another that draws.
pub fn one_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}
