//! `encore ablate`: an experiment run as configured and once without each feature (same data,
//! split, epochs and seed), then optionally the cold-start pair (ID + content vs ID-only with a
//! share of titles withheld from training), reported as one table.

use std::path::{Path, PathBuf};

use encore_core::metrics::RankingMetrics;
use serde::Serialize;

use super::{ExperimentConfig, Overrides, run_config};
use crate::io::write_atomic;

/// One ablation: a name, what it changes, and the change (false when the configuration already
/// has the feature off, so the run would repeat the full model's).
pub struct Variant {
    /// Short name, also the run's subdirectory.
    pub name: &'static str,
    /// What the variant removes.
    pub removes: &'static str,
    /// Applies the change; false if there was nothing to remove.
    pub apply: fn(&mut ExperimentConfig) -> bool,
}

fn no_rollup(c: &mut ExperimentConfig) -> bool {
    std::mem::replace(&mut c.training.model.rollup_window_s, 0) > 0
}

fn no_content(c: &mut ExperimentConfig) -> bool {
    std::mem::replace(&mut c.training.content_embeddings, false)
}

fn no_mtp(c: &mut ExperimentConfig) -> bool {
    std::mem::replace(&mut c.training.objectives.mtp_items, 1) > 1
}

fn no_aux(c: &mut ExperimentConfig) -> bool {
    let o = &mut c.training.objectives;
    let on = o.any_aux();
    o.genre_weight = 0.0;
    o.action_weight = 0.0;
    o.duration_weight = 0.0;
    o.time_to_next_weight = 0.0;
    on
}

fn no_context(c: &mut ExperimentConfig) -> bool {
    std::mem::replace(&mut c.training.model.context_features, false)
}

fn id_only(c: &mut ExperimentConfig) -> bool {
    // Every removal runs (no short-circuit).
    [no_rollup, no_content, no_mtp, no_aux, no_context]
        .map(|f| f(c))
        .contains(&true)
}

/// The variants, the full model first.
pub const VARIANTS: [Variant; 7] = [
    Variant {
        name: "full",
        removes: "nothing (the configuration as written)",
        apply: |_| true,
    },
    Variant {
        name: "no-rollup",
        removes: "roll-up of repeated interactions",
        apply: no_rollup,
    },
    Variant {
        name: "no-content",
        removes: "content embeddings (metadata and text vectors)",
        apply: no_content,
    },
    Variant {
        name: "no-mtp",
        removes: "multi-token prediction",
        apply: no_mtp,
    },
    Variant {
        name: "no-aux",
        removes: "auxiliary heads",
        apply: no_aux,
    },
    Variant {
        name: "no-context",
        removes: "context fields (when, where, action, duration)",
        apply: no_context,
    },
    Variant {
        name: "id-only",
        removes: "all of the above",
        apply: id_only,
    },
];

/// One row of the ablation table.
#[derive(Debug, Clone, Serialize)]
pub struct AblationRow {
    /// Variant name (`cold-…` for the cold-start pair).
    pub name: String,
    /// What it removes.
    pub removes: String,
    /// Final metrics on every held-out case; `None` when skipped.
    pub model: Option<RankingMetrics>,
    /// Cold-start runs: metrics on the cases whose target is a withheld title.
    pub withheld: Option<RankingMetrics>,
    /// Training seconds of this process and mean tokens/s.
    pub seconds: f64,
    /// Mean target tokens per second.
    pub tokens_per_s: f64,
    /// Why it was skipped, if it was.
    pub skipped: Option<String>,
}

/// What `encore ablate` runs: which variants, and the cold-start share (0: no cold-start pair).
#[derive(Debug, Clone, Default)]
pub struct AblationPlan {
    /// Variant names to run (empty: all).
    pub only: Vec<String>,
    /// Share of titles withheld for the cold-start pair (0: skip it).
    pub cold_start: f64,
}

/// Runs the ablations of the experiment at `path`; each run goes to `<out>/<variant>` (out:
/// `--out`, else the file's `run.out` + `-ablation`), resumable. Writes `ablation.md` and
/// `ablation.json` there and returns the rows.
pub fn ablate(
    path: &Path,
    overrides: &Overrides,
    plan: &AblationPlan,
) -> anyhow::Result<Vec<AblationRow>> {
    let mut base = ExperimentConfig::read_with(path, &overrides.sets)?;
    let out = overrides.out.clone().unwrap_or_else(|| {
        let mut o = base.run.out.clone().into_os_string();
        o.push("-ablation");
        PathBuf::from(o)
    });
    overrides.apply_to(&mut base);
    for name in &plan.only {
        anyhow::ensure!(
            VARIANTS.iter().any(|v| v.name == name) || name.starts_with("cold-"),
            "unknown ablation {name:?}; known: {}",
            VARIANTS.map(|v| v.name).join(", ")
        );
    }
    let wanted = |name: &str| plan.only.is_empty() || plan.only.iter().any(|o| o == name);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut runs: Vec<(String, String, fn(&mut ExperimentConfig) -> bool, f64)> = VARIANTS
        .iter()
        .map(|v| (v.name.to_string(), v.removes.to_string(), v.apply, 0.0))
        .collect();
    if plan.cold_start > 0.0 {
        let share = plan.cold_start;
        let what = format!("{:.0}% of titles withheld from training", share * 100.0);
        runs.push(("cold-full".into(), what.clone(), VARIANTS[0].apply, share));
        runs.push(("cold-id-only".into(), what + ", ID-only", id_only, share));
    }
    let mut rows = Vec::new();
    for (name, removes, apply, withhold) in runs {
        if !wanted(&name) {
            continue;
        }
        let mut cfg = base.clone();
        let row = |skipped: Option<String>| AblationRow {
            name: name.clone(),
            removes: removes.clone(),
            model: None,
            withheld: None,
            seconds: 0.0,
            tokens_per_s: 0.0,
            skipped,
        };
        if !apply(&mut cfg) && withhold == 0.0 {
            rows.push(row(Some(
                "already off in this configuration: same as full".into(),
            )));
            continue;
        }
        cfg.run.withhold_items = withhold;
        cfg.run.out = out.join(&name);
        if withhold > 0.0 || name == VARIANTS[0].name {
            eprintln!("== ablation {name}: {removes}");
        } else {
            eprintln!("== ablation {name}: without {removes}");
        }
        let s = run_config(&cfg, dir, overrides.resume)?;
        rows.push(AblationRow {
            model: Some(s.report.model),
            withheld: s.withheld,
            seconds: s.train_seconds,
            tokens_per_s: s.tokens_per_s,
            ..row(None)
        });
    }
    let table = markdown(&rows, &base);
    write_atomic(&out.join("ablation.md"), table.as_bytes())?;
    write_atomic(
        &out.join("ablation.json"),
        &serde_json::to_vec_pretty(&rows)?,
    )?;
    println!("{table}");
    Ok(rows)
}

/// The rows as a markdown table (HR and NDCG at every K, MRR, time), with the setup above it.
pub fn markdown(rows: &[AblationRow], cfg: &ExperimentConfig) -> String {
    let ks = rows
        .iter()
        .find_map(|r| r.model.as_ref().map(|m| m.ks.clone()))
        .unwrap_or_default();
    let mut head = "| variant | removes |".to_string();
    for k in &ks {
        head += &format!(" HR@{k} |");
    }
    for k in &ks {
        head += &format!(" NDCG@{k} |");
    }
    head += " MRR | withheld HR@10 | train s | tokens/s |";
    let sep = format!("|{}", "---|".repeat(head.matches('|').count() - 1));
    let mut lines = vec![
        format!(
            "{:?} split, {} epochs, seed {}:",
            cfg.split.holdout, cfg.training.epochs, cfg.training.seed
        ),
        String::new(),
        head,
        sep,
    ];
    for r in rows {
        let mut line = format!("| {} | {} |", r.name, r.removes);
        match (&r.model, &r.skipped) {
            (Some(m), _) => {
                for v in m.hit_rate.iter().chain(&m.ndcg) {
                    line += &format!(" {v:.4} |");
                }
                let cold = r
                    .withheld
                    .as_ref()
                    .map_or("–".to_string(), |w| format!("{:.4}", w.hr_at(10)));
                line += &format!(
                    " {:.4} | {cold} | {:.0} | {:.0} |",
                    m.mrr, r.seconds, r.tokens_per_s
                );
            }
            (None, why) => {
                line += &format!(" {} |", why.as_deref().unwrap_or("not run"));
            }
        }
        lines.push(line);
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_turns_off_its_feature_and_says_when_it_was_already_off() {
        let mut full = ExperimentConfig::default();
        full.training.model.rollup_window_s = 3600;
        full.training.objectives.mtp_items = 3;
        assert!(full.training.content_embeddings && full.training.model.context_features);
        assert!(full.training.objectives.any_aux());
        for v in &VARIANTS[1..] {
            let mut c = full.clone();
            assert!((v.apply)(&mut c), "{} had something to remove", v.name);
            assert_ne!(c, full, "{} changed the configuration", v.name);
            let mut again = c.clone();
            assert!(!(v.apply)(&mut again), "{}: nothing left to remove", v.name);
            assert_eq!(again, c);
        }
        let mut id = full.clone();
        id_only(&mut id);
        let t = &id.training;
        assert!(!t.content_embeddings && !t.model.context_features && t.model.rollup_window_s == 0);
        assert!(t.objectives.mtp_items == 1 && !t.objectives.any_aux());
        let mut full_again = full.clone();
        assert!((VARIANTS[0].apply)(&mut full_again));
        assert_eq!(full_again, full);
    }

    #[test]
    fn the_table_has_a_column_per_metric_and_names_skipped_rows() {
        let m = RankingMetrics::from_ranks(&[1, 3, 20, 100], &[10, 50]);
        let rows = vec![
            AblationRow {
                name: "full".into(),
                removes: "nothing".into(),
                model: Some(m.clone()),
                withheld: None,
                seconds: 12.0,
                tokens_per_s: 1000.0,
                skipped: None,
            },
            AblationRow {
                name: "no-mtp".into(),
                removes: "multi-token prediction".into(),
                model: None,
                withheld: None,
                seconds: 0.0,
                tokens_per_s: 0.0,
                skipped: Some("already off".into()),
            },
        ];
        let table = markdown(&rows, &ExperimentConfig::default());
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[2].contains("HR@10") && lines[2].contains("NDCG@50"));
        assert_eq!(lines[2].matches('|').count(), lines[3].matches('|').count());
        // HR@10 = 2/4, HR@50 = 3/4.
        assert!(
            lines[4].starts_with("| full | nothing | 0.5000 | 0.7500 |"),
            "{}",
            lines[4]
        );
        assert!(lines[5].contains("already off"));
    }
}
