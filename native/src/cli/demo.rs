//! `encore demo`: the whole pipeline on the embedded synthetic world.

use std::path::Path;
use std::time::Instant;

use encore_core::data::split::{group_by_member, leave_last_out};
use encore_core::{Catalog, Event, Reranker};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{DemoArgs, show};
use crate::evaluation::{evaluate, popularity, pushed_candidates, request_of};
use crate::io::{write_atomic, write_world};
use crate::training::{CheckpointPolicy, Monitor, train};

/// Pushed candidates per member in the demo's rerank sample.
const PUSHED: usize = 20;
/// Members in the demo's rerank sample.
const SAMPLE: usize = 300;

#[derive(Serialize)]
struct DemoSummary<'a> {
    backend: &'a str,
    train_seconds: f64,
    epochs: &'a [crate::training::EpochStats],
    weight_file_bytes: usize,
    mean_target_position_before: f64,
    mean_target_position_after: f64,
    eval: &'a crate::evaluation::EvalReport,
}

/// Runs generate → train → export → rerank → eval and prints each step.
pub fn run(a: &DemoArgs) -> anyhow::Result<()> {
    println!("== 1/5 generate the synthetic world");
    let (catalog, events) = a.data.load()?;
    let world_dir = a.out.join("world");
    write_world(&world_dir, &catalog, &events)?;
    let histories = group_by_member(&events);
    let (train_set, test_set) = leave_last_out(&histories);
    println!(
        "   {} titles, {} members, {} events -> {}",
        catalog.len(),
        histories.len(),
        events.len(),
        world_dir.display()
    );

    println!(
        "== 2/5 train the foundation model on {} (each member's last event held out)",
        a.train.backend.name()
    );
    let cfg = a.train.config();
    let ck_path = a.out.join("checkpoint.ckpt");
    let started = Instant::now();
    let trained = train(
        &train_set,
        &catalog,
        &cfg,
        a.train.backend,
        CheckpointPolicy {
            path: Some(&ck_path),
            resume: false,
        },
        Monitor {
            show_progress: true,
            ..Default::default()
        },
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    println!(
        "   {} epochs in {:.1} s, final loss {:.4}; checkpoint {}",
        trained.epochs.len(),
        train_seconds,
        trained.epochs.last().map(|e| e.loss).unwrap_or(f64::NAN),
        ck_path.display()
    );

    println!("== 3/5 export the weight file");
    let weights = trained.weights.clone();
    let model_path = a.out.join("model.encore");
    write_atomic(&model_path, &weights)?;
    let reranker = Reranker::from_bytes(&weights, &burn::tensor::Device::flex())?;
    println!(
        "   {} ({} KiB, f32, checksummed) reloaded on cpu",
        model_path.display(),
        weights.len() / 1024
    );
    if let Some(dir) = &a.web_demo {
        write_web_assets(dir, &catalog, &events, &weights)?;
        println!("   web demo assets -> {}", dir.display());
    }

    println!(
        "== 4/5 rerank pushed candidates ({PUSHED} per member, {} members)",
        SAMPLE.min(test_set.len())
    );
    let pop = popularity(&catalog, &train_set);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (mut before_sum, mut after_sum, mut n) = (0usize, 0usize, 0usize);
    let mut shown = false;
    let started = Instant::now();
    for h in test_set.iter().take(SAMPLE) {
        let pushed = pushed_candidates(
            &catalog,
            &pop,
            h.target.timestamp,
            Some(h.target.item),
            PUSHED,
            &mut rng,
        );
        let ranked = reranker.rerank(&h.history, &pushed, &request_of(&h.target))?;
        let before = pushed
            .iter()
            .position(|&x| x == h.target.item)
            .expect("target pushed")
            + 1;
        let after = ranked
            .iter()
            .position(|x| x.item == h.target.item)
            .expect("target ranked")
            + 1;
        before_sum += before;
        after_sum += after;
        n += 1;
        if !shown && h.history.len() >= 10 && before > 5 {
            show::history(&catalog, h.member, &h.history, 8);
            println!(
                "   request: surface {}, {} candidates pushed by the server",
                h.target.surface.name(),
                pushed.len()
            );
            show::before_after(&catalog, &pushed, &ranked, Some(h.target.item));
            shown = true;
        }
    }
    let per_call = started.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    let (mb, ma) = (
        before_sum as f64 / n.max(1) as f64,
        after_sum as f64 / n.max(1) as f64,
    );
    println!(
        "   where the next watched title sat among the {PUSHED}: mean position {mb:.2} as pushed, {ma:.2} after reranking ({per_call:.2} ms per rerank)"
    );

    println!("== 5/5 evaluate on the held-out next events");
    let report = evaluate(&reranker, &catalog, &train_set, &test_set)?;
    show::metrics(&report, test_set.len());
    let (m, p) = (report.model.ndcg_at(10), report.most_popular.ndcg_at(10));
    println!(
        "   NDCG@10: model {m:.4} vs most popular {p:.4} ({})",
        if m > p {
            format!("{:+.0}%", (m / p - 1.0) * 100.0)
        } else {
            "model does NOT beat the baseline".into()
        }
    );

    let summary = DemoSummary {
        backend: a.train.backend.name(),
        train_seconds,
        epochs: &trained.epochs,
        weight_file_bytes: weights.len(),
        mean_target_position_before: mb,
        mean_target_position_after: ma,
        eval: &report,
    };
    write_atomic(
        &a.out.join("demo-summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    println!("summary -> {}", a.out.join("demo-summary.json").display());
    Ok(())
}

#[derive(Serialize)]
struct WebItem<'a> {
    id: u32,
    title: &'a str,
    kind: encore_core::ItemKind,
    genres: Vec<&'a str>,
    added_at: i64,
}

#[derive(Serialize)]
struct WebMember<'a> {
    member: u32,
    history: &'a [Event],
    candidates: Vec<u32>,
}

/// Writes what the web demo loads: `model.encore`, `catalog.json` (titles) and `members.json`
/// (sample members' recent events with the candidates a server would push them).
pub fn write_web_assets(
    dir: &Path,
    catalog: &Catalog,
    events: &[Event],
    weights: &[u8],
) -> anyhow::Result<()> {
    write_atomic(&dir.join("model.encore"), weights)?;
    let items: Vec<WebItem> = catalog
        .items
        .iter()
        .map(|i| WebItem {
            id: i.id,
            title: &i.title,
            kind: i.kind,
            genres: i
                .genres
                .iter()
                .map(|&g| catalog.genres[g as usize].as_str())
                .collect(),
            added_at: i.added_at,
        })
        .collect();
    write_atomic(&dir.join("catalog.json"), &serde_json::to_vec(&items)?)?;
    let histories = group_by_member(events);
    let pop = popularity(catalog, &histories);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let members: Vec<WebMember> = histories
        .iter()
        .filter(|h| h.events.len() >= 12)
        .step_by(37)
        .take(12)
        .map(|h| {
            let history = &h.events[h.events.len().saturating_sub(30)..];
            let now = history.last().map(|e| e.timestamp).unwrap_or(0);
            WebMember {
                member: h.member,
                history,
                candidates: pushed_candidates(catalog, &pop, now, None, 24, &mut rng),
            }
        })
        .collect();
    write_atomic(&dir.join("members.json"), &serde_json::to_vec(&members)?)?;
    Ok(())
}
