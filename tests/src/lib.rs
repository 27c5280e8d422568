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
