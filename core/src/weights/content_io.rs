//! The item content encoder ↔ its bundle part: the tensors its shape implies, writing them,
//! and loading them back after every check has passed.

use std::collections::HashMap;

use super::file::CONTENT_ENCODER;
use super::file::{ContentEncoderPart, Part, PartKind, TensorEntry, WeightFile, WeightFileError};
use super::model_io::matched_entries;
use super::quantize::{Quantization, decode_values, encode_values};
use crate::serving::{ContentEncoderSpec, LinearWeights, ServingContentEncoder};

/// Most genres an encoder may name (catalog genre indices are bytes).
pub const MAX_GENRES: usize = 256;
/// Longest genre name, in bytes.
pub const MAX_GENRE_NAME_BYTES: usize = 256;
/// Widest external content vector an encoder may read.
pub const MAX_CONTENT_DIM: usize = 65_536;

impl ServingContentEncoder {
    /// The encoder's tensors by name (the names of [`ContentEncoderSpec::expected_tensors`]),
    /// each with its shape and values.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let values = |name: &str| -> Vec<f32> {
            match name {
                "genre.weight" => self.genre.clone(),
                "kind.weight" => self.kind.clone(),
                "language.weight" => self.language.clone(),
                "year.weight" => self.year.clone(),
                "gate.weight" => self.gate.clone(),
                "unknown" => self.unknown.clone(),
                "content.weight" => self
                    .content
                    .as_ref()
                    .map(|c| c.weight.clone())
                    .unwrap_or_default(),
                "content.bias" => self
                    .content
                    .as_ref()
                    .map(|c| c.bias.clone())
                    .unwrap_or_default(),
                _ => unreachable!("expected_tensors names only these"),
            }
        };
        self.spec
            .expected_tensors()
            .into_iter()
            .map(|(name, shape)| {
                let v = values(&name);
                (name, shape, v)
            })
            .collect()
    }

    /// Builds the encoder from its tensors by name; each must have its expected shape.
    ///
    /// # Panics
    /// If a tensor is missing or of the wrong length (a bug in the caller: files are checked
    /// by [`load_content_encoder`] before this).
    pub fn from_named(spec: ContentEncoderSpec, mut tensors: HashMap<String, Vec<f32>>) -> Self {
        for (name, shape) in spec.expected_tensors() {
            let len = tensors.get(&name).map(Vec::len);
            assert_eq!(
                len,
                Some(shape.iter().product::<usize>()),
                "content encoder tensor {name}"
            );
        }
        let mut take = |name: &str| tensors.remove(name).unwrap_or_default();
        let content = (spec.content_dim > 0).then(|| LinearWeights {
            weight: take("content.weight"),
            bias: take("content.bias"),
            out: spec.d_model,
        });
        Self {
            genre: take("genre.weight"),
            kind: take("kind.weight"),
            language: take("language.weight"),
            year: take("year.weight"),
            gate: take("gate.weight"),
            unknown: take("unknown"),
            content,
            spec,
            unknown_share: None,
        }
    }
}

/// The bundle part of `encoder` with its matrices stored as `quantization` says, and the
/// tensors' bytes in the part's order (see [`WeightFile::encode`]).
pub fn content_encoder_part(
    encoder: &ServingContentEncoder,
    quantization: Quantization,
) -> (Part, Vec<Vec<u8>>) {
    let mut entries = Vec::new();
    let mut blobs = Vec::new();
    for (name, shape, values) in encoder.named_tensors() {
        let dtype = quantization.dtype_for(&shape);
        blobs.push(encode_values(&values, &shape, dtype));
        entries.push(TensorEntry {
            name,
            dtype,
            shape: shape.iter().map(|&d| d as u32).collect(),
            offset: 0,
            len: 0,
        });
    }
    let part = Part {
        name: CONTENT_ENCODER.into(),
        kind: PartKind::ContentEncoder(ContentEncoderPart {
            spec: encoder.spec.clone(),
            tensors: entries,
            quantization,
        }),
    };
    (part, blobs)
}

/// Checks a stored encoder shape against the model it serves (`d_model`): its width, genre
/// names (at most [`MAX_GENRES`], each at most [`MAX_GENRE_NAME_BYTES`], no repeats) and
/// content width (at most [`MAX_CONTENT_DIM`]).
pub fn validate_spec(spec: &ContentEncoderSpec, d_model: usize) -> Result<(), WeightFileError> {
    let invalid = |m: String| {
        Err(WeightFileError::InvalidModel(format!(
            "content encoder: {m}"
        )))
    };
    if spec.d_model != d_model {
        return invalid(format!(
            "width {} for a model of width {d_model}",
            spec.d_model
        ));
    }
    if spec.genres.len() > MAX_GENRES {
        return invalid(format!(
            "{} genres (at most {MAX_GENRES})",
            spec.genres.len()
        ));
    }
    for (i, g) in spec.genres.iter().enumerate() {
        if g.len() > MAX_GENRE_NAME_BYTES {
            return invalid(format!("genre {i} is {} bytes long", g.len()));
        }
        if spec.genres[..i].contains(g) {
            return invalid(format!("genre {g:?} is named twice"));
        }
    }
    if spec.content_dim > MAX_CONTENT_DIM {
        return invalid(format!(
            "content width {} (at most {MAX_CONTENT_DIM})",
            spec.content_dim
        ));
    }
    Ok(())
}

/// Bytes of f32 values the encoder of `spec` decodes to.
pub fn decoded_bytes(spec: &ContentEncoderSpec) -> u64 {
    spec.expected_tensors()
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>() as u64 * 4)
        .sum()
}

/// The bundle's item content encoder, if it has one, checked against the model it serves
/// (`d_model`): its shape first, then every tensor's name and shape, before any is decoded.
pub fn load_content_encoder(
    file: &WeightFile<'_>,
    d_model: usize,
) -> Result<Option<ServingContentEncoder>, WeightFileError> {
    let Some(part) = file.content_encoder() else {
        return Ok(None);
    };
    validate_spec(&part.spec, d_model)?;
    let expected = part.spec.expected_tensors();
    let entries = matched_entries(&expected, &part.tensors, "content encoder ", "encoder")?;
    let mut tensors = HashMap::with_capacity(entries.len());
    for entry in entries {
        // Refuses a non-finite value by the encoder's name and the tensor's.
        let values = decode_values(
            &format!("content encoder {}", entry.name),
            file.tensor_bytes(entry),
            &entry.shape,
            entry.dtype,
        )?;
        tensors.insert(entry.name.clone(), values);
    }
    Ok(Some(ServingContentEncoder::from_named(
        part.spec.clone(),
        tensors,
    )))
}
