//! A training run killed (SIGKILL) at random points, 25 times, and resumed each time ends with
//! the same model, bit for bit, as the uninterrupted run; every checkpoint a kill leaves
//! behind loads, and no killed write's temporary file outlives the run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{RngExt, SeedableRng};

/// Kills before the run is left to finish.
const KILLS: usize = 25;

fn encore(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_encore"));
    c.current_dir(dir).args(args);
    c
}

/// `args` as string slices.
fn as_refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn run_ok(dir: &Path, args: &[&str]) {
    let out = encore(dir, args).output().expect("encore runs");
    assert!(
        out.status.success(),
        "encore {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_run_killed_25_times_ends_with_the_uninterrupted_model() {
    let dir = std::env::temp_dir().join(format!("encore-killed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(
        &dir,
        &[
            "generate",
            "--out",
            "w",
            "--members",
            "200",
            "--titles",
            "80",
            "--days",
            "30",
        ],
    );
    let train = |checkpoint: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--epochs",
            "40",
            "--data",
            "w",
            "--d-model",
            "16",
            "--max-len",
            "16",
            "--n-layers",
            "1",
            "--checkpoint",
            checkpoint,
        ];
        if resume {
            args.push("--resume");
        }
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    // The uninterrupted run, timed: a kill falls within about one epoch's time after a
    // checkpoint, on a loaded machine as on an idle one.
    let started = std::time::Instant::now();
    run_ok(&dir, &as_refs(&train("reference.ckpt", false)));
    let full_ms = started.elapsed().as_millis() as u64;
    run_ok(
        &dir,
        &[
            "export",
            "--checkpoint",
            "reference.ckpt",
            "--out",
            "reference.encore",
        ],
    );

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (mut kills, mut finished) = (0, false);
    // Checkpoint sizes after the kills: each finished epoch adds its statistics, so distinct
    // sizes are distinct points of progress.
    let mut progress_seen = std::collections::BTreeSet::new();
    for _ in 0..KILLS * 4 {
        let mut child = encore(&dir, &as_refs(&train("killed.ckpt", true)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("encore starts");
        if kills < KILLS {
            // Once this run has written a checkpoint (an epoch further), a random moment
            // within about one more epoch: inside training, at times inside the next write.
            let stamp = |p: &Path| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.len(), m.modified().ok()))
            };
            let before = stamp(&dir.join("killed.ckpt"));
            while child.try_wait().unwrap().is_none() && stamp(&dir.join("killed.ckpt")) == before {
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..full_ms / 40 + 2)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                // Whatever the kill interrupted, the checkpoint on disk loads.
                if dir.join("killed.ckpt").exists() {
                    let out = encore(
                        &dir,
                        &[
                            "export",
                            "--checkpoint",
                            "killed.ckpt",
                            "--out",
                            "probe.encore",
                        ],
                    )
                    .output()
                    .unwrap();
                    assert!(
                        out.status.success(),
                        "after kill {kills} the checkpoint does not load: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    progress_seen.insert(std::fs::metadata(dir.join("killed.ckpt")).unwrap().len());
                }
                continue;
            }
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the resumed run failed: {stderr}");
        // The last run continued from the killed runs' checkpoint, not from scratch.
        let resumed_after: usize = stderr
            .split("resuming from killed.ckpt after epoch ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the last run did not resume: {stderr}"));
        assert!(resumed_after >= 1, "{stderr}");
        finished = true;
        break;
    }
    assert!(finished, "the run never finished");
    assert_eq!(kills, KILLS);
    assert!(
        progress_seen.len() >= 5,
        "the kills fell at only {} points of progress",
        progress_seen.len()
    );
    run_ok(
        &dir,
        &[
            "export",
            "--checkpoint",
            "killed.ckpt",
            "--out",
            "killed.encore",
        ],
    );
    let reference = std::fs::read(dir.join("reference.encore")).unwrap();
    let killed = std::fs::read(dir.join("killed.encore")).unwrap();
    assert!(
        reference == killed,
        "the model after {kills} kills differs from the uninterrupted run's"
    );
    // The temporary files of killed checkpoint writes went with the next successful write.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
