//! Prompt sets ↔ their bundle parts: one part per named prompt set, checked against the model
//! it steers before any value is decoded.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::file::{Part, PartKind, PromptSetPart, TensorEntry, WeightFile, WeightFileError};
use super::model_io::matched_entries;
use super::quantize::{Quantization, decode_values, encode_values};
use crate::model::{
    FoundationModelConfig, MAX_PROMPT_LENGTH, NamedPromptSet, PromptForm, PromptSet,
};

/// Most prompt sets one bundle may carry.
pub const MAX_PROMPT_SETS: usize = 256;
/// Longest prompt set name, in bytes.
pub const MAX_PROMPT_NAME_BYTES: usize = 256;
/// What a prompt set's part name starts with (the rest is the prompt set's name).
pub const PROMPT_PART_PREFIX: &str = "prompt:";

/// The tensors (names and shapes) a prompt set of `form` and `length` holds for `model`.
pub fn expected_prompt_tensors(
    form: PromptForm,
    length: usize,
    model: &FoundationModelConfig,
) -> Vec<(String, Vec<usize>)> {
    let (l, d) = (model.n_layers, model.d_model);
    match form {
        PromptForm::Input => vec![("input".into(), vec![length, d])],
        PromptForm::Deep => vec![
            ("keys".into(), vec![l, length, d]),
            ("values".into(), vec![l, length, d]),
        ],
    }
}

/// Checks a prompt set's name: non-empty, at most [`MAX_PROMPT_NAME_BYTES`], no control
/// characters.
pub fn validate_prompt_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a prompt set's name is empty".into());
    }
    if name.len() > MAX_PROMPT_NAME_BYTES {
        return Err(format!(
            "prompt set name is {} bytes long (at most {MAX_PROMPT_NAME_BYTES})",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "prompt set name {name:?} holds a control character"
        ));
    }
    Ok(())
}

/// The bundle part of `named` with its matrices stored as `quantization` says, and the
/// tensors' bytes in the part's order (see [`WeightFile::encode`]).
pub fn prompt_set_part(named: &NamedPromptSet, quantization: Quantization) -> (Part, Vec<Vec<u8>>) {
    let mut entries = Vec::new();
    let mut blobs = Vec::new();
    for (name, shape, values) in named.prompt.named_tensors() {
        let dtype = quantization.dtype_for(&shape);
        blobs.push(encode_values(&values, &shape, dtype));
        entries.push(TensorEntry {
            name: name.into(),
            dtype,
            shape: shape.iter().map(|&d| d as u32).collect(),
            offset: 0,
            len: 0,
        });
    }
    let part = Part {
        name: format!("{PROMPT_PART_PREFIX}{}", named.name),
        kind: PartKind::PromptSet(PromptSetPart {
            form: named.prompt.form(),
            length: named.prompt.length() as u32,
            tensors: entries,
            quantization,
        }),
    };
    (part, blobs)
}

/// Bytes of f32 values the bundle's prompt sets decode to (their shapes are checked by
/// [`load_prompt_sets`]; an unchecked hostile length counts as its full claim).
pub fn prompt_decoded_bytes(file: &WeightFile<'_>, model: &FoundationModelConfig) -> u64 {
    file.prompt_sets()
        .map(|(_, p)| {
            expected_prompt_tensors(p.form, p.length as usize, model)
                .iter()
                .map(|(_, shape)| shape.iter().map(|&d| d as u64).product::<u64>() * 4)
                .sum::<u64>()
        })
        .fold(0u64, u64::saturating_add)
}

/// The bundle's prompt sets, each checked (name, length, every tensor's name and shape for
/// the model `model`) before any is decoded, then decoded onto `device` without gradients.
pub fn load_prompt_sets(
    file: &WeightFile<'_>,
    model: &FoundationModelConfig,
    device: &Device,
) -> Result<Vec<NamedPromptSet>, WeightFileError> {
    let parts: Vec<_> = file.prompt_sets().collect();
    if parts.len() > MAX_PROMPT_SETS {
        return Err(WeightFileError::InvalidModel(format!(
            "{} prompt sets (at most {MAX_PROMPT_SETS})",
            parts.len()
        )));
    }
    let mut checked = Vec::with_capacity(parts.len());
    for (part_name, part) in &parts {
        let name = part_name.strip_prefix(PROMPT_PART_PREFIX).ok_or_else(|| {
            WeightFileError::InvalidModel(format!(
                "prompt set part {part_name:?} is not named {PROMPT_PART_PREFIX}NAME"
            ))
        })?;
        validate_prompt_name(name).map_err(WeightFileError::InvalidModel)?;
        let length = part.length as usize;
        if !(1..=MAX_PROMPT_LENGTH).contains(&length) {
            return Err(WeightFileError::InvalidModel(format!(
                "prompt set {name:?} holds {length} vectors (expected 1 to {MAX_PROMPT_LENGTH})"
            )));
        }
        let expected = expected_prompt_tensors(part.form, length, model);
        let prefix = format!("prompt set {name:?} ");
        let entries = matched_entries(&expected, &part.tensors, &prefix, "prompt set")?;
        checked.push((name.to_string(), part.form, entries));
    }
    let mut out = Vec::with_capacity(checked.len());
    for (name, form, entries) in checked {
        let mut tensors = Vec::with_capacity(entries.len());
        for entry in entries {
            // Refuses a non-finite value by the prompt set's name and the tensor's.
            let values = decode_values(
                &format!("prompt set {name:?} {}", entry.name),
                file.tensor_bytes(entry),
                &entry.shape,
                entry.dtype,
            )?;
            let shape: Vec<usize> = entry.shape.iter().map(|&d| d as usize).collect();
            tensors.push((values, shape));
        }
        let mut it = tensors.into_iter();
        let mut next = || it.next().expect("checked tensor count");
        let prompt = match form {
            PromptForm::Input => {
                let (v, s) = next();
                PromptSet {
                    input: Some(param2(v, &s, device)),
                    keys: None,
                    values: None,
                }
            }
            PromptForm::Deep => {
                let (k, ks) = next();
                let (v, vs) = next();
                PromptSet {
                    input: None,
                    keys: Some(param3(k, &ks, device)),
                    values: Some(param3(v, &vs, device)),
                }
            }
        };
        out.push(NamedPromptSet { name, prompt });
    }
    Ok(out)
}

fn param2(values: Vec<f32>, shape: &[usize], device: &Device) -> Param<Tensor<2>> {
    let t = Tensor::from_data(TensorData::new(values, [shape[0], shape[1]]), device);
    Param::from_tensor(t).set_require_grad(false)
}

fn param3(values: Vec<f32>, shape: &[usize], device: &Device) -> Param<Tensor<3>> {
    let t = Tensor::from_data(
        TensorData::new(values, [shape[0], shape[1], shape[2]]),
        device,
    );
    Param::from_tensor(t).set_require_grad(false)
}
