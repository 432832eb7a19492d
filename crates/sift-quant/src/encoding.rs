//! How each tensor is stored: which are Q4, f16 or f32 (`encoding_of`), the bytes a stored row
//! takes (`row_bytes`), and a checkpoint's floats decoded to f32 (`decode_f32`, also used by
//! sift-model to read f32 checkpoints). The conversion (`convert`) plans and writes by these.

use half::f16;
use safetensors::Dtype;

use crate::manifest::Encoding;
use crate::q4::{self, BLOCK};

/// The untied head: only its "yes" and "no" rows are kept.
pub(crate) const HEAD: &str = "lm_head.weight";

/// Little-endian F32, F16 or BF16 values as f32 (`None` for other dtypes): how checkpoints
/// ship their floats.
pub fn decode_f32(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// How a tensor is stored: Q4 for the matrices of linear and convolution layers, F16 for other
/// tables (embeddings, the vision position grid), F32 for 1-D tensors (norms, biases).
pub(crate) fn encoding_of(name: &str, shape: &[usize]) -> Encoding {
    if shape.len() < 2 || name == HEAD {
        Encoding::F32
    } else if name.contains("embed_tokens") || name.contains("pos_embed") {
        Encoding::F16
    } else {
        Encoding::Q4B32
    }
}

/// Bytes one row takes in an encoding.
pub(crate) fn row_bytes(encoding: Encoding, cols: usize) -> usize {
    match encoding {
        Encoding::Q4B32 => q4::padded_cols(cols) / 2 + q4::padded_cols(cols) / BLOCK * 2,
        Encoding::F16 => cols * 2,
        Encoding::F32 => cols * 4,
    }
}
