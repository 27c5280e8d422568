//! `encore embed`: a model's item vectors and member representations to Parquet and
//! safetensors, optionally rotated into a previous model's space.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use encore_core::Reranker;
use encore_core::data::split::{group_by_member, leave_last_out};

use super::DataArgs;
use crate::backend::Backend;
use crate::embeddings::align::{AlignmentReport, Rotation};
use crate::embeddings::{EmbeddingTable, files};
use crate::io::write_atomic;

/// `encore embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Weight file.
    #[arg(long, default_value = "artifacts/model.encore")]
    pub model: PathBuf,
    /// Experiment file: the members are its training split's (as the model saw them); without
    /// it, every member of `--data` (or the synthetic world) minus its last event.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With --config: `validation` or `test`, replacing the file's holdout.
    #[arg(long, requires = "config", value_parser = super::parse_holdout)]
    pub holdout: Option<encore_core::data::split::Holdout>,
    /// Represent each member from the events before this Unix time, asked at it (default: the
    /// whole history, asked at its last event).
    #[arg(long)]
    pub as_of: Option<i64>,
    /// Output directory: `items.parquet`, `members.parquet`, `embeddings.safetensors`.
    #[arg(long, default_value = "artifacts/embeddings")]
    pub out: PathBuf,
    /// A previous model's output directory: rotate this model's vectors into its space
    /// (orthogonal Procrustes on the items both know), write the rotation
    /// (`rotation.safetensors`) and how the two compare before and after (`alignment.json`).
    #[arg(long)]
    pub align_to: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// Runs `encore embed`.
pub fn run(a: &EmbedArgs) -> anyhow::Result<()> {
    let weights =
        std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let reranker = Reranker::from_bytes(&weights, &Backend::Cpu.device())
        .with_context(|| format!("{} is not a valid weight file", a.model.display()))?;
    let histories = match &a.config {
        Some(path) => crate::experiment::training_histories(path, a.holdout)?,
        None => {
            let (_, events) = a.data.load()?;
            leave_last_out(&group_by_member(&events)).0
        }
    };
    let mut embeddings = crate::embeddings::extract(&reranker, &weights, &histories, a.as_of)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    if let Some(previous) = &a.align_to {
        let old = files::read_safetensors(&previous.join("embeddings.safetensors"))?;
        let rotation = Rotation::fit(&embeddings.items, &old.items)?;
        let report = AlignmentReport::measure(&embeddings, &old, &rotation);
        rotation.write(
            &a.out.join("rotation.safetensors"),
            &embeddings.source.model_version,
            &old.source.model_version,
        )?;
        write_atomic(
            &a.out.join("alignment.json"),
            &serde_json::to_vec_pretty(&report)?,
        )
        .with_context(|| format!("cannot write {}", a.out.join("alignment.json").display()))?;
        println!(
            "aligned to {} (model {}): {} shared items, {} shared members",
            previous.display(),
            old.source.model_version,
            report.items,
            report.members
        );
        println!(
            "  mean cosine of the same item:   {:.4} before, {:.4} after",
            report.item_cosine.0, report.item_cosine.1
        );
        println!(
            "  mean cosine of the same member: {:.4} before, {:.4} after",
            report.member_cosine.0, report.member_cosine.1
        );
        println!(
            "  items' 20 nearest items shared by both models: {:.1}% (unchanged by the rotation)",
            100.0 * report.item_neighbours_top20
        );
        embeddings.items = rotation.apply(&embeddings.items);
        embeddings.members = rotation.apply(&embeddings.members);
        embeddings.source.aligned_to = old.source.model_version;
    }
    let write = |table: &EmbeddingTable, name: &str| {
        files::write_parquet(table, &embeddings.source, &a.out.join(name))
    };
    write(&embeddings.items, "items.parquet")?;
    write(&embeddings.members, "members.parquet")?;
    files::write_safetensors(&embeddings, &a.out.join("embeddings.safetensors"))?;
    println!(
        "{} item vectors and {} member representations (width {}, model {}) -> {}",
        embeddings.items.len(),
        embeddings.members.len(),
        embeddings.items.dim,
        embeddings.source.model_version,
        a.out.display()
    );
    Ok(())
}
