//! Encoding and validated decoding of the weight file container.

use serde::{Deserialize, Serialize};

use super::Quantization;
use crate::model::{FoundationModelConfig, PromptForm};
use crate::ranker::{RankerConfig, RankerVocabulary};
use crate::serving::ContentEncoderSpec;

/// The first eight bytes of every weight file.
pub const MAGIC: [u8; 8] = *b"ENCOREW\0";
/// The format version this build writes: a bundle of named, typed parts (see [`Manifest`]).
/// It also reads versions 2 (f32 only), 3 (no embedding scale) and 4 (one foundation model).
pub const FORMAT_VERSION: u32 = 5;
/// The oldest format version this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 2;
const PREFIX: usize = 16;
const CHECKSUM: usize = 4;
const ALIGN: usize = 16;
/// Upper bounds that keep a hostile header from asking for absurd allocations.
const MAX_TENSORS: usize = 4096;
const MAX_RANK: usize = 4;

/// Element type of a stored tensor (see [`super::Quantization`] for the int8 layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TensorDType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// int8 values with one f32 scale per row (every dimension but the last).
    Int8Rows,
}

/// The model spec of format version 4 (the foundation model's shape as fixed-width integers).
#[derive(Deserialize)]
struct ModelSpecV4 {
    n_items: u32,
    d_model: u32,
    n_heads: u32,
    n_layers: u32,
    d_ff: u32,
    max_len: u32,
    rollup_window_s: u64,
    context_features: bool,
    scale_embedding: bool,
}

/// The model spec of format versions 2 and 3 (no embedding scale).
#[derive(Deserialize)]
struct ModelSpecV3 {
    n_items: u32,
    d_model: u32,
    n_heads: u32,
    n_layers: u32,
    d_ff: u32,
    max_len: u32,
    rollup_window_s: u64,
    context_features: bool,
}

impl From<ModelSpecV3> for ModelSpecV4 {
    fn from(v: ModelSpecV3) -> Self {
        Self {
            n_items: v.n_items,
            d_model: v.d_model,
            n_heads: v.n_heads,
            n_layers: v.n_layers,
            d_ff: v.d_ff,
            max_len: v.max_len,
            rollup_window_s: v.rollup_window_s,
            context_features: v.context_features,
            // Models stored before the option existed had no scale.
            scale_embedding: false,
        }
    }
}

impl From<ModelSpecV4> for FoundationModelConfig {
    fn from(v: ModelSpecV4) -> Self {
        FoundationModelConfig::new(v.n_items as usize)
            .with_d_model(v.d_model as usize)
            .with_n_heads(v.n_heads as usize)
            .with_n_layers(v.n_layers as usize)
            .with_d_ff(v.d_ff as usize)
            .with_max_len(v.max_len as usize)
            .with_rollup_window_s(v.rollup_window_s)
            .with_context_features(v.context_features)
            .with_scale_embedding(v.scale_embedding)
            .with_dropout(0.0)
    }
}

/// Where one tensor lives in the data section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Parameter path in the model, e.g. `blocks.0.attention.query.weight`.
    pub name: String,
    /// Element type.
    pub dtype: TensorDType,
    /// Dimensions.
    pub shape: Vec<u32>,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A foundation model part: its shape, the external ids of its item rows and its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundationModelPart {
    /// The model's shape (the one config type the model, training and engines use).
    pub config: FoundationModelConfig,
    /// External item ids in the order of the model's item rows.
    pub item_ids: Vec<u32>,
    /// The stored tensors.
    pub tensors: Vec<TensorEntry>,
    /// How the part stores its matrices (each entry also states its own dtype).
    pub quantization: Quantization,
}

/// What a part of a bundle holds. New kinds (prompt sets, a ranker, an item content encoder)
/// join as new variants without another format version; a reader that does not know a kind
/// refuses the file by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartKind {
    /// The foundation model.
    FoundationModel(FoundationModelPart),
    /// The item content encoder: embeds a title the bundle does not contain from its metadata.
    ContentEncoder(ContentEncoderPart),
    /// One named prompt set (the part's name is `prompt:` + the set's name).
    PromptSet(PromptSetPart),
    /// The contextual ranker, with the vocabulary its features are read against.
    Ranker(RankerPart),
}

impl PartKind {
    /// The tensors of this part.
    pub fn tensors(&self) -> &[TensorEntry] {
        match self {
            Self::FoundationModel(p) => &p.tensors,
            Self::ContentEncoder(p) => &p.tensors,
            Self::PromptSet(p) => &p.tensors,
            Self::Ranker(p) => &p.tensors,
        }
    }

    /// The tensors of this part, to fill in their places.
    fn tensors_mut(&mut self) -> &mut Vec<TensorEntry> {
        match self {
            Self::FoundationModel(p) => &mut p.tensors,
            Self::ContentEncoder(p) => &mut p.tensors,
            Self::PromptSet(p) => &mut p.tensors,
            Self::Ranker(p) => &mut p.tensors,
        }
    }
}

/// An item content encoder part: its shape (genre names included) and its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentEncoderPart {
    /// The encoder's shape.
    pub spec: ContentEncoderSpec,
    /// The stored tensors.
    pub tensors: Vec<TensorEntry>,
    /// How the part stores its matrices (each entry also states its own dtype).
    pub quantization: Quantization,
}

/// A prompt set part: its form, length and tensors (`input`, or `keys` and `values`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSetPart {
    /// Where its vectors enter the model.
    pub form: PromptForm,
    /// Vectors per prompt.
    pub length: u32,
    /// The stored tensors.
    pub tensors: Vec<TensorEntry>,
    /// How the part stores its matrices (each entry also states its own dtype).
    pub quantization: Quantization,
}

/// The contextual ranker's part: its shape, the vocabulary its features are read against,
/// the foundation model it was trained on (as a probe) and its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerPart {
    /// The ranker's shape.
    pub config: RankerConfig,
    /// Task, country and language names and the model's titles as the ranker reads them.
    pub vocabulary: RankerVocabulary,
    /// The user representation the foundation model it was trained on gives a fixed probe
    /// history (see [`crate::weights::probe_history`]): a bundle whose model gives another is
    /// refused.
    pub probe: Vec<f32>,
    /// The stored tensors.
    pub tensors: Vec<TensorEntry>,
    /// How the part stores its matrices (each entry also states its own dtype).
    pub quantization: Quantization,
}

/// One named part of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The part's name, unique in the bundle (the foundation model is [`FOUNDATION_MODEL`]).
    pub name: String,
    /// What it holds.
    pub kind: PartKind,
}

/// The name of the foundation model part.
pub const FOUNDATION_MODEL: &str = "foundation_model";

/// The name of the contextual ranker part.
pub const RANKER: &str = "ranker";

/// The name of the item content encoder part.
pub const CONTENT_ENCODER: &str = "content_encoder";

/// Everything but the tensor bytes: the bundle's parts, whose tensors share one data section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The parts, in file order.
    pub parts: Vec<Part>,
}

impl Manifest {
    /// A bundle holding one foundation model.
    pub fn foundation_model(part: FoundationModelPart) -> Self {
        Self {
            parts: vec![Part {
                name: FOUNDATION_MODEL.into(),
                kind: PartKind::FoundationModel(part),
            }],
        }
    }
}

/// The header of format version 4 (one foundation model).
#[derive(Deserialize)]
struct HeaderV4 {
    model: ModelSpecV4,
    item_ids: Vec<u32>,
    tensors: Vec<TensorEntry>,
    quantization: Quantization,
}

/// The header of format version 2 (f32 only, no quantization field).
#[derive(Deserialize)]
struct HeaderV2 {
    model: ModelSpecV3,
    item_ids: Vec<u32>,
    tensors: Vec<TensorEntry>,
}

/// The header of format version 3 (no embedding scale in the model spec).
#[derive(Deserialize)]
struct HeaderV3 {
    model: ModelSpecV3,
    item_ids: Vec<u32>,
    tensors: Vec<TensorEntry>,
    quantization: Quantization,
}

/// Why a weight file was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightFileError {
    /// The model would decode to more bytes of weights than the caller allows.
    #[error("the model decodes to {decoded} bytes of weights, over the caller's limit of {limit}")]
    DecodedTooLarge {
        /// Bytes of f32 weights the model's shape needs.
        decoded: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// Fewer bytes than the fixed prefix and checksum.
    #[error("weight file is {len} bytes, shorter than the minimum of {min}")]
    TooShort {
        /// Bytes given.
        len: usize,
        /// Minimum size.
        min: usize,
    },
    /// Not an Encore weight file.
    #[error("not an Encore weight file (bad magic bytes {found:02x?})")]
    BadMagic {
        /// The first eight bytes.
        found: Vec<u8>,
    },
    /// Written by another format version.
    #[error(
        "weight file format version {found} is not supported (this build reads versions {OLDEST_READABLE_VERSION} to {supported})"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The checksum does not match: truncated or corrupted.
    #[error(
        "weight file checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is truncated or corrupted"
    )]
    ChecksumMismatch {
        /// CRC-32 in the file.
        stored: u32,
        /// CRC-32 of the bytes.
        computed: u32,
    },
    /// The header length points past the end of the file.
    #[error("weight file header length {header_len} exceeds the {available} bytes available")]
    HeaderOutOfBounds {
        /// Declared header length.
        header_len: usize,
        /// Bytes after the prefix.
        available: usize,
    },
    /// The header could not be decoded.
    #[error("weight file header is malformed: {0}")]
    MalformedHeader(String),
    /// The model shape is out of range or inconsistent.
    #[error("weight file model shape is invalid: {0}")]
    InvalidModel(String),
    /// A tensor entry is inconsistent with the model shape or the data section.
    #[error("weight file tensor `{name}`: {reason}")]
    InvalidTensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is absent.
    #[error("weight file lacks tensor `{0}`")]
    MissingTensor(String),
    /// A part the reader needs is absent.
    #[error("weight file has no {0} part")]
    MissingPart(&'static str),
    /// Two parts share a name.
    #[error("weight file has two parts named `{0}`")]
    DuplicatePart(String),
    /// Two tensors claim the same bytes of the data section.
    #[error("weight file tensors `{first}` and `{second}` overlap in the data section")]
    OverlappingTensors {
        /// The tensor stored first.
        first: String,
        /// The tensor whose bytes start inside it.
        second: String,
    },
    /// The ranker part was trained on another foundation model than the bundle's.
    #[error(
        "the ranker part was trained on another foundation model: this model's user representation of the probe history has cosine {cosine:.3} to the one stored (at least {min:.2} required)"
    )]
    RankerOnAnotherModel {
        /// Cosine between the stored and the computed probe representation.
        cosine: f32,
        /// The least cosine accepted.
        min: f32,
    },
    /// A weight is NaN or infinite.
    #[error("weight file tensor `{name}` holds a non-finite value at element {index}")]
    NonFinite {
        /// Tensor name.
        name: String,
        /// Element index.
        index: usize,
    },
}

/// A decoded, validated view of a weight file's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightFile<'a> {
    /// The decoded manifest (files of versions 2 to 4 read as one foundation model part).
    pub manifest: Manifest,
    data: &'a [u8],
}

impl<'a> WeightFile<'a> {
    /// Encodes `manifest` and the tensors' bytes (every part's tensors, parts in order) into a
    /// weight file. The entries' offsets and lengths are filled in here.
    ///
    /// # Panics
    /// If the byte slices do not match the manifest's tensor entries one to one.
    pub fn encode(mut manifest: Manifest, tensors: &[&[u8]]) -> Vec<u8> {
        let entries = manifest
            .parts
            .iter_mut()
            .flat_map(|p| p.kind.tensors_mut().iter_mut());
        let mut offset = 0u64;
        let mut count = 0;
        for (entry, bytes) in entries.zip(tensors) {
            entry.offset = offset;
            entry.len = bytes.len() as u64;
            offset += (bytes.len() as u64).div_ceil(ALIGN as u64) * ALIGN as u64;
            count += 1;
        }
        let total: usize = manifest.parts.iter().map(|p| p.kind.tensors().len()).sum();
        assert!(
            count == total && total == tensors.len(),
            "one byte slice per tensor entry"
        );
        let head = postcard::to_allocvec(&manifest).expect("manifest serializes");
        let mut out = Vec::with_capacity(PREFIX + head.len() + offset as usize + ALIGN + CHECKSUM);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&head);
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        let data_start = out.len();
        let entries = manifest.parts.iter().flat_map(|p| p.kind.tensors());
        for (entry, bytes) in entries.zip(tensors) {
            out.resize(data_start + entry.offset as usize, 0);
            out.extend_from_slice(bytes);
        }
        out.resize(data_start + offset as usize, 0);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates the container: length, magic, version, checksum, the manifest,
    /// unique part names, and every tensor's rank, length and place in the data section
    /// (inside it, and no two tensors sharing bytes, so that the decoded weights are bounded
    /// by four times the data section). Each part's own shape is checked when it is loaded
    /// (see [`super::load_model`]); nothing is allocated before.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, WeightFileError> {
        let min = PREFIX + CHECKSUM;
        if bytes.len() < min {
            return Err(WeightFileError::TooShort {
                len: bytes.len(),
                min,
            });
        }
        if bytes[..8] != MAGIC {
            return Err(WeightFileError::BadMagic {
                found: bytes[..8].to_vec(),
            });
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(WeightFileError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let (body, tail) = bytes.split_at(bytes.len() - CHECKSUM);
        let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(WeightFileError::ChecksumMismatch { stored, computed });
        }
        let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        let available = body.len() - PREFIX;
        if header_len > available {
            return Err(WeightFileError::HeaderOutOfBounds {
                header_len,
                available,
            });
        }
        let head = &body[PREFIX..PREFIX + header_len];
        let malformed = |e: postcard::Error| WeightFileError::MalformedHeader(e.to_string());
        let single = |config: FoundationModelConfig, item_ids, tensors, quantization| {
            Manifest::foundation_model(FoundationModelPart {
                config,
                item_ids,
                tensors,
                quantization,
            })
        };
        let manifest: Manifest = match version {
            2 => {
                let v: HeaderV2 = postcard::from_bytes(head).map_err(malformed)?;
                let spec: ModelSpecV4 = v.model.into();
                single(spec.into(), v.item_ids, v.tensors, Quantization::F32)
            }
            3 => {
                let v: HeaderV3 = postcard::from_bytes(head).map_err(malformed)?;
                let spec: ModelSpecV4 = v.model.into();
                single(spec.into(), v.item_ids, v.tensors, v.quantization)
            }
            4 => {
                let v: HeaderV4 = postcard::from_bytes(head).map_err(malformed)?;
                single(v.model.into(), v.item_ids, v.tensors, v.quantization)
            }
            _ => postcard::from_bytes(head).map_err(malformed)?,
        };
        let data_start = (PREFIX + header_len).div_ceil(ALIGN) * ALIGN;
        let data = body.get(data_start..).unwrap_or(&[]);
        for (i, part) in manifest.parts.iter().enumerate() {
            if manifest.parts[..i].iter().any(|p| p.name == part.name) {
                return Err(WeightFileError::DuplicatePart(part.name.clone()));
            }
        }
        let count: usize = manifest.parts.iter().map(|p| p.kind.tensors().len()).sum();
        if count > MAX_TENSORS {
            return Err(WeightFileError::MalformedHeader(format!(
                "{count} tensors (at most {MAX_TENSORS})"
            )));
        }
        let all = || manifest.parts.iter().flat_map(|p| p.kind.tensors());
        for t in all() {
            check_entry(t, version, data.len())?;
        }
        // No two tensors share bytes: sorted by offset, each ends before the next begins.
        let mut spans: Vec<&TensorEntry> = all().collect();
        spans.sort_by_key(|t| (t.offset, t.len));
        for pair in spans.windows(2) {
            if pair[0].offset + pair[0].len > pair[1].offset {
                return Err(WeightFileError::OverlappingTensors {
                    first: pair[0].name.clone(),
                    second: pair[1].name.clone(),
                });
            }
        }
        Ok(Self { manifest, data })
    }

    /// The foundation model part (the first of its kind).
    pub fn foundation_model(&self) -> Result<&FoundationModelPart, WeightFileError> {
        self.manifest
            .parts
            .iter()
            .find_map(|p| match &p.kind {
                PartKind::FoundationModel(m) => Some(m),
                _ => None,
            })
            .ok_or(WeightFileError::MissingPart("foundation model"))
    }

    /// The item content encoder part, if the bundle carries one.
    pub fn content_encoder(&self) -> Option<&ContentEncoderPart> {
        self.manifest.parts.iter().find_map(|p| match &p.kind {
            PartKind::ContentEncoder(c) => Some(c),
            _ => None,
        })
    }

    /// The contextual ranker part, if the bundle carries one.
    pub fn ranker(&self) -> Option<&RankerPart> {
        self.manifest.parts.iter().find_map(|p| match &p.kind {
            PartKind::Ranker(r) => Some(r),
            _ => None,
        })
    }

    /// The prompt set parts, in file order, with their part names.
    pub fn prompt_sets(&self) -> impl Iterator<Item = (&str, &PromptSetPart)> {
        self.manifest.parts.iter().filter_map(|p| match &p.kind {
            PartKind::PromptSet(s) => Some((p.name.as_str(), s)),
            _ => None,
        })
    }

    /// The checksum a weight file stores in its last four bytes (CRC-32 of everything before
    /// them): the file's version, as [`WeightFile::decode`] checks it. `None` for fewer than
    /// four bytes.
    pub fn stored_checksum(bytes: &[u8]) -> Option<u32> {
        let tail: [u8; 4] = bytes.get(bytes.len().checked_sub(4)?..)?.try_into().ok()?;
        Some(u32::from_le_bytes(tail))
    }

    /// The raw bytes of a tensor entry (bounds were checked by [`WeightFile::decode`]).
    pub fn tensor_bytes(&self, entry: &TensorEntry) -> &'a [u8] {
        &self.data[entry.offset as usize..(entry.offset + entry.len) as usize]
    }
}

/// Checks one tensor entry's rank, dtype, length and bounds in a `data_len`-byte data section.
fn check_entry(t: &TensorEntry, version: u32, data_len: usize) -> Result<(), WeightFileError> {
    let bad = |reason: String| WeightFileError::InvalidTensor {
        name: t.name.clone(),
        reason,
    };
    if t.shape.is_empty() || t.shape.len() > MAX_RANK {
        return Err(bad(format!(
            "rank {} (expected 1 to {MAX_RANK})",
            t.shape.len()
        )));
    }
    if version == 2 && t.dtype != TensorDType::F32 {
        return Err(bad(format!("{:?} in a version-2 (f32) file", t.dtype)));
    }
    if t.shape.contains(&0) {
        return Err(bad(format!("empty dimension in shape {:?}", t.shape)));
    }
    let expected = t.dtype.stored_len(&t.shape);
    if expected != Some(t.len) {
        return Err(bad(format!(
            "length {} bytes does not match shape {:?} of {:?}",
            t.len, t.shape, t.dtype
        )));
    }
    match t.offset.checked_add(t.len) {
        Some(end) if end <= data_len as u64 => Ok(()),
        _ => Err(bad(format!(
            "bytes {}..+{} lie past the {}-byte data section",
            t.offset, t.len, data_len
        ))),
    }
}
