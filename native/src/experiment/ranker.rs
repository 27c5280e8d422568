//! `encore ranker`: the contextual ranker trained on impressions generated from an
//! experiment's training events, with a foundation model's features, and measured per task on
//! impressions made from the held-out events (search, home row, more like this) against the
//! foundation model alone, the lexical retriever alone and popularity.
//!
//! Training impressions come from the events the foundation model trained on, so its scores
//! on them are in-sample (the ranker may learn to trust them more than held-out cases
//! warrant); the held-out impressions come from events no model saw.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::module::Module;
use burn::tensor::Device;
use encore_core::Reranker;
use encore_core::data::impressions::{Impression, ImpressionConfig, ImpressionGenerator};
use encore_core::data::split::Holdout;
use encore_core::metrics::RankingMetrics;

use super::ExperimentConfig;
use super::paired;
use super::prepare::Prepared;
use super::report::print_metrics_row;
use crate::backend::Backend;
use crate::ranking::{
    FeatureBuilder, RANKER_TASKS, RankerRows, RankerShape, RankerTrainConfig, logits, model_rows,
    train_ranker, training_impressions, with_ranker,
};
use encore_core::ranker::features::{LEXICAL_COLUMN, POPULARITY_COLUMN};

/// What `encore ranker` runs.
#[derive(Debug, Clone)]
pub struct RankerRun {
    /// The experiment file (data, split).
    pub config: PathBuf,
    /// Replaces the file's holdout.
    pub holdout: Option<Holdout>,
    /// The foundation model's bundle (trained on the same split).
    pub base: PathBuf,
    /// Training impressions used (drawn from all generated).
    pub train_impressions: usize,
    /// Candidates kept per training impression (the engaged one and a sample of the others).
    pub train_candidates: usize,
    /// Impressions per step.
    pub batch_impressions: usize,
    /// Training passes, learning rate, seed.
    pub train: RankerTrainConfig,
    /// The ranker's sizes (each `None` keeps [`encore_core::ranker::RankerConfig`]'s default).
    pub shape: RankerShape,
    /// Also train one ranker per task on that task's impressions alone and measure it.
    pub task_specific: bool,
    /// α per task (from a validation run): compared against every fixed α and written into
    /// the bundle as each task's default.
    pub task_alpha: Option<Vec<(String, f32)>>,
    /// Writes the base bundle with the trained ranker here.
    pub out: Option<PathBuf>,
    /// Draws the α curve here (SVG).
    pub plot: Option<PathBuf>,
    /// Home rows are the base model's top this-many titles for the member at the time
    /// (training and held out), instead of the most popular titles.
    pub rows_from_model: Option<usize>,
}

/// The 1-based rank of the engaged candidate (the first row labelled 1) among `scores`, ties
/// counted half.
fn engaged_rank(scores: &[f32], labels: &[f32]) -> Option<usize> {
    let e = labels.iter().position(|&l| l > 0.5)?;
    let s = scores[e];
    let above = scores.iter().filter(|&&x| x > s).count();
    let ties = scores.iter().filter(|&&x| x == s).count() - 1;
    Some(1 + above + ties / 2)
}

/// Held-out impressions: each held-out event as a search, a home row (the training events'
/// most popular titles) and a "more like this" page (from the member's last training event),
/// where its title is among the candidates; each case its own draw. The previous event is
/// passed only as the page's source: its own impressions are dropped.
fn held_out_impressions(
    prepared: &Prepared,
    train_events: &[encore_core::Event],
) -> Vec<Impression> {
    let catalog = &prepared.data.catalog;
    let mut out = Vec::new();
    for (k, task) in RANKER_TASKS.iter().enumerate() {
        let cfg = ImpressionConfig {
            search_share: f64::from(u8::from(k == 0)),
            row_share: f64::from(u8::from(k == 1)),
            more_like_this_share: f64::from(u8::from(k == 2)),
            ..ImpressionConfig::default()
        };
        let generator = ImpressionGenerator::new(catalog, train_events, cfg);
        for (i, case) in prepared.cases.iter().enumerate() {
            let Some(last) = case.history.last() else {
                continue;
            };
            let mut target = case.target.clone();
            if k > 0 && target.surface == encore_core::Surface::Search {
                // A search-surface event is always drawn as a search; ask it elsewhere.
                target.surface = encore_core::Surface::Home;
            }
            let made = generator.generate(
                &[last.clone(), target.clone()],
                ((k as u64) << 32) + i as u64,
            );
            out.extend(
                made.impressions
                    .into_iter()
                    // The target's own impression (not the previous event's, which may
                    // share its second).
                    .filter(|r| {
                        r.task == *task
                            && r.timestamp == target.timestamp
                            && r.engaged == [target.item]
                    }),
            );
        }
    }
    out
}

/// Personalization weights the α curve is measured at.
pub const ALPHA_GRID: [f32; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

/// Ranks of the engaged title (per method) and, per α of [`ALPHA_GRID`], the mean lexical match
/// of the top ten (searches only) for one task's held-out impressions.
#[derive(Debug, Default)]
struct TaskRanks {
    ranks: Vec<Vec<usize>>,
    relevance: Vec<Vec<f64>>,
}

/// The mean of `lexical` over the ten rows of highest `scores` (ties by row).
fn top10_relevance(scores: &[f32], lexical: &[f32]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let top = &order[..order.len().min(10)];
    top.iter().map(|&r| f64::from(lexical[r])).sum::<f64>() / top.len().max(1) as f64
}

/// The α per task with the highest NDCG@10 on `alpha_ndcg[task][α]` (ties: the larger α).
fn best_alpha(alpha_ndcg: &[f64]) -> f32 {
    let mut best = 0;
    for (i, v) in alpha_ndcg.iter().enumerate() {
        if *v >= alpha_ndcg[best] {
            best = i;
        }
    }
    ALPHA_GRID[best]
}

/// Draws the α curve: per task, query relevance of the top ten (x, searches) or α (x, other
/// tasks) against HR@10 of the engaged title (y), one point per α.
fn plot_alpha_curve(curves: &[(String, Vec<(f64, f64)>)], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let tmp = path.with_extension("svg.tmp");
    {
        let root = SVGBackend::new(&tmp, (560, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let (x0, x1, y0, y1) = curves.iter().flat_map(|(_, p)| p).fold(
            (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
            |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
        );
        let pad = |lo: f64, hi: f64| ((hi - lo) * 0.1).max(0.01);
        let mut chart = ChartBuilder::on(&root)
            .caption("search: the α curve (α = 0 … 1)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (x0 - pad(x0, x1))..(x1 + pad(x0, x1)),
                (y0 - pad(y0, y1))..(y1 + pad(y0, y1)),
            )?;
        chart
            .configure_mesh()
            .x_desc("query relevance of the top 10 (mean lexical match)")
            .y_desc("HR@10 of the engaged title")
            .draw()?;
        for (k, (name, points)) in curves.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            chart.draw_series(points.iter().zip(ALPHA_GRID).map(|(&(x, y), a)| {
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 3, color.filled())
                    + Text::new(format!("α={a}"), (5, -12), ("sans-serif", 12))
            }))?;
        }
        chart.configure_series_labels().border_style(BLACK).draw()?;
        root.present()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs `encore ranker` and prints the per-task table, the α curve and (with per-task α
/// given) the per-task α against every fixed one; writes the bundle and the plot when asked.
pub fn ranker(run: &RankerRun) -> anyhow::Result<()> {
    let mut cfg = ExperimentConfig::read(&run.config)?;
    if let Some(h) = run.holdout {
        cfg.split.holdout = h;
    }
    let prepared = Prepared::new(&cfg, run.config.parent().unwrap_or(Path::new(".")))?;
    let catalog = &prepared.data.catalog;
    let bytes =
        std::fs::read(&run.base).with_context(|| format!("cannot read {}", run.base.display()))?;
    let reranker = Reranker::from_bytes(&bytes, &Device::flex())
        .with_context(|| format!("{} is not a valid bundle", run.base.display()))?;
    anyhow::ensure!(
        reranker.items().ids() == catalog.ids().as_slice(),
        "{} was trained on another catalog",
        run.base.display()
    );
    // Training impressions from the training events, a sample of them, each with its engaged
    // title and a sample of the others shown.
    let events: Vec<_> = prepared
        .train_set
        .iter()
        .flat_map(|h| h.events.iter().cloned())
        .collect();
    let rows_from = |list: Vec<Impression>| match run.rows_from_model {
        Some(k) => model_rows(&reranker, &prepared.train_set, list, k),
        None => Ok(list),
    };
    let train = training_impressions(
        catalog,
        &events,
        run.train_impressions,
        run.train_candidates,
        run.train.seed,
        |_| true,
        rows_from,
    )?;
    let tasks: Vec<String> = RANKER_TASKS.iter().map(|t| t.to_string()).collect();
    let mut builder = FeatureBuilder::new(catalog, &reranker, &prepared.train_set, tasks)?;
    if let Some(task_alpha) = &run.task_alpha {
        for (task, alpha) in task_alpha {
            let k = builder
                .vocabulary
                .tasks
                .iter()
                .position(|t| t == task)
                .with_context(|| format!("--task-alpha names unknown task {task:?}"))?;
            builder.vocabulary.default_alpha[k] = *alpha;
        }
    }
    let shape = run.shape.apply(builder.config());
    let batches_of = |only: Option<&str>| -> anyhow::Result<Vec<RankerRows>> {
        let chosen: Vec<Impression> = train
            .iter()
            .filter(|r| only.is_none_or(|t| r.task == t))
            .cloned()
            .collect();
        let mut batches = Vec::new();
        for chunk in chosen.chunks(run.batch_impressions.max(1)) {
            let (rows, _) = builder.rows(chunk)?;
            if !rows.is_empty() {
                batches.push(rows);
            }
        }
        Ok(batches)
    };
    let batches = batches_of(None)?;
    eprintln!(
        "{} training impressions in {} batches; ranker width {}, {} parameters",
        train.len(),
        batches.len(),
        shape.width(),
        shape.init(&Device::flex()).num_params()
    );
    let device = Backend::Cpu.training_device();
    let started = std::time::Instant::now();
    let with_fm = train_ranker(&shape, &batches, &run.train, &device)?;
    eprintln!(
        "unified ranker trained in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let without_fm = train_ranker(
        &shape,
        &batches,
        &RankerTrainConfig {
            alpha: Some(0.0),
            ..run.train.clone()
        },
        &device,
    )?;
    drop(batches);
    // One ranker of the same shape per task, trained on that task's impressions alone.
    let mut specific = Vec::new();
    if run.task_specific {
        for task in RANKER_TASKS {
            let batches = batches_of(Some(task))?;
            eprintln!("{task}-only ranker: {} batches", batches.len());
            specific.push(train_ranker(&shape, &batches, &run.train, &device)?);
        }
    }
    if let Some(out) = &run.out {
        let bundle = with_ranker(&bytes, &reranker, &with_fm, &shape, &builder.vocabulary)?;
        crate::io::write_atomic(out, &bundle)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!(
            "wrote {} ({} bytes; the ranker {} parameters)",
            out.display(),
            bundle.len(),
            with_fm.num_params()
        );
    }
    // Held-out impressions, scored chunk by chunk.
    let test = held_out_impressions(&prepared, &events);
    let test = match run.rows_from_model {
        Some(k) => model_rows(&reranker, &prepared.train_set, test, k)?,
        None => test,
    };
    let mut methods: Vec<String> = [
        "ranker (α = 1)",
        "ranker (α = 0)",
        "ranker without FM",
        "FM alone",
        "lexical alone",
        "popularity",
    ]
    .map(String::from)
    .to_vec();
    if run.task_specific {
        methods.push("task-specific ranker (α = 1)".into());
    }
    let first_alpha = methods.len();
    methods.extend(ALPHA_GRID.iter().map(|a| format!("ranker (α = {a})")));
    let ks = [10usize];
    let mut per_task: Vec<TaskRanks> = Vec::new();
    for (t, task) in RANKER_TASKS.iter().enumerate() {
        let cases: Vec<Impression> = test.iter().filter(|r| r.task == *task).cloned().collect();
        let mut out = TaskRanks {
            ranks: vec![Vec::new(); methods.len()],
            relevance: vec![Vec::new(); ALPHA_GRID.len()],
        };
        for chunk in cases.chunks(64) {
            let (rows, _): (RankerRows, _) = builder.rows(chunk)?;
            let lexical = rows.dense_column(LEXICAL_COLUMN);
            let mut scored = vec![
                logits(&with_fm, &shape, &rows, 1.0),
                logits(&with_fm, &shape, &rows, 0.0),
                logits(&without_fm, &shape, &rows, 0.0),
                rows.fm_score.clone(),
                lexical.clone(),
                rows.dense_column(POPULARITY_COLUMN),
            ];
            if run.task_specific {
                scored.push(logits(&specific[t], &shape, &rows, 1.0));
            }
            for a in ALPHA_GRID {
                scored.push(logits(&with_fm, &shape, &rows, a));
            }
            let mut at = 0;
            for &size in &rows.sizes {
                let labels = &rows.label[at..at + size];
                for (m, s) in scored.iter().enumerate() {
                    if let Some(r) = engaged_rank(&s[at..at + size], labels) {
                        out.ranks[m].push(r);
                    }
                }
                for (k, s) in scored[first_alpha..].iter().enumerate() {
                    out.relevance[k]
                        .push(top10_relevance(&s[at..at + size], &lexical[at..at + size]));
                }
                at += size;
            }
        }
        println!("{task}: {} held-out impressions", out.ranks[0].len());
        let base = paired::ndcg_per_case(&out.ranks[0], 10);
        for (m, name) in methods[..first_alpha].iter().enumerate() {
            if *task != "search" && name == "lexical alone" {
                continue;
            }
            print_metrics_row(name, &RankingMetrics::from_ranks(&out.ranks[m], &ks));
            if m > 0 {
                let (g, se) =
                    paired::paired_difference(&base, &paired::ndcg_per_case(&out.ranks[m], 10));
                println!("    NDCG@10 ranker (α = 1) − {name} = {g:+.4} ± {se:.4}");
            }
        }
        per_task.push(out);
    }
    alpha_report(run, &per_task, first_alpha)
}

/// Prints the α curve per task, the per-task α a validation run chooses (or, given per-task
/// α, its NDCG@10 against every fixed α over all tasks), and draws the curve.
fn alpha_report(run: &RankerRun, per_task: &[TaskRanks], first_alpha: usize) -> anyhow::Result<()> {
    println!(
        "α curve (the unified ranker at each α): NDCG@10 / HR@10 / query relevance of the top 10"
    );
    let mut chosen = Vec::new();
    let mut curves = Vec::new();
    for (task, t) in RANKER_TASKS.iter().zip(per_task) {
        let mut ndcg = Vec::new();
        let mut points = Vec::new();
        for (k, a) in ALPHA_GRID.iter().enumerate() {
            let m = RankingMetrics::from_ranks(&t.ranks[first_alpha + k], &[10]);
            let (rel, rel_se) = paired::mean_and_se(&t.relevance[k]);
            let (nd, nd_se) =
                paired::mean_and_se(&paired::ndcg_per_case(&t.ranks[first_alpha + k], 10));
            println!(
                "  {task:<15} α = {a:<4}  NDCG@10 {nd:.4} ± {nd_se:.4}  HR@10 {:.4}  relevance@10 {rel:.4} ± {rel_se:.4}",
                m.hr_at(10)
            );
            ndcg.push(nd);
            points.push((rel, m.hr_at(10)));
        }
        chosen.push(best_alpha(&ndcg));
        if *task == "search" {
            curves.push(("search".to_string(), points));
        }
    }
    println!(
        "best α per task on this split: --task-alpha {}",
        RANKER_TASKS
            .iter()
            .zip(&chosen)
            .map(|(t, a)| format!("{t}={a}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    if let Some(task_alpha) = &run.task_alpha {
        // Every task's cases pooled: the per-task α against each single α for all tasks.
        let pooled = |pick: &dyn Fn(usize) -> usize| -> Vec<f64> {
            per_task
                .iter()
                .enumerate()
                .flat_map(|(t, r)| paired::ndcg_per_case(&r.ranks[first_alpha + pick(t)], 10))
                .collect()
        };
        let index_of = |a: f32| ALPHA_GRID.iter().position(|&g| g == a);
        let mut picks = Vec::new();
        for task in RANKER_TASKS {
            let a = task_alpha
                .iter()
                .find(|(t, _)| t == task)
                .map(|(_, a)| *a)
                .unwrap_or(1.0);
            picks.push(index_of(a).with_context(|| {
                format!("--task-alpha {task}={a}: α must be one of {ALPHA_GRID:?}")
            })?);
        }
        let mine = pooled(&|t| picks[t]);
        let (m, se) = paired::mean_and_se(&mine);
        println!("per-task α {picks:?} (grid indices), all tasks pooled: NDCG@10 {m:.4} ± {se:.4}");
        for (k, a) in ALPHA_GRID.iter().enumerate() {
            let fixed = pooled(&|_| k);
            let (g, se) = paired::paired_difference(&mine, &fixed);
            println!("    per-task α − fixed α = {a}: {g:+.4} ± {se:.4}");
        }
    }
    if let Some(path) = &run.plot {
        plot_alpha_curve(&curves, path)?;
        println!("α curve drawn to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engaged_rank_counts_higher_scores_and_half_the_ties() {
        let labels = [0.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(engaged_rank(&[0.1, 0.5, 0.9, 0.2, 0.3], &labels), Some(2));
        assert_eq!(engaged_rank(&[0.1, 0.5, 0.5, 0.5, 0.9], &labels), Some(3));
        assert_eq!(engaged_rank(&[0.1, 0.5, 0.4, 0.2, 0.3], &labels), Some(1));
        assert_eq!(engaged_rank(&[0.1, 0.5], &[0.0, 0.0]), None);
    }
}
