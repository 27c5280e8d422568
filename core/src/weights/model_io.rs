//! The foundation model ↔ weight file: which tensors a model shape implies, writing them, and
//! loading them back after every check has passed.

use burn::module::Module;
use burn::module::Param;
use burn::store::ModuleSnapshot;
use burn::store::burn_pack::{Bytes, DType, Tensor as PackTensor};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::content_io::{content_encoder_part, decoded_bytes, load_content_encoder};
use super::file::{FoundationModelPart, Manifest, TensorEntry, WeightFile, WeightFileError};
use super::quantize::{Quantization, decode_values, encode_values};
use crate::data::catalog::ItemVocabulary;
use crate::model::{FoundationModel, FoundationModelConfig, NamedPromptSet};
use crate::serving::{ServingContentEncoder, ServingModel};
use crate::tokenizer::{ITEM_OFFSET, TokenField};

/// The longest window (`max_len`) a weight file may declare: room for members of 10,000 events
/// and more, while bounding the position table a file can make a reader allocate.
pub const MAX_WINDOW: usize = 16_384;

/// Checks that every dimension of a stored model shape is in range and gives the serving
/// config (dropout 0): a hostile file's shape is refused before anything is allocated.
pub fn validate_config(
    config: &FoundationModelConfig,
) -> Result<FoundationModelConfig, WeightFileError> {
    let in_range = |name: &str, v: usize, max: usize| {
        if (1..=max).contains(&v) {
            Ok(())
        } else {
            Err(WeightFileError::InvalidModel(format!(
                "{name} = {v} (expected 1 to {max})"
            )))
        }
    };
    in_range("n_items", config.n_items, 10_000_000)?;
    in_range("d_model", config.d_model, 4096)?;
    in_range("n_heads", config.n_heads, 64)?;
    in_range("n_layers", config.n_layers, 64)?;
    in_range("d_ff", config.d_ff, 65_536)?;
    in_range("max_len", config.max_len, MAX_WINDOW)?;
    if !config.d_model.is_multiple_of(config.n_heads) {
        return Err(WeightFileError::InvalidModel(format!(
            "d_model {} is not divisible by n_heads {}",
            config.d_model, config.n_heads
        )));
    }
    Ok(config.serving())
}

/// Names and shapes of every tensor a model of this shape has, in the model's own order.
pub fn expected_tensors(config: &FoundationModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, ff) = (config.d_model, config.d_ff);
    let mut out = Vec::new();
    for field in TokenField::ALL {
        let (name, rows) = (field.table_name(), field.rows(config.n_items));
        out.push((format!("embedding.{name}.weight"), vec![rows, d]));
    }
    out.push((
        "embedding.position.weight".to_string(),
        vec![config.max_len, d],
    ));
    let linear = |out: &mut Vec<(String, Vec<usize>)>, p: String, i: usize, o: usize| {
        out.push((format!("{p}.weight"), vec![i, o]));
        out.push((format!("{p}.bias"), vec![o]));
    };
    let norm = |out: &mut Vec<(String, Vec<usize>)>, p: String| {
        out.push((format!("{p}.gamma"), vec![d]));
        out.push((format!("{p}.beta"), vec![d]));
    };
    for l in 0..config.n_layers {
        norm(&mut out, format!("blocks.{l}.norm_attn"));
        for proj in ["query", "key", "value", "output"] {
            linear(&mut out, format!("blocks.{l}.attention.{proj}"), d, d);
        }
        norm(&mut out, format!("blocks.{l}.norm_ff"));
        linear(&mut out, format!("blocks.{l}.ff_in"), d, ff);
        linear(&mut out, format!("blocks.{l}.ff_out"), ff, d);
    }
    out.push(("layer_mix".to_string(), vec![config.n_layers + 1]));
    norm(&mut out, "norm".to_string());
    out
}

/// Encodes a model and the external ids of its item rows as a weight file whose matrices are
/// stored as `quantization` says.
pub fn save_model(
    model: &FoundationModel,
    config: &FoundationModelConfig,
    item_ids: &[u32],
    quantization: Quantization,
) -> Vec<u8> {
    save_bundle(model, config, item_ids, None, quantization)
}

/// What a bundle carries besides the foundation model.
#[derive(Debug, Clone, Copy, Default)]
pub struct BundleParts<'a> {
    /// The item content encoder (embeds titles the bundle does not contain).
    pub content_encoder: Option<&'a ServingContentEncoder>,
    /// Named prompt sets a request may select.
    pub prompts: &'a [NamedPromptSet],
    /// The contextual ranker trained on this model.
    pub ranker: Option<&'a super::RankerBundle>,
}

/// [`save_model`], with the item content encoder as a second part when `content_encoder` is
/// given (its matrices stored the same way), so that the bundle can embed titles it does not
/// contain from their metadata.
///
/// # Panics
/// If `content_encoder`'s width is not the model's.
pub fn save_bundle(
    model: &FoundationModel,
    config: &FoundationModelConfig,
    item_ids: &[u32],
    content_encoder: Option<&ServingContentEncoder>,
    quantization: Quantization,
) -> Vec<u8> {
    let parts = BundleParts {
        content_encoder,
        prompts: &[],
        ranker: None,
    };
    save_bundle_with(model, config, item_ids, parts, quantization)
}

/// [`save_bundle`] with every part of `parts`: the content encoder and one part per prompt
/// set (see [`crate::model::PromptSet`]).
///
/// # Panics
/// If a part's width is not the model's, or a prompt set's name is invalid or repeated (see
/// [`validate_prompt_name`](super::validate_prompt_name)).
pub fn save_bundle_with(
    model: &FoundationModel,
    config: &FoundationModelConfig,
    item_ids: &[u32],
    parts: BundleParts<'_>,
    quantization: Quantization,
) -> Vec<u8> {
    let content_encoder = parts.content_encoder;
    assert_eq!(
        item_ids.len(),
        config.n_items,
        "one external id per item row"
    );
    let (entries, mut blobs) = stored_tensors(model, quantization);
    let part = FoundationModelPart {
        config: config.serving(),
        item_ids: item_ids.to_vec(),
        tensors: entries,
        quantization,
    };
    let mut manifest = Manifest::foundation_model(part);
    if let Some(encoder) = content_encoder {
        assert_eq!(
            encoder.spec.d_model, config.d_model,
            "content encoder width"
        );
        let (part, encoder_blobs) = content_encoder_part(encoder, quantization);
        manifest.parts.push(part);
        blobs.extend(encoder_blobs);
    }
    for (i, named) in parts.prompts.iter().enumerate() {
        if let Err(e) = super::validate_prompt_name(&named.name) {
            panic!("{e}");
        }
        assert!(
            !parts.prompts[..i].iter().any(|p| p.name == named.name),
            "two prompt sets named {:?}",
            named.name
        );
        let (part, prompt_blobs) = super::prompt_set_part(named, quantization);
        manifest.parts.push(part);
        blobs.extend(prompt_blobs);
    }
    if let Some(ranker) = parts.ranker {
        let (part, ranker_blobs) = super::ranker_part(ranker, quantization);
        manifest.parts.push(part);
        blobs.extend(ranker_blobs);
    }
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    WeightFile::encode(manifest, &refs)
}

/// Every tensor of `module` (f32) as a part's entries and their bytes, in the module's order,
/// matrices stored as `quantization` says (see [`WeightFile::encode`]).
///
/// # Panics
/// If a tensor is not f32.
pub(super) fn stored_tensors<M: Module>(
    module: &M,
    quantization: Quantization,
) -> (Vec<TensorEntry>, Vec<Vec<u8>>) {
    let snapshots = module.collect(None, None, false);
    let mut entries = Vec::with_capacity(snapshots.len());
    let mut blobs = Vec::with_capacity(snapshots.len());
    for t in snapshots {
        let (name, dtype, shape, _, bytes) = t.into_parts().expect("module tensors are readable");
        assert_eq!(
            dtype,
            DType::F32,
            "tensor {name} is {dtype:?}; modules are saved from f32"
        );
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        let stored = quantization.dtype_for(&shape);
        blobs.push(encode_values(&values, &shape, stored));
        entries.push(TensorEntry {
            name,
            dtype: stored,
            shape: shape.iter().map(|&d| d as u32).collect(),
            offset: 0,
            len: 0,
        });
    }
    (entries, blobs)
}

/// The values of checked `entries` of `file`, decoded to f32 tensors a module can apply.
pub(super) fn decoded_tensors(
    file: &WeightFile<'_>,
    entries: &[&TensorEntry],
) -> Result<Vec<PackTensor>, WeightFileError> {
    Ok(decoded_values(file, entries)?
        .into_iter()
        .zip(entries)
        .map(|(values, entry)| {
            let shape: Vec<usize> = entry.shape.iter().map(|&d| d as usize).collect();
            PackTensor::new(
                entry.name.clone(),
                DType::F32,
                shape,
                None,
                Bytes::from_elems(values),
            )
        })
        .collect())
}

/// The f32 values of each of `entries`, in order.
pub(super) fn decoded_values(
    file: &WeightFile<'_>,
    entries: &[&TensorEntry],
) -> Result<Vec<Vec<f32>>, WeightFileError> {
    entries
        .iter()
        .map(|entry| {
            decode_values(
                &entry.name,
                file.tensor_bytes(entry),
                &entry.shape,
                entry.dtype,
            )
        })
        .collect()
}

/// A weight file's parts once loaded: its foundation model in the form `M` and its contextual
/// ranker in the form `R` (burn's modules in [`LoadedModel`], the serving engines' host
/// vectors in [`LoadedServing`]), with what else the bundle carries.
#[derive(Debug)]
pub struct Loaded<M, R> {
    /// The foundation model.
    pub model: M,
    /// Its shape (dropout 0).
    pub config: FoundationModelConfig,
    /// External ids of its item rows.
    pub items: ItemVocabulary,
    /// How the file stored the matrices (the loaded model is f32).
    pub quantization: Quantization,
    /// The item content encoder, when the bundle carries one.
    pub content_encoder: Option<ServingContentEncoder>,
    /// The bundle's prompt sets, in file order.
    pub prompts: Vec<NamedPromptSet>,
    /// The contextual ranker, when the bundle carries one (its probe not yet checked: see
    /// [`crate::Reranker::with_ranker`]).
    pub ranker: Option<R>,
}

impl<M, R> Loaded<M, R> {
    /// The same parts with `model` as the foundation model.
    fn with_model<N>(self, model: N) -> Loaded<N, R> {
        Loaded {
            model,
            config: self.config,
            items: self.items,
            quantization: self.quantization,
            content_encoder: self.content_encoder,
            prompts: self.prompts,
            ranker: self.ranker,
        }
    }
}

/// A model loaded from a weight file as burn's modules, with its config and item ids.
pub type LoadedModel = Loaded<FoundationModel, super::RankerBundle>;

impl LoadedModel {
    /// This model's bundle (model, item ids, content encoder) with `prompts` as its prompt sets
    /// (in place of its own), matrices stored as `quantization` says.
    ///
    /// # Panics
    /// As [`save_bundle_with`].
    pub fn to_bundle(&self, prompts: &[NamedPromptSet], quantization: Quantization) -> Vec<u8> {
        let parts = BundleParts {
            content_encoder: self.content_encoder.as_ref(),
            prompts,
            ranker: self.ranker.as_ref(),
        };
        save_bundle_with(
            &self.model,
            &self.config,
            self.items.ids(),
            parts,
            quantization,
        )
    }
}

/// Bytes of f32 weights a model decodes to per byte of its weight file, at most: tensors never
/// share bytes and int8 (one byte per value) is the densest storage, so a file of n bytes that
/// [`load_model`] accepts holds at most 4·n bytes of weights.
pub const MAX_DECODED_PER_FILE_BYTE: u64 = 4;

/// The stored entries of the `expected` tensors (names and shapes), in that order, each checked
/// for its shape, and no stored tensor outside them; errors name a tensor as `prefix` + its name
/// and say it belongs to no such `whole` ("model", "encoder").
pub(super) fn matched_entries<'a>(
    expected: &[(String, Vec<usize>)],
    stored: &'a [TensorEntry],
    prefix: &str,
    whole: &str,
) -> Result<Vec<&'a TensorEntry>, WeightFileError> {
    let mut entries = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let entry = stored
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| WeightFileError::MissingTensor(format!("{prefix}{name}")))?;
        let found: Vec<usize> = entry.shape.iter().map(|&d| d as usize).collect();
        if &found != shape {
            return Err(WeightFileError::InvalidTensor {
                name: format!("{prefix}{name}"),
                reason: format!("shape {found:?}, expected {shape:?} for this {whole}"),
            });
        }
        entries.push(entry);
    }
    if let Some(extra) = stored
        .iter()
        .find(|t| !expected.iter().any(|(n, _)| n == &t.name))
    {
        return Err(WeightFileError::InvalidTensor {
            name: format!("{prefix}{}", extra.name),
            reason: format!("not part of this {whole}"),
        });
    }
    Ok(entries)
}

/// Validates a weight file completely, then builds the model on `device`.
pub fn load_model(bytes: &[u8], device: &Device) -> Result<LoadedModel, WeightFileError> {
    load_model_within(bytes, device, u64::MAX)
}

/// A weight file's model tensors after every check, decoded into host memory (f32): name,
/// shape and values of each, in [`expected_tensors`] order.
type DecodedTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Checks a weight file and decodes its model's tensors (see [`load_model_within`]), its
/// ranker loaded by `load_ranker`.
fn decode_model_within<R>(
    bytes: &[u8],
    device: &Device,
    max_decoded_bytes: u64,
    load_ranker: impl FnOnce(
        &WeightFile<'_>,
        &FoundationModelConfig,
    ) -> Result<Option<R>, WeightFileError>,
) -> Result<Loaded<DecodedTensors, R>, WeightFileError> {
    let file = WeightFile::decode(bytes)?;
    let header = file.foundation_model()?;
    let config = validate_config(&header.config)?;
    if header.item_ids.len() != config.n_items {
        return Err(WeightFileError::InvalidModel(format!(
            "{} item ids for {} item rows",
            header.item_ids.len(),
            config.n_items
        )));
    }
    let items = ItemVocabulary::new(header.item_ids.clone())
        .map_err(|e| WeightFileError::InvalidModel(e.to_string()))?;
    let expected = expected_tensors(&config);
    let encoder_bytes = file.content_encoder().map_or(0, |p| decoded_bytes(&p.spec));
    let decoded = expected
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>() as u64 * 4)
        .sum::<u64>()
        .saturating_add(encoder_bytes)
        .saturating_add(super::prompt_io::prompt_decoded_bytes(&file, &config))
        .saturating_add(super::ranker_decoded_bytes(&file));
    if decoded > max_decoded_bytes {
        return Err(WeightFileError::DecodedTooLarge {
            decoded,
            limit: max_decoded_bytes,
        });
    }
    // Every check first (each expected tensor present with its shape, nothing extra), so that
    // a bad file is refused before a single value is decoded.
    let entries = matched_entries(&expected, &header.tensors, "", "model")?;
    // The encoder checks its shape and tensors before it decodes them, and it is loaded before
    // any of the model's values is decoded (its values are few next to the model's).
    let content_encoder = load_content_encoder(&file, config.d_model)?;
    let prompts = super::load_prompt_sets(&file, &config, device)?;
    let ranker = load_ranker(&file, &config)?;
    let tensors = decoded_values(&file, &entries)?
        .into_iter()
        .zip(expected)
        .map(|(values, (name, shape))| (name, shape, values))
        .collect();
    Ok(Loaded {
        model: tensors,
        config,
        items,
        quantization: header.quantization,
        content_encoder,
        prompts,
        ranker,
    })
}

/// [`load_model`], refusing before anything is decoded or allocated a model whose f32 weights
/// would take more than `max_decoded_bytes` (e.g. the memory a browser tab may spend).
pub fn load_model_within(
    bytes: &[u8],
    device: &Device,
    max_decoded_bytes: u64,
) -> Result<LoadedModel, WeightFileError> {
    let mut decoded = decode_model_within(bytes, device, max_decoded_bytes, super::load_ranker)?;
    let mut model = decoded.config.init(device);
    let tensors: Vec<PackTensor> = std::mem::take(&mut decoded.model)
        .into_iter()
        .map(|(name, shape, values)| {
            PackTensor::new(name, DType::F32, shape, None, Bytes::from_elems(values))
        })
        .collect();
    let result = model.apply(tensors, None, None, false);
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(WeightFileError::InvalidModel(format!(
            "applying weights failed: {:?} missing {:?}",
            result.errors, result.missing
        )));
    }
    Ok(decoded.with_model(model.no_grad()))
}

/// A weight file loaded for the serving engines only: the model's serving description in
/// host memory (no prompt sets yet) and the ranker's weights as host vectors (its probe not yet
/// checked), read from the weights without building either model.
pub type LoadedServing = Loaded<ServingModel, super::ServingRankerBundle>;

/// [`load_model_within`] for the serving engines: the same checks and refusals, then the
/// serving description straight from the decoded weights ([`ServingModel::from_weights`]),
/// and the ranker's ([`load_serving_ranker`](super::load_serving_ranker)), which skips
/// building either model (most of a load's time on a cold start).
pub fn load_serving_within(
    bytes: &[u8],
    device: &Device,
    max_decoded_bytes: u64,
) -> Result<LoadedServing, WeightFileError> {
    let decoded =
        decode_model_within(bytes, device, max_decoded_bytes, super::load_serving_ranker)?;
    let serving = ServingModel::from_weights(&decoded.config, |name| {
        decoded
            .model
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, values)| values.as_slice())
            .unwrap_or_else(|| panic!("{name} is one of the expected tensors"))
    });
    Ok(decoded.with_model(serving))
}

/// The same model over a subset of its items: the rows of the ids `keep` accepts, in their
/// order (e.g. a bundle as it was before some titles joined the catalog, whose device then
/// learns of them as pushed candidates with metadata). The contextual ranker, trained on the
/// full model, is dropped; everything else is unchanged.
///
/// # Panics
/// If `keep` accepts no item.
pub fn retain_items(loaded: LoadedModel, keep: impl Fn(u32) -> bool) -> LoadedModel {
    let LoadedModel {
        mut model,
        mut config,
        items,
        quantization,
        content_encoder,
        prompts,
        ranker: _,
    } = loaded;
    let kept: Vec<(usize, u32)> = items
        .ids()
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, id)| keep(id))
        .collect();
    assert!(!kept.is_empty(), "a model keeps at least one item");
    let special = ITEM_OFFSET as i64;
    let rows: Vec<i64> = (0..special)
        .chain(kept.iter().map(|&(row, _)| row as i64 + special))
        .collect();
    let table = model.item_table();
    let device = table.device();
    let n = rows.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
    model.embedding.item.weight =
        Param::from_tensor(table.select(0, index)).set_require_grad(false);
    config.n_items = kept.len();
    model.n_items = kept.len();
    let ids: Vec<u32> = kept.iter().map(|&(_, id)| id).collect();
    LoadedModel {
        model,
        config,
        items: ItemVocabulary::new(ids).expect("a subset of unique ids is unique"),
        quantization,
        content_encoder,
        prompts,
        ranker: None,
    }
}

/// Re-encodes a weight file with another [`Quantization`] (from an f32 file, the same as
/// saving the model that way), its content encoder included. The input is validated
/// completely first.
pub fn requantize(bytes: &[u8], quantization: Quantization) -> Result<Vec<u8>, WeightFileError> {
    let loaded = load_model(bytes, &Device::flex())?;
    Ok(loaded.to_bundle(&loaded.prompts, quantization))
}
