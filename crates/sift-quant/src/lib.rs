//! 4-bit weights for sift: the block-32 quantizer (`q4`), the on-disk format of a quantized
//! model (a manifest plus safetensors shards of at most 256 MB, each with its sha256), the
//! conversion from a Hugging Face checkpoint as its bytes arrive (`stream`, the same for a
//! directory and a download), and the checks made when reading one back.

mod convert;
mod error;
mod manifest;
pub mod q4;
mod read;
mod stream;

pub use convert::{
    CHECKPOINT_INDEX, COPIED_FILES, QuantizeReport, QuantizedWriter, checkpoint_shards, decode_f32,
    dequantize_model, quantize_model,
};
pub use error::QuantError;
pub use manifest::{
    Encoding, FileEntry, MANIFEST, MAX_PART_BYTES, MAX_SHARD_BYTES, Manifest, Part, QuantizedModel,
    TensorEntry, hex,
};
pub use read::{StoredValues, TensorAssembler};
pub use safetensors::Dtype;
pub use stream::{
    Conversion, HeaderReader, PlannedShard, ShardOutput, SourcePlan, SourceTensor, SourceWriter,
    parse_header,
};
