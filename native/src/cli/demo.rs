//! `encore demo`: the whole pipeline on the embedded synthetic world: the foundation model,
//! the on-device student distilled from it, reranking and evaluation of both, and (optionally)
//! the web demo's assets, which run the student.

use anyhow::Context as _;
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use encore_core::data::split::{group_by_member, leave_last_out};
use encore_core::{Catalog, Event, Reranker, Surface};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{DemoArgs, show};
use crate::evaluation::{evaluate, popularity, pushed_candidates, request_of};
use crate::io::{write_atomic, write_world};
use crate::ranking::{RankerFit, RankerShape, RankerTrainConfig, fit_ranker};
use crate::training::distill::DistillConfig;
use crate::training::{CheckpointPolicy, Monitor, TrainConfig, train};
use encore_core::weights::{Quantization, load_model, requantize, retain_items};

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
    student_train_seconds: f64,
    student_epochs: &'a [crate::training::EpochStats],
    student_weight_file_bytes: usize,
    mean_target_position_before: f64,
    mean_target_position_after: f64,
    eval: &'a crate::evaluation::EvalReport,
    student_eval: &'a crate::evaluation::EvalReport,
}

/// The on-device student's shape next to the demo's foundation model: one layer of width 32
/// (two heads, feed-forward 128), the same window; trained with the same options plus the
/// distillation objective against `teacher`.
fn student_config(teacher_cfg: &TrainConfig, teacher: &Path) -> TrainConfig {
    TrainConfig {
        model: teacher_cfg
            .model
            .clone()
            .with_d_model(32)
            .with_n_heads(2)
            .with_n_layers(1)
            .with_d_ff(128),
        distill: Some(DistillConfig {
            teacher: teacher.to_path_buf(),
            ..DistillConfig::default()
        }),
        ..teacher_cfg.clone()
    }
}

/// Runs generate → train → distill → export → rerank → eval and prints each step.
pub fn run(a: &DemoArgs) -> anyhow::Result<()> {
    println!("== 1/6 generate the synthetic world");
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
        "== 2/6 train the foundation model on {} (each member's last event held out)",
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

    let model_path = a.out.join("model.encore");
    write_atomic(&model_path, &trained.weights)
        .with_context(|| format!("cannot write {}", model_path.display()))?;

    let student_cfg = student_config(&cfg, &model_path);
    println!(
        "== 3/6 distill the on-device student (1 layer of width {} instead of {} of {}) from {}",
        student_cfg.model.d_model,
        cfg.model.n_layers,
        cfg.model.d_model,
        model_path.display()
    );
    let started = Instant::now();
    let student = train(
        &train_set,
        &catalog,
        &student_cfg,
        a.train.backend,
        CheckpointPolicy {
            path: Some(&a.out.join("student.ckpt")),
            resume: false,
        },
        Monitor {
            show_progress: true,
            ..Default::default()
        },
    )?;
    let student_seconds = started.elapsed().as_secs_f64();
    println!(
        "   {} epochs in {:.1} s, final loss {:.4}",
        student.epochs.len(),
        student_seconds,
        student.epochs.last().map(|e| e.loss).unwrap_or(f64::NAN),
    );

    // A prompt set per surface on the student (deep form: a surface switch costs the request
    // token alone), for the web demo's surface tabs.
    let started = Instant::now();
    let prompt_cfg = crate::prompting::PromptTuneConfig {
        epochs: 2,
        ..Default::default()
    };
    let surfaces = [Surface::Search, Surface::Kids, Surface::MobileFeed];
    let (student_weights, losses) = crate::prompting::with_surface_prompts(
        &student.weights,
        &train_set,
        &catalog,
        &surfaces,
        &prompt_cfg,
        a.train.backend,
    )?;
    println!(
        "   a prompt set per surface on the student ({} vectors, {} form; losses {}) in {:.1} s",
        prompt_cfg.length,
        prompt_cfg.form.name(),
        losses
            .iter()
            .map(|(s, l)| format!("{} {l:.3}", s.name()))
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );

    println!("== 4/6 export the weight files");
    let student_path = a.out.join("student.encore");
    write_atomic(&student_path, &student_weights)
        .with_context(|| format!("cannot write {}", student_path.display()))?;
    let teacher_reranker = Reranker::from_bytes(&trained.weights, &burn::tensor::Device::flex())?;
    let reranker = Reranker::from_bytes(&student_weights, &burn::tensor::Device::flex())?;
    println!(
        "   {} ({} KiB) and the student {} ({} KiB): f32, checksummed, each with its item \
         content encoder; reloaded on cpu",
        model_path.display(),
        trained.weights.len() / 1024,
        student_path.display(),
        student_weights.len() / 1024
    );
    if let Some(dir) = &a.web_demo {
        // The page's bundle: the student without the newest titles (the server pushes them
        // with their metadata), with a contextual ranker trained on that model for the
        // search box, "more like this" and the α slider.
        let started = Instant::now();
        let reduced = web_bundle(&catalog, &student_weights)?;
        let with_ranker = fit_ranker(&reduced, &catalog, &train_set, &web_ranker_fit(cfg.seed))?;
        let int8 = requantize(&with_ranker, Quantization::Int8)?;
        write_web_assets(dir, &catalog, &events, &int8)?;
        println!(
            "   web demo assets (the student with a contextual ranker trained on it in {:.1} s, int8) -> {}",
            started.elapsed().as_secs_f64(),
            dir.display()
        );
    }

    println!(
        "== 5/6 rerank pushed candidates with the student ({PUSHED} per member, {} members)",
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

    println!("== 6/6 evaluate on the held-out next events");
    let teacher_report = evaluate(&teacher_reranker, &catalog, &train_set, &test_set)?;
    let report = evaluate(&reranker, &catalog, &train_set, &test_set)?;
    show::metrics(&teacher_report, test_set.len());
    let (t, s, p) = (
        teacher_report.model.ndcg_at(10),
        report.model.ndcg_at(10),
        report.most_popular.ndcg_at(10),
    );
    println!(
        "   NDCG@10: foundation model {t:.4}, on-device student {s:.4} ({:.0}% of it), most popular {p:.4}{}",
        100.0 * s / t.max(1e-12),
        if s > p {
            String::new()
        } else {
            " (the student does NOT beat the baseline)".into()
        }
    );

    let summary = DemoSummary {
        backend: a.train.backend.name(),
        train_seconds,
        epochs: &trained.epochs,
        weight_file_bytes: trained.weights.len(),
        student_train_seconds: student_seconds,
        student_epochs: &student.epochs,
        student_weight_file_bytes: student_weights.len(),
        mean_target_position_before: mb,
        mean_target_position_after: ma,
        eval: &teacher_report,
        student_eval: &report,
    };
    write_atomic(
        &a.out.join("demo-summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )
    .with_context(|| format!("cannot write {}", a.out.join("demo-summary.json").display()))?;
    println!("summary -> {}", a.out.join("demo-summary.json").display());
    Ok(())
}

/// Titles the web demo's bundle leaves out: the newest arrivals, which the page receives as
/// candidates pushed with their metadata (and the bundle's content encoder embeds).
pub const WEB_NEW_TITLES: usize = 6;

#[derive(Serialize)]
struct WebItem<'a> {
    id: u32,
    title: &'a str,
    kind: &'static str,
    genres: Vec<&'a str>,
    language: &'a str,
    release_year: u16,
    added_at: i64,
    /// Not in the bundle: pushed with its metadata.
    new: bool,
}

#[derive(Serialize)]
struct WebMember<'a> {
    member: u32,
    history: Vec<&'a Event>,
    candidates: Vec<u32>,
}

/// The web demo's contextual ranker: small (embeddings of 8, one cross layer, one MLP block
/// of 64), 4,000 impressions, 2 epochs.
fn web_ranker_fit(seed: u64) -> RankerFit {
    RankerFit {
        impressions: 4000,
        candidates: 20,
        batch_impressions: 32,
        shape: RankerShape {
            d_embed: Some(8),
            d_hidden: Some(64),
            n_cross: Some(1),
            n_mlp: Some(1),
        },
        train: RankerTrainConfig {
            epochs: 2,
            learning_rate: 1e-3,
            alpha: None,
            seed,
        },
    }
}

/// The titles the web demo's bundle leaves out of `loaded` (see [`WEB_NEW_TITLES`]): none
/// without an item content encoder.
fn web_new_titles(catalog: &Catalog, loaded: &encore_core::weights::LoadedModel) -> HashSet<u32> {
    let mut newest: Vec<&encore_core::Item> = catalog.items.iter().collect();
    newest.sort_by_key(|i| (std::cmp::Reverse(i.added_at), i.id));
    match loaded.content_encoder {
        Some(_) => newest.iter().take(WEB_NEW_TITLES).map(|i| i.id).collect(),
        None => HashSet::new(),
    }
}

/// `weights` without the titles the web demo pushes with metadata (as `write_web_assets`
/// leaves them out).
pub fn web_bundle(catalog: &Catalog, weights: &[u8]) -> anyhow::Result<Vec<u8>> {
    let loaded = load_model(weights, &burn::tensor::Device::flex())?;
    let new_titles = web_new_titles(catalog, &loaded);
    if new_titles.is_empty() {
        return Ok(weights.to_vec());
    }
    let quantization = loaded.quantization;
    let before = retain_items(loaded, |id| !new_titles.contains(&id));
    Ok(before.to_bundle(&before.prompts, quantization))
}

/// Writes what the web demo loads: `model.encore` (`weights` without the
/// [`WEB_NEW_TITLES`] newest titles when it carries an item content encoder), `catalog.json`
/// (every title, the left-out ones marked `new`) and `members.json` (sample members' recent
/// events, without events of left-out titles, with the candidates a server would push them:
/// popular titles available then, plus some of the new ones).
pub fn write_web_assets(
    dir: &Path,
    catalog: &Catalog,
    events: &[Event],
    weights: &[u8],
) -> anyhow::Result<()> {
    let loaded = load_model(weights, &burn::tensor::Device::flex())?;
    let new_titles = web_new_titles(catalog, &loaded);
    // A bundle that already lacks them (one whose ranker was trained on the reduced model)
    // is written as it is.
    let bundle = if new_titles
        .iter()
        .all(|&id| loaded.items.index_of(id).is_none())
    {
        weights.to_vec()
    } else {
        web_bundle(catalog, weights)?
    };
    write_atomic(&dir.join("model.encore"), &bundle)
        .with_context(|| format!("cannot write {}", dir.join("model.encore").display()))?;
    let items: Vec<WebItem> = catalog
        .items
        .iter()
        .map(|i| WebItem {
            id: i.id,
            title: &i.title,
            kind: i.kind.name(),
            genres: i
                .genres
                .iter()
                .map(|&g| catalog.genres[g as usize].as_str())
                .collect(),
            language: &i.language,
            release_year: i.release_year,
            added_at: i.added_at,
            new: new_titles.contains(&i.id),
        })
        .collect();
    write_atomic(&dir.join("catalog.json"), &serde_json::to_vec(&items)?)
        .with_context(|| format!("cannot write {}", dir.join("catalog.json").display()))?;
    let histories = group_by_member(events);
    let pop: Vec<f32> = popularity(catalog, &histories)
        .into_iter()
        .zip(&catalog.items)
        .map(|(p, i)| if new_titles.contains(&i.id) { 0.0 } else { p })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut new_list: Vec<u32> = new_titles.iter().copied().collect();
    new_list.sort_unstable();
    let members: Vec<WebMember> = histories
        .iter()
        .filter(|h| h.events.len() >= 12)
        .step_by(37)
        .take(12)
        .enumerate()
        .map(|(k, h)| {
            let history: Vec<&Event> = h.events[h.events.len().saturating_sub(30)..]
                .iter()
                .filter(|e| !new_titles.contains(&e.item))
                .collect();
            let now = history.last().map_or(0, |e| e.timestamp);
            let mut candidates: Vec<u32> =
                pushed_candidates(catalog, &pop, now, None, 30, &mut rng)
                    .into_iter()
                    .filter(|id| !new_titles.contains(id))
                    .take(20)
                    .collect();
            // Two or three new arrivals per member, where the server placed them.
            for (j, &id) in new_list.iter().cycle().skip(k).take(2 + k % 2).enumerate() {
                candidates.insert((3 + 7 * j).min(candidates.len()), id);
            }
            WebMember {
                member: h.member,
                history,
                candidates,
            }
        })
        .collect();
    write_atomic(&dir.join("members.json"), &serde_json::to_vec(&members)?)
        .with_context(|| format!("cannot write {}", dir.join("members.json").display()))?;
    Ok(())
}
