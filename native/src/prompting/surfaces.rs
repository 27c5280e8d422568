//! One prompt set per surface, named like the surface, tuned on the training events served
//! there and added to a bundle: what `encore demo` ships for the web demo's surface tabs.

use encore_core::Catalog;
use encore_core::data::events::Surface;
use encore_core::data::split::MemberHistory;
use encore_core::model::NamedPromptSet;
use encore_core::weights::load_model;

use super::{PromptTask, PromptTuneConfig, examples, tune};
use crate::backend::Backend;

/// The bundle in `weights` with a prompt set per surface of `surfaces` (replacing any of the
/// same name), each tuned with `cfg` on the training events served on that surface; also the
/// last epoch's loss per surface. A surface without training events gets no prompt set.
pub fn with_surface_prompts(
    weights: &[u8],
    train: &[MemberHistory],
    catalog: &Catalog,
    surfaces: &[Surface],
    cfg: &PromptTuneConfig,
    backend: Backend,
) -> anyhow::Result<(Vec<u8>, Vec<(Surface, f64)>)> {
    let device = backend.training_device();
    let base = load_model(weights, &device)?;
    let tokenizer = base.config.tokenizer();
    let host = load_model(weights, &backend.device())?;
    let mut prompts: Vec<NamedPromptSet> = host.prompts.clone();
    let mut losses = Vec::new();
    for &surface in surfaces {
        let task = PromptTask::Surface(surface);
        let ex = examples(train, catalog, &tokenizer, &task)?;
        if ex.is_empty() {
            continue;
        }
        let tuned = tune(&base.model, &ex, cfg, &device, |_| {})?;
        losses.push((surface, tuned.epochs.last().map_or(f64::NAN, |e| e.loss)));
        prompts.retain(|p| p.name != surface.name());
        prompts.push(NamedPromptSet {
            name: surface.name().to_string(),
            prompt: tuned.prompt,
        });
    }
    Ok((host.to_bundle(&prompts, host.quantization), losses))
}
