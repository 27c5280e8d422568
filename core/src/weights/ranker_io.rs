//! The contextual ranker ↔ its bundle part: its shape and vocabulary checked against the
//! foundation model it serves before any value is decoded, then its tensors.

use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::Device;

use super::file::{Part, PartKind, RANKER, RankerPart, WeightFile, WeightFileError};
use super::model_io::{decoded_tensors, decoded_values, matched_entries, stored_tensors};
use super::quantize::Quantization;
use crate::data::catalog::ItemVocabulary;
use crate::data::events::{DeviceType, Event, Surface};
use crate::model::FoundationModelConfig;
use crate::ranker::{Ranker, RankerConfig, RankerVocabulary};
use crate::serving::ServingRanker;

/// Bounds on a stored ranker's shape (a hostile header cannot ask for absurd allocations).
const MAX_FIELDS: usize = 16;
const MAX_FIELD_VALUES: usize = 4096;
const MAX_QUERY_BUCKETS: usize = 1 << 16;
const MAX_D_EMBED: usize = 128;
const MAX_LAYERS: usize = 8;
const MAX_HIDDEN: usize = 4096;
const MAX_DENSE: usize = 1024;
/// The least cosine between the stored probe representation and the bundle model's.
pub const MIN_PROBE_COSINE: f32 = 0.98;
/// Events in the probe history.
const PROBE_EVENTS: usize = 8;

/// A trained ranker with what serving it needs: its shape, its features' vocabulary and the
/// probe representation of the foundation model it was trained on.
#[derive(Debug, Clone)]
pub struct RankerBundle {
    /// The trained ranker.
    pub model: Ranker,
    /// Its shape (dropout 0 once stored).
    pub config: RankerConfig,
    /// What its features are read against.
    pub vocabulary: RankerVocabulary,
    /// The foundation model's user representation of [`probe_history`].
    pub probe: Vec<f32>,
}

/// The fixed history a ranker's foundation model is recognised by: the model's first
/// (up to) eight item rows, one a day, on the home surface of the web, at midday UTC.
pub fn probe_history(items: &ItemVocabulary) -> Vec<Event> {
    items
        .ids()
        .iter()
        .take(PROBE_EVENTS)
        .enumerate()
        .map(|(k, &item)| {
            let mut e = Event::implicit(0, item, 1_700_000_000 + 86_400 * k as i64 + 43_200);
            e.surface = Surface::Home;
            e.device = DeviceType::Web;
            e
        })
        .collect()
}

/// The cosine of two vectors (0 when either is zero or their lengths differ).
pub fn probe_cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na * nb)
}

/// Parameters of a ranker of shape `c`, counted from the shape alone (no allocation).
fn parameter_count(c: &RankerConfig) -> u64 {
    let (e, w) = (c.d_embed as u64, c.width() as u64);
    let tasks = c.n_tasks as u64;
    let fields: u64 = c.context_fields.iter().map(|&n| (n as u64 + 1) * e).sum();
    let defaults = (c.context_fields.len() as u64 + 2) * tasks * e;
    let linear = |i: u64, o: u64| i * o + o;
    tasks * e
        + fields
        + defaults
        + c.query_buckets as u64 * e
        + 2 * linear(c.d_item as u64, e)
        + linear(c.n_dense.max(1) as u64, e)
        + linear(c.d_user as u64, e)
        + linear(1, e)
        + c.n_cross as u64 * linear(w, w)
        + c.n_mlp as u64 * (2 * w + linear(w, c.d_hidden as u64) + linear(c.d_hidden as u64, w))
        + linear(w, 1)
}

/// Names and shapes of every tensor of a ranker of shape `c`, in the ranker's own order (the
/// names and shapes its module gives, checked by a test).
pub fn expected_ranker_tensors(c: &RankerConfig) -> Vec<(String, Vec<usize>)> {
    let (e, w) = (c.d_embed, c.width());
    let mut out = Vec::new();
    let table = |out: &mut Vec<(String, Vec<usize>)>, name: String, rows: usize| {
        out.push((format!("{name}.weight"), vec![rows, e]));
    };
    let linear = |out: &mut Vec<(String, Vec<usize>)>, name: String, i: usize, o: usize| {
        out.push((format!("{name}.weight"), vec![i, o]));
        out.push((format!("{name}.bias"), vec![o]));
    };
    table(&mut out, "task".into(), c.n_tasks);
    for (k, &n) in c.context_fields.iter().enumerate() {
        table(&mut out, format!("fields.{k}"), n + 1);
    }
    for k in 0..c.context_fields.len() + 2 {
        table(&mut out, format!("defaults.{k}"), c.n_tasks);
    }
    table(&mut out, "query".into(), c.query_buckets);
    linear(&mut out, "source".into(), c.d_item, e);
    linear(&mut out, "candidate".into(), c.d_item, e);
    linear(&mut out, "dense".into(), c.n_dense.max(1), e);
    linear(&mut out, "user".into(), c.d_user, e);
    linear(&mut out, "fm_score".into(), 1, e);
    for k in 0..c.n_cross {
        linear(&mut out, format!("cross.{k}.map"), w, w);
    }
    for k in 0..c.n_mlp {
        out.push((format!("mlp.{k}.norm.gamma"), vec![w]));
        out.push((format!("mlp.{k}.norm.beta"), vec![w]));
        linear(&mut out, format!("mlp.{k}.expand"), w, c.d_hidden);
        linear(&mut out, format!("mlp.{k}.project"), c.d_hidden, w);
    }
    linear(&mut out, "out".into(), w, 1);
    out
}

/// A stored ranker in the serving engines' form: what [`RankerBundle`] holds, with its
/// weights as host vectors instead of the model.
#[derive(Debug, Clone)]
pub struct ServingRankerBundle {
    /// The ranker's weights.
    pub weights: ServingRanker,
    /// What its features are read against.
    pub vocabulary: RankerVocabulary,
    /// The foundation model's user representation of [`probe_history`].
    pub probe: Vec<f32>,
}

impl RankerBundle {
    /// The same ranker in the serving engines' form.
    pub fn to_serving(&self) -> ServingRankerBundle {
        ServingRankerBundle {
            weights: ServingRanker::from_ranker(&self.model, &self.config),
            vocabulary: self.vocabulary.clone(),
            probe: self.probe.clone(),
        }
    }
}

/// [`load_ranker`] for the serving engines: the same checks and refusals, then the weights
/// read straight into host vectors ([`ServingRanker::from_weights`]), without building the
/// ranker.
pub fn load_serving_ranker(
    file: &WeightFile<'_>,
    model: &FoundationModelConfig,
) -> Result<Option<ServingRankerBundle>, WeightFileError> {
    let Some(part) = checked_part(file, model)? else {
        return Ok(None);
    };
    let expected = expected_ranker_tensors(&part.config);
    let entries = matched_entries(&expected, &part.tensors, "ranker.", "ranker")?;
    let values = decoded_values(file, &entries)?;
    let weights = ServingRanker::from_weights(&part.config, |name| {
        expected
            .iter()
            .position(|(n, _)| n == name)
            .map(|k| values[k].as_slice())
            .unwrap_or_else(|| panic!("{name} is one of the expected ranker tensors"))
    });
    Ok(Some(ServingRankerBundle {
        weights,
        vocabulary: part.vocabulary.clone(),
        probe: part.probe.clone(),
    }))
}

/// Bytes of f32 weights the bundle's ranker decodes to (0 without one); an unchecked hostile
/// shape counts as its full claim.
pub fn ranker_decoded_bytes(file: &WeightFile<'_>) -> u64 {
    file.ranker()
        .map_or(0, |p| parameter_count(&p.config).saturating_mul(4))
}

/// Checks a stored ranker's shape against the model it serves and the bounds above.
fn validate_ranker_config(c: &RankerConfig, model: &FoundationModelConfig) -> Result<(), String> {
    let bad = |what: &str| Err(format!("ranker {what} is out of range"));
    if c.d_item != model.d_model || c.d_user != model.d_model {
        return Err(format!(
            "the ranker reads vectors of width {} / {}, the model's are {}",
            c.d_item, c.d_user, model.d_model
        ));
    }
    if c.context_fields.len() > MAX_FIELDS || c.context_fields.iter().any(|&n| n > MAX_FIELD_VALUES)
    {
        return bad("context fields");
    }
    if !(2..=MAX_QUERY_BUCKETS).contains(&c.query_buckets) {
        return bad("query buckets");
    }
    if !(1..=MAX_D_EMBED).contains(&c.d_embed) || !(1..=MAX_HIDDEN).contains(&c.d_hidden) {
        return bad("width");
    }
    if c.n_cross > MAX_LAYERS || c.n_mlp > MAX_LAYERS {
        return bad("depth");
    }
    if c.n_dense > MAX_DENSE || c.n_tasks == 0 {
        return bad("features");
    }
    Ok(())
}

/// The bundle part of `ranker` with its matrices stored as `quantization` says, and the
/// tensors' bytes in the part's order (see [`WeightFile::encode`]).
///
/// # Panics
/// If a tensor of the ranker is not f32.
pub fn ranker_part(ranker: &RankerBundle, quantization: Quantization) -> (Part, Vec<Vec<u8>>) {
    let (entries, blobs) = stored_tensors(&ranker.model, quantization);
    let part = Part {
        name: RANKER.into(),
        kind: PartKind::Ranker(RankerPart {
            config: ranker.config.clone().with_dropout(0.0),
            vocabulary: ranker.vocabulary.clone(),
            probe: ranker.probe.clone(),
            tensors: entries,
            quantization,
        }),
    };
    (part, blobs)
}

/// The bundle's ranker part (none without one) once its shape, vocabulary and probe fit
/// `model` and its stored bytes can hold its shape: every check before a value is decoded.
fn checked_part<'a>(
    file: &'a WeightFile<'_>,
    model: &FoundationModelConfig,
) -> Result<Option<&'a RankerPart>, WeightFileError> {
    let Some(part) = file.ranker() else {
        return Ok(None);
    };
    let invalid = |e: String| WeightFileError::InvalidModel(format!("ranker: {e}"));
    validate_ranker_config(&part.config, model).map_err(invalid)?;
    part.vocabulary
        .validate(model.n_items, &part.config)
        .map_err(invalid)?;
    if part.probe.len() != model.d_model || part.probe.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!(
            "probe of {} values, expected {} finite ones",
            part.probe.len(),
            model.d_model
        )));
    }
    // Each stored value takes at least one byte, so a shape whose tensors the part's bytes
    // cannot hold is refused before the ranker is built.
    let stored: u64 = part.tensors.iter().map(|t| t.len).sum();
    if parameter_count(&part.config) > stored {
        return Err(invalid(format!(
            "its shape needs {} values, the part stores {stored} bytes",
            parameter_count(&part.config)
        )));
    }
    Ok(Some(part))
}

/// The bundle's ranker, if it carries one: its shape and vocabulary checked against `model`
/// (whose `n_items` rows the vocabulary must describe), every tensor's name and shape checked,
/// then decoded on the CPU. The probe is checked by the runtime once the model runs.
pub fn load_ranker(
    file: &WeightFile<'_>,
    model: &FoundationModelConfig,
) -> Result<Option<RankerBundle>, WeightFileError> {
    let Some(part) = checked_part(file, model)? else {
        return Ok(None);
    };
    let invalid = |e: String| WeightFileError::InvalidModel(format!("ranker: {e}"));
    let device = Device::flex();
    let mut ranker = part.config.init(&device);
    let expected: Vec<(String, Vec<usize>)> = ranker
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let (name, _, shape, _, _) = t.into_parts().expect("ranker tensors are readable");
            (name, shape.to_vec())
        })
        .collect();
    let entries = matched_entries(&expected, &part.tensors, "ranker.", "ranker")?;
    let tensors = decoded_tensors(file, &entries)?;
    let result = ranker.apply(tensors, None, None, false);
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(invalid(format!(
            "applying weights failed: {:?} missing {:?}",
            result.errors, result.missing
        )));
    }
    Ok(Some(RankerBundle {
        model: ranker.no_grad(),
        config: part.config.clone(),
        vocabulary: part.vocabulary.clone(),
        probe: part.probe.clone(),
    }))
}
