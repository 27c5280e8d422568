//! The `encore` binary as a user runs it: generate → train (with resume) → export → eval →
//! rerank, and clear one-line errors on bad input.

use std::path::Path;
use std::process::{Command, Output};

fn encore(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encore"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("encore runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = encore(dir, args);
    assert!(
        out.status.success(),
        "encore {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = encore(dir, args);
    assert_eq!(out.status.code(), Some(1), "encore {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.starts_with("error: ") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

#[test]
fn the_steps_run_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("encore-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let small = ["--data", "w"];
    let tiny = [
        "--d-model",
        "16",
        "--max-len",
        "16",
        "--n-layers",
        "1",
        "--checkpoint",
        "c.ckpt",
    ];

    let out = ok(
        &dir,
        &[
            "generate",
            "--out",
            "w",
            "--members",
            "120",
            "--titles",
            "60",
            "--days",
            "30",
        ],
    );
    assert!(out.contains("60 titles"), "{out}");
    ok(
        &dir,
        &[&["train", "--epochs", "1"][..], &small, &tiny].concat(),
    );
    let out = ok(
        &dir,
        &[&["train", "--epochs", "2", "--resume"][..], &small, &tiny].concat(),
    );
    assert!(out.contains("trained 2 epochs"), "{out}");
    let out = ok(
        &dir,
        &["export", "--checkpoint", "c.ckpt", "--out", "m.encore"],
    );
    assert!(out.contains("m.encore"), "{out}");
    let out = ok(
        &dir,
        &[&["eval", "--model", "m.encore"][..], &small].concat(),
    );
    assert!(
        out.contains("foundation model") && out.contains("most popular") && out.contains("NDCG@10"),
        "{out}"
    );
    let out = ok(
        &dir,
        &[
            &[
                "rerank",
                "--model",
                "m.encore",
                "--member",
                "3",
                "--surface",
                "search",
                "--count",
                "6",
            ][..],
            &small,
        ]
        .concat(),
    );
    assert!(
        out.contains("reranked on device") && out.contains("reranked 6 candidates"),
        "{out}"
    );

    // int8 weights: a quarter-size file that loads and reranks; the runtime bench on it.
    let out = ok(
        &dir,
        &[
            "export",
            "--from-model",
            "m.encore",
            "--dtype",
            "int8",
            "--out",
            "q.encore",
        ],
    );
    assert!(out.contains("q.encore") && out.contains("int8"), "{out}");
    let size = |f: &str| std::fs::metadata(dir.join(f)).unwrap().len();
    assert!(
        size("q.encore") * 2 < size("m.encore"),
        "int8 file not smaller"
    );
    let out = ok(
        &dir,
        &[
            &[
                "rerank",
                "--model",
                "q.encore",
                "--backend",
                "cpu",
                "--count",
                "5",
            ][..],
            &small,
        ]
        .concat(),
    );
    assert!(
        out.contains("candidates on cpu in") && out.contains("(forced by the caller)"),
        "{out}"
    );
    let out = ok(
        &dir,
        &[
            "bench",
            "--model",
            "q.encore",
            "--backends",
            "cpu",
            "--history",
            "5",
            "--candidates",
            "10",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--batch-members",
            "4",
        ],
    );
    for needle in [
        "RESULT size dtype=int8",
        "RESULT rerank backend=cpu history=5 candidates=10",
        "RESULT append backend=cpu history=5 candidates=10",
        "tokens_encoded=2",
        "RESULT batch backend=cpu history=5 candidates=10 members=4",
    ] {
        assert!(out.contains(needle), "{needle} missing: {out}");
    }

    // Bad input: one clear line, exit code 1.
    assert!(
        fails(
            &dir,
            &[
                &["rerank", "--model", "m.encore", "--surface", "attic"][..],
                &small
            ]
            .concat()
        )
        .contains("unknown surface")
    );
    assert!(
        fails(
            &dir,
            &[
                &["rerank", "--model", "m.encore", "--candidates", "1000,7"][..],
                &small
            ]
            .concat()
        )
        .contains("unknown item id 7")
    );
    std::fs::write(
        dir.join("bad.encore"),
        &std::fs::read(dir.join("m.encore")).unwrap()[..200],
    )
    .unwrap();
    assert!(
        fails(
            &dir,
            &[&["eval", "--model", "bad.encore"][..], &small].concat()
        )
        .contains("checksum")
    );
    assert!(
        fails(&dir, &["eval", "--model", "missing.encore"]).contains("cannot read missing.encore")
    );
    std::fs::write(dir.join("w/events.csv"), "member,item,timestamp,action,duration_s,surface,country,device\n1,1000,5,play,oops,home,US,tv\n").unwrap();
    let err = fails(
        &dir,
        &[&["eval", "--model", "m.encore"][..], &small].concat(),
    );
    assert!(
        err.contains("events.csv") && err.contains("line 2"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ablations_run_from_the_command_line_and_resume() {
    let dir = std::env::temp_dir().join(format!("encore-ablate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tiny.toml"),
        "[data]\nsource = \"synthetic\"\nmembers = 80\ntitles = 60\ndays = 30\n\
         [training]\nepochs = 1\n[training.model]\nd_model = 16\nd_ff = 32\nmax_len = 16\n\
         [training.objectives]\nmtp_items = 2\n[run]\nout = \"runs/tiny\"\n",
    )
    .unwrap();
    let args = [
        "ablate",
        "--config",
        "tiny.toml",
        "--only",
        "full,no-rollup,no-mtp,id-only,cold-full,cold-id-only",
        "--cold-start",
        "0.1",
    ];
    let out = ok(&dir, &args);
    let table = std::fs::read_to_string(dir.join("runs/tiny-ablation/ablation.md")).unwrap();
    assert!(out.contains(&table), "the table is printed: {out}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    let names: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r.split('|').nth(1).unwrap().trim())
        .collect();
    assert_eq!(
        names,
        [
            "full",
            "no-rollup",
            "no-mtp",
            "id-only",
            "cold-full",
            "cold-id-only"
        ]
    );
    // Roll-up is off in this file: listed, not run. Only the cold-start pair has withheld HR@10.
    assert!(rows[2].contains("same as full") && !dir.join("runs/tiny-ablation/no-rollup").exists());
    let withheld = |row: &str| row.split('|').rev().nth(3).unwrap().trim().to_string();
    assert_eq!(withheld(rows[1]), "–");
    assert!(withheld(rows[5]).parse::<f64>().is_ok(), "{}", rows[5]);
    for run in ["full", "no-mtp", "id-only", "cold-full", "cold-id-only"] {
        assert!(
            dir.join("runs/tiny-ablation")
                .join(run)
                .join("model.encore")
                .exists()
        );
    }
    // Resumed: every run is already trained, so the same metrics come back (all columns up to
    // the withheld HR@10; the training time is this process's).
    let again = ok(&dir, &[&args[..], &["--resume"]].concat());
    let metrics = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| variant"))
            .map(|l| l.split('|').take(11).collect::<Vec<_>>().join("|"))
            .collect()
    };
    assert_eq!(metrics(&again), metrics(&table));
    assert!(
        fails(
            &dir,
            &["ablate", "--config", "tiny.toml", "--only", "no-magic"]
        )
        .contains("unknown ablation")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cost_curves_measure_each_point_and_draw_both_plots() {
    let dir = std::env::temp_dir().join(format!("encore-curves-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let args = [
        "bench",
        "--curves",
        "curves",
        "--history",
        "5,40",
        "--catalogs",
        "50,5000",
        "--candidates",
        "10",
        "--iters",
        "3",
        "--warmup",
        "1",
    ];
    let printed = ok(&dir, &args);
    let field = |line: &str, key: &str| -> f64 {
        let v = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in {line}"));
        v.parse().unwrap()
    };
    let history: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("RESULT curve-history"))
        .collect();
    assert_eq!(history.len(), 2, "{printed}");
    assert_eq!(field(history[1], "window"), 41.0);
    for l in &history {
        assert!(
            field(l, "stateless_p50") > 0.0 && field(l, "append_p50") > 0.0,
            "{l}"
        );
    }
    let catalog: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("RESULT curve-catalog"))
        .collect();
    assert_eq!(catalog.len(), 2, "{printed}");
    // The bundle grows by the item table (4,950 more rows of 50 f32 values, and their ids),
    // and int8 stores it in under a third of f32's bytes.
    let (small, large) = (
        field(catalog[0], "bundle_f32"),
        field(catalog[1], "bundle_f32"),
    );
    let table = 4950.0 * 50.0 * 4.0;
    assert!(
        large - small >= table && large - small < 1.02 * table,
        "{small} → {large}"
    );
    for l in &catalog {
        assert!(
            field(l, "bundle_int8") < field(l, "bundle_f32") / 3.0,
            "{l}"
        );
    }
    for plot in ["history.svg", "catalog.svg"] {
        let svg = std::fs::read_to_string(dir.join("curves").join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("p50"),
            "{plot}: {svg:.120}"
        );
    }
    let err = fails(
        &dir,
        &[
            "bench",
            "--curves",
            "c2",
            "--history",
            "1",
            "--catalogs",
            "50",
        ],
    );
    assert!(
        err.contains("--curves needs histories of at least 2 events"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Event shards from the command line: a world's CSV log converted, the same world generated
/// straight into shards, a streamed experiment trained on them from a TOML file, and the
/// refusals (a used directory, a broken shard) as one-line errors.
#[test]
fn event_shards_are_written_converted_and_trained_on_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("encore-cli-shards-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let world = ["--members", "60", "--titles", "80", "--days", "20"];
    ok(
        &dir,
        &[&["generate", "--out", "world"][..], &world].concat(),
    );
    let convert = [
        "convert-events",
        "--events",
        "world/events.csv",
        "--catalog",
        "world/catalog.json",
        "--out",
        "converted",
    ];
    let out = ok(
        &dir,
        &[&convert[..], &["--rows-per-shard", "1500"]].concat(),
    );
    assert!(out.contains("events of 60 members to"), "{out}");
    let generated = ok(
        &dir,
        &[&["generate", "--shards", "--out", "sharded"][..], &world].concat(),
    );
    // The same world both ways: the same rows, whatever the shard sizes.
    let rows = |s: &str| {
        s.split(" events of ")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(rows(&out), rows(&generated), "{out} / {generated}");
    let e = fails(&dir, &convert);
    assert!(e.contains("already holds event shards"), "{e}");
    std::fs::write(
        dir.join("shards.toml"),
        "[data]\nsource = \"event-shards\"\ndir = \"converted\"\ncatalog = \"world/catalog.json\"\n\
         chunk_windows = 64\neval_members = 30\n\n[training]\nepochs = 1\nbatch_size = 16\n\n\
         [training.model]\nd_model = 16\nn_heads = 2\nn_layers = 1\nd_ff = 32\nmax_len = 16\n\n\
         [run]\nout = \"run\"\neval_every = 1\n",
    )
    .unwrap();
    let trained = ok(&dir, &["train", "--config", "shards.toml"]);
    assert!(
        trained.contains("30 cases (Validation holdout)"),
        "{trained}"
    );
    assert!(trained.contains("peak resident memory"), "{trained}");
    assert!(dir.join("run/model.encore").exists() && dir.join("run/summary.json").exists());
    // A window no weight file may hold is refused before training, not when the finished
    // run's file is read back.
    let long = [
        "train",
        "--config",
        "shards.toml",
        "--out",
        "run-long",
        "--set",
        "training.model.max_len=20000",
    ];
    let e = fails(&dir, &long);
    assert!(
        e.contains("cannot be written to a weight file")
            && e.contains("max_len = 20000 (expected 1 to 16384)"),
        "{e}"
    );
    assert!(!dir.join("run-long").exists());
    // A shard that is not Parquet stops the run with its name.
    std::fs::write(dir.join("converted/part-00009.parquet"), b"not parquet").unwrap();
    let e = fails(&dir, &["train", "--config", "shards.toml", "--out", "run2"]);
    assert!(
        e.contains("part-00009.parquet") && e.contains("not a Parquet file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
