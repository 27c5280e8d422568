//! Outputs that cannot be written: a full disk (a file-size limit, `ulimit -f`, makes every
//! write past it fail with "File too large", as a full disk fails it with "No space left") and
//! a read-only output directory, during a checkpoint and an export. Each run stops with a
//! one-line error naming the file; the previous checkpoint and weight file are byte for byte
//! what they were, no temporary file is left, and the run resumes from that checkpoint once
//! the disk has room.
//!
//! Linux only (`ulimit`, `setpriv`). Run as root, the read-only case drops to the `nobody` user
//! with `setpriv`, since root writes through permissions.

use std::path::{Path, PathBuf};
use std::process::Command;

const ENCORE: &str = env!("CARGO_BIN_EXE_encore");

/// `encore args` in `dir` through bash, after `prelude` (e.g. a `ulimit`).
fn encore_in(dir: &Path, prelude: &str, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .current_dir(dir)
        .arg("-c")
        .arg(format!("{prelude} exec \"$0\" \"$@\""))
        .arg(ENCORE)
        .args(args)
        .output()
        .expect("bash runs")
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The run failed with exactly one `error:` line, which contains every one of `parts`.
fn failed_with(out: &std::process::Output, parts: &[&str]) -> String {
    assert!(!out.status.success(), "the run succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: ") && !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for part in parts {
        assert!(errors[0].contains(part), "{:?} lacks {part:?}", errors[0]);
    }
    errors[0].to_string()
}

/// No `.NAME.PID.tmp` file left in `dir`.
fn no_temporaries(dir: &Path) {
    let left: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

const TRAIN: &[&str] = &[
    "train",
    "--data",
    "w",
    "--d-model",
    "16",
    "--max-len",
    "16",
    "--n-layers",
    "1",
    "--checkpoint",
    "out/c.ckpt",
];

fn train(epochs: &str, resume: bool) -> Vec<&str> {
    let mut args = TRAIN.to_vec();
    args.extend(["--epochs", epochs]);
    if resume {
        args.push("--resume");
    }
    args
}

#[test]
fn a_full_disk_or_a_read_only_directory_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = std::env::temp_dir().join(format!("encore-output-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    ok(
        &encore_in(
            &dir,
            "",
            &[
                "generate",
                "--out",
                "w",
                "--members",
                "150",
                "--titles",
                "60",
                "--days",
                "20",
            ],
        ),
        "generate",
    );
    ok(&encore_in(&dir, "", &train("2", false)), "train 2 epochs");
    ok(
        &encore_in(
            &dir,
            "",
            &[
                "export",
                "--checkpoint",
                "out/c.ckpt",
                "--out",
                "out/m.encore",
            ],
        ),
        "export",
    );
    let out = dir.join("out");
    let checkpoint = std::fs::read(out.join("c.ckpt")).unwrap();
    let weights = std::fs::read(out.join("m.encore")).unwrap();
    // Every write past 16 KiB fails; the checkpoint and the weight file are larger.
    assert!(checkpoint.len() > 16 * 1024 && weights.len() > 16 * 1024);
    let full_disk = "ulimit -f 16; trap '' XFSZ;";

    // A full disk at the next checkpoint, and at an export over the existing weight file.
    let out_run = encore_in(&dir, full_disk, &train("4", true));
    failed_with(
        &out_run,
        &["writing checkpoint out/c.ckpt", "File too large"],
    );
    let out_export = encore_in(
        &dir,
        full_disk,
        &[
            "export",
            "--checkpoint",
            "out/c.ckpt",
            "--out",
            "out/m.encore",
        ],
    );
    failed_with(
        &out_export,
        &["cannot write out/m.encore", "File too large"],
    );
    assert_eq!(
        std::fs::read(out.join("c.ckpt")).unwrap(),
        checkpoint,
        "the checkpoint changed"
    );
    assert_eq!(
        std::fs::read(out.join("m.encore")).unwrap(),
        weights,
        "the weight file changed"
    );
    no_temporaries(&out);

    // A read-only output directory.
    let as_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let user = if as_root {
        "setpriv --reuid=65534 --regid=65534 --clear-groups"
    } else {
        ""
    };
    let chmod = |mode: &str| {
        assert!(
            Command::new("chmod")
                .arg(mode)
                .arg(&out)
                .status()
                .unwrap()
                .success()
        )
    };
    chmod("555");
    let read_only = |args: &[&str]| {
        Command::new("bash")
            .current_dir(&dir)
            .arg("-c")
            .arg(format!("exec {user} \"$0\" \"$@\""))
            .arg(ENCORE)
            .args(args)
            .output()
            .unwrap()
    };
    let out_run = read_only(&train("4", true));
    let out_export = read_only(&[
        "export",
        "--checkpoint",
        "out/c.ckpt",
        "--out",
        "out/m.encore",
    ]);
    chmod("755");
    failed_with(
        &out_run,
        &["writing checkpoint out/c.ckpt", "Permission denied"],
    );
    failed_with(
        &out_export,
        &["cannot write out/m.encore", "Permission denied"],
    );
    assert_eq!(std::fs::read(out.join("c.ckpt")).unwrap(), checkpoint);
    assert_eq!(std::fs::read(out.join("m.encore")).unwrap(), weights);
    no_temporaries(&out);

    // With room again, the run resumes from the kept checkpoint and finishes.
    let resumed = encore_in(&dir, "", &train("4", true));
    ok(&resumed, "resume");
    assert!(
        String::from_utf8_lossy(&resumed.stdout).contains("resuming from out/c.ckpt after epoch 2")
            || String::from_utf8_lossy(&resumed.stderr)
                .contains("resuming from out/c.ckpt after epoch 2"),
        "did not resume from epoch 2"
    );
    assert_ne!(
        std::fs::read(out.join("c.ckpt")).unwrap(),
        checkpoint,
        "no new checkpoint"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
