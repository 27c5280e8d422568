//! Fine-tuning: a run that starts from a trained weight file's foundation model instead of
//! fresh weights (`init_from`), with chosen parts of it frozen (`freeze`): a frozen part gets
//! no gradient, so the optimizer never moves it and the exported file holds it unchanged.

use std::path::Path;

use anyhow::Context as _;
use burn::module::Module;
use burn::tensor::Device;
use encore_core::weights::load_model;
use encore_core::{Catalog, FoundationModel, FoundationModelConfig};

/// The names [`freeze`] takes, for error messages.
pub const FREEZABLE: &str = "embeddings, layers:N (0-based), layer_mix, norm";

/// `model` with the weights of the weight file at `path` (its foundation model; the caller's
/// training-only parts stay as they are). The file must hold the same shape as `shape`
/// (dropout aside) over `catalog`'s items in the same order.
pub fn init_from(
    model: FoundationModel,
    path: &Path,
    shape: &FoundationModelConfig,
    catalog: &Catalog,
    device: &Device,
) -> anyhow::Result<FoundationModel> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("training.init_from: cannot read {}", path.display()))?;
    let loaded = load_model(&bytes, device).with_context(|| {
        format!(
            "training.init_from: {} is not a valid weight file",
            path.display()
        )
    })?;
    anyhow::ensure!(
        loaded.config == shape.serving(),
        "training.init_from: {} holds the shape {:?}, the run's [training.model] is {:?}",
        path.display(),
        loaded.config,
        shape.serving()
    );
    anyhow::ensure!(
        loaded.items.ids() == catalog.ids().as_slice(),
        "training.init_from: {} was trained on another catalog (its items differ from the data's)",
        path.display()
    );
    let model = model
        .try_load_record(loaded.model.into_record())
        .map_err(|e| anyhow::anyhow!("training.init_from: {}: {e:?}", path.display()))?;
    // The loaded file's parameters come without gradients; training needs them back.
    Ok(model.set_require_grad(true))
}

/// `model` with the named parts frozen ([`FREEZABLE`]); an unknown name or a layer the model
/// does not have is refused by name.
pub fn freeze(mut model: FoundationModel, parts: &[String]) -> anyhow::Result<FoundationModel> {
    for part in parts {
        let part = part.trim();
        match part {
            "embeddings" => model.embedding = model.embedding.no_grad(),
            "layer_mix" => model.layer_mix = model.layer_mix.no_grad(),
            "norm" => model.norm = model.norm.no_grad(),
            _ => {
                let layer: usize = part
                    .strip_prefix("layers:")
                    .and_then(|n| n.parse().ok())
                    .with_context(|| {
                        format!("training.freeze: unknown part {part:?}, expected {FREEZABLE}")
                    })?;
                let n = model.blocks.len();
                anyhow::ensure!(
                    layer < n,
                    "training.freeze: layers:{layer}, but the model has {n} layers (0 to {})",
                    n.saturating_sub(1)
                );
                let block = model.blocks.remove(layer).no_grad();
                model.blocks.insert(layer, block);
            }
        }
    }
    Ok(model)
}
