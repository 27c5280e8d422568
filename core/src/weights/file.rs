//! Encoding and validated decoding of the weight file container.

use serde::{Deserialize, Serialize};

use super::Quantization;

/// The first eight bytes of every weight file.
pub const MAGIC: [u8; 8] = *b"ENCOREW\0";
/// The format version this build writes (it also reads version 2, the f32-only format, and
/// version 3, without the embedding scale).
pub const FORMAT_VERSION: u32 = 4;
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

/// The model shape a weight file holds (mirrors [`crate::FoundationModelConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Number of items scored.
    pub n_items: u32,
    /// Hidden width.
    pub d_model: u32,
    /// Attention heads.
    pub n_heads: u32,
    /// Transformer layers.
    pub n_layers: u32,
    /// Feed-forward width.
    pub d_ff: u32,
    /// Attention window in tokens.
    pub max_len: u32,
    /// Roll-up window of the tokenizer in seconds (0: none).
    pub rollup_window_s: u64,
    /// Whether tokens use their context fields (false: ID-only).
    pub context_features: bool,
    /// Whether the summed field embeddings are scaled by √`d_model` (version 4 on; files of
    /// versions 2 and 3 were written by models without the scale).
    pub scale_embedding: bool,
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

impl From<ModelSpecV3> for ModelSpec {
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
            scale_embedding: false,
        }
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

/// Everything but the tensor bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The model's shape.
    pub model: ModelSpec,
    /// External item ids in the order of the model's item rows.
    pub item_ids: Vec<u32>,
    /// The stored tensors.
    pub tensors: Vec<TensorEntry>,
    /// How the file stores its matrices (each entry also states its own dtype).
    pub quantization: Quantization,
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
    /// The decoded header.
    pub header: Header,
    data: &'a [u8],
}

impl<'a> WeightFile<'a> {
    /// Encodes `header` and the tensors' bytes (in header order) into a weight file.
    /// The entries' offsets and lengths are filled in here.
    pub fn encode(mut header: Header, tensors: &[&[u8]]) -> Vec<u8> {
        assert_eq!(
            header.tensors.len(),
            tensors.len(),
            "one byte slice per tensor entry"
        );
        let mut offset = 0u64;
        for (entry, bytes) in header.tensors.iter_mut().zip(tensors) {
            entry.offset = offset;
            entry.len = bytes.len() as u64;
            offset += (bytes.len() as u64).div_ceil(ALIGN as u64) * ALIGN as u64;
        }
        let head = postcard::to_allocvec(&header).expect("header serializes");
        let mut out = Vec::with_capacity(PREFIX + head.len() + offset as usize + ALIGN + CHECKSUM);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&head);
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        let data_start = out.len();
        for (entry, bytes) in header.tensors.iter().zip(tensors) {
            out.resize(data_start + entry.offset as usize, 0);
            out.extend_from_slice(bytes);
        }
        out.resize(data_start + offset as usize, 0);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates the container (not yet the model shape; see [`super::load_model`]).
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
        let header: Header = match version {
            2 => {
                let v2: HeaderV2 = postcard::from_bytes(head).map_err(malformed)?;
                Header {
                    model: v2.model.into(),
                    item_ids: v2.item_ids,
                    tensors: v2.tensors,
                    quantization: Quantization::F32,
                }
            }
            3 => {
                let v3: HeaderV3 = postcard::from_bytes(head).map_err(malformed)?;
                Header {
                    model: v3.model.into(),
                    item_ids: v3.item_ids,
                    tensors: v3.tensors,
                    quantization: v3.quantization,
                }
            }
            _ => postcard::from_bytes(head).map_err(malformed)?,
        };
        let data_start = (PREFIX + header_len).div_ceil(ALIGN) * ALIGN;
        let data = body.get(data_start..).unwrap_or(&[]);
        if header.tensors.len() > MAX_TENSORS {
            return Err(WeightFileError::MalformedHeader(format!(
                "{} tensors (at most {MAX_TENSORS})",
                header.tensors.len()
            )));
        }
        for t in &header.tensors {
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
                Some(end) if end <= data.len() as u64 => {}
                _ => {
                    return Err(bad(format!(
                        "bytes {}..+{} lie past the {}-byte data section",
                        t.offset,
                        t.len,
                        data.len()
                    )));
                }
            }
        }
        Ok(Self { header, data })
    }

    /// The raw bytes of a tensor entry (bounds were checked by [`WeightFile::decode`]).
    pub fn tensor_bytes(&self, entry: &TensorEntry) -> &'a [u8] {
        &self.data[entry.offset as usize..(entry.offset + entry.len) as usize]
    }
}
