//! Readable terminal output: histories, before/after tables and metric lines.

use encore_core::{Catalog, Event, ScoredItem};

use crate::evaluation::EvalReport;

fn title(catalog: &Catalog, id: u32) -> String {
    catalog
        .get(id)
        .map(|i| i.title.clone())
        .unwrap_or_else(|| format!("#{id}"))
}

fn genres(catalog: &Catalog, id: u32) -> String {
    catalog
        .get(id)
        .map(|i| {
            i.genres
                .iter()
                .map(|&g| catalog.genres[g as usize].as_str())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default()
}

/// Prints the last `n` events of a member.
pub fn history(catalog: &Catalog, member: u32, events: &[Event], n: usize) {
    println!("member {member}: {} events, most recent last", events.len());
    for e in &events[events.len().saturating_sub(n)..] {
        println!(
            "  {:<11} {:<11} {:<40} {}",
            e.action.name(),
            e.surface.name(),
            title(catalog, e.item),
            genres(catalog, e.item)
        );
    }
}

/// Prints the server's order beside the reranked order; marks `highlight` (e.g. the item the
/// member actually watched next).
pub fn before_after(
    catalog: &Catalog,
    before: &[u32],
    after: &[ScoredItem],
    highlight: Option<u32>,
) {
    let mark = |id: u32| if Some(id) == highlight { "*" } else { " " };
    println!(
        "  {:>2}  {:<42} | {:<42} {:>7}",
        "#", "pushed by the server", "reranked on device", "score"
    );
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        println!(
            "  {:>2} {}{:<42} | {}{:<42} {:>7.3}",
            i + 1,
            mark(*b),
            truncate(&title(catalog, *b), 41),
            mark(a.item),
            truncate(&title(catalog, a.item), 41),
            a.score
        );
    }
    if let Some(h) = highlight {
        let pb = before.iter().position(|&x| x == h).map(|p| p + 1);
        let pa = after.iter().position(|x| x.item == h).map(|p| p + 1);
        if let (Some(pb), Some(pa)) = (pb, pa) {
            println!(
                "  * = what the member actually watched next: position {pb} before, {pa} after reranking"
            );
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Prints model vs baseline metrics.
pub fn metrics(r: &EvalReport, members: usize) {
    println!("held-out next event, full catalog ranking, {members} members:");
    for (name, m) in [
        ("foundation model", &r.model),
        ("most popular", &r.most_popular),
    ] {
        println!(
            "  {name:<17} HR@10 {:.4}  NDCG@10 {:.4}  HR@50 {:.4}  MRR {:.4}",
            m.hr_at(10),
            m.ndcg_at(10),
            m.hr_at(50),
            m.mrr
        );
    }
}
