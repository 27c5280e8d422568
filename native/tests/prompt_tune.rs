//! `encore prompt-tune` as a user runs it: a prompt set learned on a small world is added to
//! the bundle (the foundation model's part byte for byte the base's, earlier prompt sets kept),
//! the measurement is printed and written as JSON, and a bad task or name is refused by name.

use std::path::Path;
use std::process::Command;

use burn::tensor::Device;
use encore_core::SyntheticWorldConfig;
use encore_core::model::PromptForm;
use encore_core::weights::{WeightFile, load_model};

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_encore"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("encore runs");
    assert!(
        out.status.success(),
        "encore {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_encore"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("encore runs");
    assert_eq!(out.status.code(), Some(1), "encore {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `encore prompt-tune --config tiny.toml --base BASE --task TASK --epochs 1 EXTRA…` in `dir`.
fn prompt_tune(dir: &Path, base: &str, task: &str, extra: &[&str]) -> String {
    let common = [
        "prompt-tune",
        "--config",
        "tiny.toml",
        "--base",
        base,
        "--task",
        task,
        "--epochs",
        "1",
    ];
    run(dir, &[&common[..], extra].concat())
}

/// The tensors of one part of a bundle, by name, as stored bytes.
fn part_tensors(bytes: &[u8], part: &str) -> Vec<(String, Vec<u8>)> {
    let file = WeightFile::decode(bytes).unwrap();
    let p = file
        .manifest
        .parts
        .iter()
        .find(|p| p.name == part)
        .unwrap_or_else(|| panic!("no part {part}"));
    p.kind
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), file.tensor_bytes(t).to_vec()))
        .collect()
}

#[test]
fn prompt_tune_adds_a_prompt_set_to_the_bundle() {
    let dir = std::env::temp_dir().join(format!("encore-prompt-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let world = SyntheticWorldConfig {
        members: 120,
        titles: 80,
        days: 30,
        ..Default::default()
    };
    let config = format!(
        "[data]\nsource = \"synthetic\"\nmembers = {}\ntitles = {}\ndays = {}\n\n\
         [split]\nholdout = \"validation\"\n\n[training]\nepochs = 1\nbatch_size = 32\n\n\
         [training.model]\nd_model = 16\nn_heads = 2\nn_layers = 2\nd_ff = 32\nmax_len = 24\n\n\
         [run]\nout = \"run\"\neval_every = 0\n",
        world.members, world.titles, world.days
    );
    std::fs::write(dir.join("tiny.toml"), config).unwrap();
    run(&dir, &["train", "--config", "tiny.toml"]);
    let tune = |task: &str, form: &str, base: &str, out: &str| {
        let extra = [
            "--form",
            form,
            "--length",
            "3",
            "--out",
            out,
            "--report",
            "report.json",
        ];
        prompt_tune(&dir, base, task, &extra)
    };
    let printed = tune("surface=search", "deep", "run/model.encore", "one.encore");
    assert!(printed.contains("prompted − base"), "{printed}");
    assert!(printed.contains("NDCG@10 with no history"), "{printed}");
    tune("weekend", "input", "one.encore", "two.encore");
    let base = std::fs::read(dir.join("run/model.encore")).unwrap();
    let two = std::fs::read(dir.join("two.encore")).unwrap();
    // The foundation model's tensors are the base's, byte for byte.
    assert_eq!(
        part_tensors(&base, "foundation_model"),
        part_tensors(&two, "foundation_model")
    );
    let loaded = load_model(&two, &Device::flex()).unwrap();
    let sets: Vec<(String, PromptForm, usize)> = loaded
        .prompts
        .iter()
        .map(|p| (p.name.clone(), p.prompt.form(), p.prompt.length()))
        .collect();
    assert_eq!(
        sets,
        [
            ("search".to_string(), PromptForm::Deep, 3),
            ("weekend".to_string(), PromptForm::Input, 3)
        ]
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["name"], "weekend");
    assert!(report["cases"].as_u64().unwrap() > 0);
    assert_eq!(report["epochs"].as_array().unwrap().len(), 1);
    // Input form, 3 vectors of width 16.
    assert_eq!(report["prompt_parameters"], 48);
    // The served prompt also ranks the cases with their history withheld, beside most popular.
    let alone = &report["no_history"];
    for side in ["prompted", "most_popular"] {
        let mrr = alone[side]["mrr"].as_f64().unwrap();
        assert!(mrr > 0.0 && mrr <= 1.0, "no history, {side}: {alone}");
    }
    assert_eq!(alone["ndcg10_gain"].as_array().unwrap().len(), 2);
    // The other placement is measured (by the training-side forward), nothing written.
    let prefixed = prompt_tune(
        &dir,
        "one.encore",
        "weekend",
        &["--placement", "before-history", "--out", "unused.encore"],
    );
    assert!(prefixed.contains("prompted − base"), "{prefixed}");
    assert!(!dir.join("unused.encore").exists());
    // The baselines: a linear head and the top layer + a head (measured, nothing written),
    // and full fine-tuning (the bundle holds the tuned model, its prompt sets kept).
    for (method, label) in [
        ("linear-head", "linear head"),
        ("top-layer-head", "top layer + head"),
    ] {
        let out = prompt_tune(
            &dir,
            "one.encore",
            "weekend",
            &[
                "--method",
                method,
                "--report",
                "head.json",
                "--out",
                "unused.encore",
            ],
        );
        assert!(out.contains(&format!("{label} − base")), "{out}");
        assert!(!dir.join("unused.encore").exists());
        assert!(!out.contains("with no history"), "{out}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("head.json")).unwrap()).unwrap();
        let trained = report["prompt_parameters"].as_u64().unwrap();
        let share = report["parameter_share"].as_f64().unwrap();
        // A 16 × 16 head (+ bias); the top layer adds its own parameters but stays a part of
        // the model.
        if method == "linear-head" {
            assert_eq!(trained, 16 * 16 + 16);
        } else {
            assert!(trained > 16 * 16 + 16 && share < 1.0, "{trained} {share}");
        }
    }
    prompt_tune(
        &dir,
        "one.encore",
        "weekend",
        &["--method", "fine-tune", "--out", "tuned.encore"],
    );
    let tuned = std::fs::read(dir.join("tuned.encore")).unwrap();
    assert_ne!(
        part_tensors(&base, "foundation_model"),
        part_tensors(&tuned, "foundation_model"),
        "fine-tuning moves the model"
    );
    assert_eq!(
        load_model(&tuned, &Device::flex()).unwrap().prompts.len(),
        1
    );
    // A bad task and a bad name are refused by name.
    let args = [
        "prompt-tune",
        "--config",
        "tiny.toml",
        "--base",
        "one.encore",
        "--task",
    ];
    let err = refused(&dir, &[&args[..], &["genre=Westerns"]].concat());
    assert!(err.contains("\"Westerns\""), "{err}");
    let err = refused(&dir, &[&args[..], &["weekend", "--name", ""]].concat());
    assert!(err.contains("name is empty"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
