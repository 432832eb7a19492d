//! 4-bit weights for sift: a Hugging Face checkpoint converted to a quantized model on disk
//! (a manifest plus safetensors shards of at most 256 MB, each with its sha256), and read back
//! with its checks. The modules, in the order the data flows through them:
//!
//! - `q4`: the block-32 quantizer: f32 rows to 4-bit values with an f16 scale per block, and back.
//! - `encoding`: how each tensor is stored (Q4, f16 or f32), the bytes of a stored row, and a
//!   checkpoint's floats decoded to f32.
//! - `convert`: the conversion as a checkpoint's bytes arrive, planned from each file's header
//!   and written at offsets; the same code for a browser download and a file on disk.
//! - `directory`: a model directory converted and written to disk (`quantize_model`, also
//!   `QuantizedWriter` for weights made in memory), and a 4-bit model back to f32
//!   (`dequantize_model`).
//! - `manifest`: the on-disk format: the manifest, its shards and tensors, and their checks.
//! - `read`: a 4-bit model's shards read back into each tensor's stored values.
//! - `error`: `QuantError`, what every step can fail with.

mod convert;
mod directory;
mod encoding;
mod error;
mod manifest;
pub mod q4;
mod read;

pub use convert::{
    CHECKPOINT_INDEX, COPIED_FILES, Conversion, HeaderReader, PlannedShard, ShardOutput,
    SourcePlan, SourceTensor, SourceWriter, checkpoint_shards, parse_header,
};
pub use directory::{
    InMemoryModel, QuantizeReport, QuantizedWriter, dequantize_model, quantize_model,
};
pub use encoding::decode_f32;
pub use error::QuantError;
pub use manifest::{
    Encoding, FileEntry, MANIFEST, MAX_PART_BYTES, MAX_SHARD_BYTES, Manifest, Part, QuantizedModel,
    TensorEntry, hex,
};
pub use read::{StoredValues, TensorAssembler};
pub use safetensors::Dtype;
