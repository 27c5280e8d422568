//! Encore's weight file: a versioned, checksummed container for a trained model.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `b"ENCOREW\0"` |
//! | 8..12 | format version (`u32`) |
//! | 12..16 | header length `H` (`u32`) |
//! | 16..16+H | [`Header`], postcard-encoded (states the [`Quantization`] and each tensor's dtype) |
//! | …, padded to 16 | tensor data: each tensor's little-endian f32, f16 or int8-with-row-scales bytes at its offset |
//! | last 4 | CRC-32 of every byte before it |
//!
//! Reading validates, in order, the length, magic, version, checksum, header, the model shape,
//! and every tensor's name, shape, dtype, offset and length against what that model shape
//! implies, before a single tensor is allocated.

mod file;
mod model_io;
mod quantize;

pub use file::{
    FORMAT_VERSION, Header, MAGIC, ModelSpec, OLDEST_READABLE_VERSION, TensorDType, TensorEntry,
    WeightFile, WeightFileError,
};
pub use model_io::{LoadedModel, expected_tensors, load_model, requantize, save_model};
pub use quantize::{Quantization, decode_values, encode_values};
