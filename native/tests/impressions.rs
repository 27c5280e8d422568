//! `encore impressions` as a user runs it: an impression log of a small synthetic world that
//! reads back through the log parser, the same on a second run, and bad shares refused.

use std::process::Command;

use encore_core::data::impressions::parse_impression_log;
use encore_core::data::source::LineOptions;
use encore_core::{SyntheticWorld, SyntheticWorldConfig};

fn encore(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_encore"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("encore runs")
}

#[test]
fn impressions_are_written_as_a_log_that_reads_back() {
    let dir = std::env::temp_dir().join(format!("encore-impressions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let world = ["--members", "40", "--titles", "90", "--days", "15"];
    let args = |out: &str| {
        let mut a = vec!["impressions", "--out", out, "--candidates", "20"];
        a.extend(world);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |out: &str| {
        let args = args(out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = encore(&dir, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let printed = run("a.jsonl");
    run("b.jsonl");
    let a = std::fs::read(dir.join("a.jsonl")).unwrap();
    assert_eq!(
        a,
        std::fs::read(dir.join("b.jsonl")).unwrap(),
        "deterministic"
    );
    let w = SyntheticWorld::generate(&SyntheticWorldConfig {
        members: 40,
        titles: 90,
        days: 15,
        ..Default::default()
    });
    let (log, skipped) =
        parse_impression_log("a.jsonl", &a, &w.catalog, LineOptions::default()).unwrap();
    assert_eq!(skipped, 0);
    assert!(
        printed.contains(&format!("({} impressions", log.len())),
        "{printed}"
    );
    let searches = log.iter().filter(|r| r.task == "search").count();
    assert!(
        printed.contains(&format!("{searches} searches")),
        "{printed}"
    );
    assert!(log.iter().all(|r| r.candidates.len() == 20));
    // Shares that cannot be met are refused by name.
    let o = encore(
        &dir,
        &["impressions", "--search-share", "0.7", "--row-share", "0.5"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sum to at most 1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
