//! `encore ranker` as a user runs it on a small world: the ranker trains on impressions with
//! the foundation model's features and is measured per task beside its baselines and the
//! task-specific rankers, over α, and with per-task α; it writes a bundle whose ranker serves
//! contextual reranks with those α as defaults and the α curve's plot; a bundle of another
//! catalog is refused by name.

use std::path::Path;
use std::process::Command;

fn encore(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_encore"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("encore runs")
}

fn config(members: usize, titles: usize) -> String {
    format!(
        "[data]\nsource = \"synthetic\"\nmembers = {members}\ntitles = {titles}\ndays = 30\n\n\
         [split]\nholdout = \"validation\"\n\n[training]\nepochs = 1\nbatch_size = 32\n\n\
         [training.model]\nd_model = 16\nn_heads = 2\nn_layers = 1\nd_ff = 32\nmax_len = 24\n\n\
         [run]\nout = \"run-{titles}\"\neval_every = 0\n"
    )
}

#[test]
fn the_ranker_trains_on_impressions_and_is_measured_per_task() {
    let dir = std::env::temp_dir().join(format!("encore-ranker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tiny.toml"), config(120, 80)).unwrap();
    let trained = encore(&dir, &["train", "--config", "tiny.toml"]);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let args = [
        "ranker",
        "--config",
        "tiny.toml",
        "--base",
        "run-80/model.encore",
        "--train-impressions",
        "300",
        "--epochs",
        "1",
        "--d-embed",
        "8",
        "--d-hidden",
        "32",
        "--task-specific",
        "--task-alpha",
        "search=0.5,home_row=1,more_like_this=0",
        "--out",
        "ranked.encore",
        "--plot",
        "alpha.svg",
        "--rows-from-model",
        "40",
    ];
    let out = encore(&dir, &args);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for task in ["search", "home_row", "more_like_this"] {
        assert!(printed.contains(&format!("{task}: ")), "{task}: {printed}");
    }
    // Every method's row, and the lexical baseline only for searches.
    for method in [
        "ranker (α = 1)",
        "ranker (α = 0)",
        "ranker without FM",
        "FM alone",
        "popularity",
    ] {
        let rows = printed.lines().filter(|l| l.starts_with(method)).count();
        assert_eq!(rows, 3, "{method}: {printed}");
    }
    let lexical = printed
        .lines()
        .filter(|l| l.starts_with("lexical alone"))
        .count();
    assert_eq!(lexical, 1, "{printed}");
    let specific = printed
        .lines()
        .filter(|l| l.starts_with("task-specific ranker (α = 1)"))
        .count();
    assert_eq!(specific, 3, "{printed}");
    // The α curve: every task at every α, the best α per task, the per-task α against each
    // fixed one.
    for task in ["search", "home_row", "more_like_this"] {
        for alpha in ["0 ", "0.25", "0.5", "0.75", "1 "] {
            let line = format!("{task:<15} α = {alpha}");
            assert!(printed.contains(&line), "{line}: {printed}");
        }
    }
    assert!(
        printed.contains("best α per task on this split: --task-alpha search="),
        "{printed}"
    );
    let against = printed
        .lines()
        .filter(|l| l.trim_start().starts_with("per-task α − fixed α = "))
        .count();
    assert_eq!(against, 5, "{printed}");
    let svg = std::fs::read_to_string(dir.join("alpha.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("HR@10"),
        "{svg:.200}"
    );
    // The bundle serves contextual reranks, each task's α the one given.
    let bytes = std::fs::read(dir.join("ranked.encore")).unwrap();
    let reranker =
        encore_core::Reranker::from_bytes(&bytes, &burn::tensor::Device::flex()).unwrap();
    let ranker = reranker.ranker().expect("the bundle carries the ranker");
    assert_eq!(
        ranker.vocabulary.tasks,
        ["search", "home_row", "more_like_this"]
    );
    assert_eq!(ranker.vocabulary.default_alpha, [0.5, 1.0, 0.0]);
    assert_eq!(ranker.weights.config.d_embed, 8);
    let ids = &reranker.items().ids()[..20];
    let history = [encore_core::Event::implicit(1, ids[0], 1_700_000_000)];
    let ranked = reranker
        .rerank_in_context(
            &history,
            ids,
            &encore_core::RerankRequest::on(encore_core::Surface::Search),
            &encore_core::ranker::RankContext::task("search").with_query("drama"),
        )
        .unwrap();
    assert_eq!(ranked.len(), 20);
    // A bundle trained on another catalog is refused by name.
    std::fs::write(dir.join("other.toml"), config(120, 60)).unwrap();
    let other = encore(&dir, &["train", "--config", "other.toml"]);
    assert!(other.status.success());
    let mut bad = args;
    bad[4] = "run-60/model.encore";
    let refused = encore(&dir, &bad);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("run-60/model.encore was trained on another catalog"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
