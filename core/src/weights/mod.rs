//! Encore's weight file: a versioned, checksummed bundle of named, typed parts (a foundation
//! model and, optionally, its item content encoder, named prompt sets and the contextual
//! ranker).
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `b"ENCOREW\0"` |
//! | 8..12 | format version (`u32`) |
//! | 12..16 | header length `H` (`u32`) |
//! | 16..16+H | [`Manifest`], postcard-encoded: the parts, each with its config, ids and tensor entries (dtype, shape, offset, length; see [`Quantization`]) |
//! | …, padded to 16 | tensor data: each tensor's little-endian f32, f16 or int8-with-row-scales bytes at its offset |
//! | last 4 | CRC-32 of every byte before it |
//!
//! Reading validates, in order, the length, magic, version, checksum, the manifest, every
//! tensor's rank, length and place (inside the data section, no two sharing bytes), then the
//! part's shape and every tensor's name and shape against what that shape implies, before a
//! single tensor is decoded. Files of versions 2 to 4 (one model, no manifest) still load.

mod content_io;
mod file;
mod model_io;
mod prompt_io;
mod quantize;
mod ranker_io;

pub use content_io::{
    MAX_CONTENT_DIM, MAX_GENRE_NAME_BYTES, MAX_GENRES, content_encoder_part, load_content_encoder,
};
pub use file::{
    CONTENT_ENCODER, ContentEncoderPart, FORMAT_VERSION, FOUNDATION_MODEL, FoundationModelPart,
    MAGIC, Manifest, OLDEST_READABLE_VERSION, Part, PartKind, PromptSetPart, RANKER, RankerPart,
    TensorDType, TensorEntry, WeightFile, WeightFileError,
};
pub use model_io::{
    BundleParts, Loaded, LoadedModel, LoadedServing, MAX_DECODED_PER_FILE_BYTE, MAX_WINDOW,
    expected_tensors, load_model, load_model_within, load_serving_within, requantize, retain_items,
    save_bundle, save_bundle_with, save_model, validate_config,
};
pub use prompt_io::{
    MAX_PROMPT_NAME_BYTES, MAX_PROMPT_SETS, PROMPT_PART_PREFIX, expected_prompt_tensors,
    load_prompt_sets, prompt_set_part, validate_prompt_name,
};
pub use quantize::{Quantization, decode_values, encode_values};
pub use ranker_io::{
    MIN_PROBE_COSINE, RankerBundle, ServingRankerBundle, expected_ranker_tensors, load_ranker,
    load_serving_ranker, probe_cosine, probe_history, ranker_decoded_bytes, ranker_part,
};
