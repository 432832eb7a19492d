//! `quantize`: a Hugging Face model directory to sift's 4-bit format (sift-quant), keeping the
//! head rows the score reads, found through the model's own tokenizer.

use std::path::Path;

use sift_inputs::prompt::{PromptTokenizer, TokenizerError};
pub use sift_quant::{QuantError, QuantizeReport, QuantizedModel};

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Quant(#[from] QuantError),
}

/// Writes the 4-bit form of the model in `model_dir` to `out_dir`: Q4 (block 32) linear and
/// convolution weights, f16 embeddings, f32 norms and biases, the "yes"/"no" head rows in f32,
/// in safetensors shards of at most 256 MB listed with their sha256 in `sift-q4.json`.
pub fn quantize(model_dir: &Path, out_dir: &Path) -> Result<QuantizeReport, QuantizeError> {
    let tokenizer = PromptTokenizer::from_file(&model_dir.join("tokenizer.json"))?;
    let rows = [tokenizer.yes_id as usize, tokenizer.no_id as usize];
    Ok(sift_quant::quantize_model(model_dir, out_dir, &rows)?)
}
