//! Cost curves (see [`BenchArgs::curves`]): the stateless rerank and an appended event's
//! rerank against the history length (the window following it), and the bundle's size and
//! the same latencies against the catalog size, each point a fresh untrained model of the
//! benchmark's shape; printed as `RESULT curve-…` lines and drawn as log–log SVG plots.

use std::path::Path;

use anyhow::Context as _;
use encore_core::weights::{Quantization, requantize, save_model};
use encore_core::{FoundationModelConfig, MemberSession, RerankRequest, Reranker, Surface};
use plotters::prelude::*;

use super::BenchArgs;
use super::timing::{percentile, time_ms};
use crate::backend::{run_inline, synthetic_history};

/// One point's p50 latencies (ms): a stateless rerank and an appended event + rerank.
struct Point {
    stateless: f64,
    append: f64,
}

/// Times a fresh model of shape `config` (stored as `a.dtype`): `h` events, `c` candidates.
fn measure(
    a: &BenchArgs,
    config: &FoundationModelConfig,
    h: usize,
    c: usize,
) -> anyhow::Result<(Point, Vec<u8>)> {
    let model = config.init(&burn::tensor::Device::flex());
    let ids: Vec<u32> = (1..=config.n_items as u32).collect();
    let f32_bytes = save_model(&model, config, &ids, Quantization::F32);
    drop(model);
    let reranker = Reranker::from_bytes(
        &requantize(&f32_bytes, a.dtype)?,
        &burn::tensor::Device::flex(),
    )?;
    let events = synthetic_history(&ids, h + 1);
    let candidates: Vec<u32> = ids[ids.len() - c.min(ids.len())..].to_vec();
    let request = RerankRequest {
        timestamp: Some(events[h].timestamp),
        ..RerankRequest::on(Surface::Home)
    };
    let history = &events[..h];
    let stateless = run_inline(|| {
        time_ms(a.warmup, a.iters, || {
            reranker.rerank(history, &candidates, &request)?;
            Ok(())
        })
    })?;
    let mut primed = MemberSession::new(history[..h - 1].to_vec())?;
    reranker.rerank_session(&mut primed, &candidates, &request)?;
    let mut copies = vec![primed; a.warmup + a.iters].into_iter();
    let append = run_inline(|| {
        time_ms(a.warmup, a.iters, || {
            let mut session = copies.next().expect("one copy per run");
            session.append(history[h - 1].clone())?;
            reranker.rerank_session(&mut session, &candidates, &request)?;
            Ok(())
        })
    })?;
    let point = Point {
        stateless: percentile(&stateless, 0.5),
        append: percentile(&append, 0.5),
    };
    Ok((point, f32_bytes))
}

/// Draws `series` (name, points) on log–log axes to `path` (SVG), written atomically.
pub(super) fn plot(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let all = series.iter().flat_map(|(_, p)| p.iter().copied());
    let (x0, x1, y0, y1) = all.fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), (x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    anyhow::ensure!(
        x0 > 0.0 && y0 > 0.0,
        "{title}: log axes need positive values"
    );
    let tmp = path.with_extension("svg.tmp");
    {
        let root = SVGBackend::new(&tmp, (620, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (x0 / 1.5..x1 * 1.5).log_scale(),
                (y0 / 1.5..y1 * 1.5).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        for (k, (name, points)) in series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart.configure_series_labels().border_style(BLACK).draw()?;
        root.present()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs both sweeps of `a` and writes `history.svg` and `catalog.svg` into `dir`.
pub fn cost_curves(a: &BenchArgs, base: &FoundationModelConfig, dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.history.iter().all(|&h| h >= 2) && !a.catalogs.is_empty() && !a.candidates.is_empty(),
        "--curves needs histories of at least 2 events, --catalogs and --candidates"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let c = a.candidates[0];
    let (mut stateless, mut append) = (Vec::new(), Vec::new());
    for &h in &a.history {
        // The window follows the history, so that every event is read.
        let mut config = base.clone().with_max_len(h + 1);
        config.n_items = base.n_items.max(c);
        let (p, _) = measure(a, &config, h, c)?;
        println!(
            "RESULT curve-history history={h} window={} candidates={c} stateless_p50={:.3} ms append_p50={:.3} ms",
            h + 1,
            p.stateless,
            p.append
        );
        stateless.push((h as f64, p.stateless));
        append.push((h as f64, p.append));
    }
    plot(
        &dir.join("history.svg"),
        &format!("rerank cost against history length ({c} candidates)"),
        "history (events; the window follows it)",
        "p50 ms",
        &[
            ("stateless rerank", stateless),
            ("appended event + rerank", append),
        ],
    )?;
    let h = base.max_len.saturating_sub(1).min(200).max(2);
    let (mut sizes_f32, mut sizes_int8, mut latency, mut append) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &n in &a.catalogs {
        let mut config = base.clone();
        config.n_items = n.max(c);
        let (p, f32_bytes) = measure(a, &config, h, c)?;
        let int8 = requantize(&f32_bytes, Quantization::Int8)?.len();
        println!(
            "RESULT curve-catalog titles={n} history={h} candidates={c} bundle_f32={} bundle_int8={int8} stateless_p50={:.3} ms append_p50={:.3} ms",
            f32_bytes.len(),
            p.stateless,
            p.append
        );
        let x = n as f64;
        sizes_f32.push((x, f32_bytes.len() as f64 / 1e6));
        sizes_int8.push((x, int8 as f64 / 1e6));
        latency.push((x, p.stateless));
        append.push((x, p.append));
    }
    plot(
        &dir.join("catalog.svg"),
        &format!("bundle size (MB) and rerank cost (ms) against catalog size (history {h})"),
        "titles in the bundle",
        "MB or p50 ms",
        &[
            ("bundle, f32 (MB)", sizes_f32),
            ("bundle, int8 (MB)", sizes_int8),
            ("stateless rerank (ms)", latency),
            ("appended event + rerank (ms)", append),
        ],
    )?;
    println!("cost curves drawn to {}", dir.display());
    Ok(())
}
