//! A Hugging Face checkpoint to sift's 4-bit format, keeping the head rows the score reads
//! (found through the model's own tokenizer).
//!
//! - A directory on disk: [`quantize`] (what `sift quantize` runs).
//! - As the bytes arrive (a browser's download, files a user picked): [`planned_manifest`]
//!   says what the 4-bit model will need of storage and the GPU before a byte of weights is
//!   fetched; a [`Conversion`] plans each source file from its header ([`HeaderReader`],
//!   [`SourcePlan`]) and a [`SourceWriter`] converts its bytes in order into shards written
//!   through a [`ShardOutput`]; a stopped conversion resumes from its record.

use std::path::Path;

use sift_inputs::prompt::{PromptTokenizer, TokenizerError};
use sift_model::{Device, ModelConfig, ModelError};
pub use sift_quant::{
    CHECKPOINT_INDEX, COPIED_FILES, Conversion, HeaderReader, QuantError, QuantizeReport,
    QuantizedModel, ShardOutput, SourcePlan, SourceWriter, checkpoint_shards, hex,
};
use sift_quant::{Dtype, FileEntry, Manifest, SourceTensor};

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The head rows a 4-bit model keeps: the ids of "yes" and "no" in the model's `tokenizer.json`.
pub fn head_rows(tokenizer_json: &[u8]) -> Result<[usize; 2], QuantizeError> {
    let tokenizer = PromptTokenizer::from_bytes(tokenizer_json)?;
    Ok([tokenizer.yes_id as usize, tokenizer.no_id as usize])
}

/// Writes the 4-bit form of the model in `model_dir` to `out_dir`: Q4 (block 32) linear and
/// convolution weights, f16 embeddings, f32 norms and biases, the "yes"/"no" head rows in f32,
/// in safetensors shards of at most 256 MB listed with their sha256 in `sift-q4.json`.
pub fn quantize(model_dir: &Path, out_dir: &Path) -> Result<QuantizeReport, QuantizeError> {
    let path = model_dir.join("tokenizer.json");
    let tokenizer = std::fs::read(&path).map_err(|e| QuantError::Io { path, source: e })?;
    Ok(sift_quant::quantize_model(
        model_dir,
        out_dir,
        &head_rows(&tokenizer)?,
    )?)
}

/// The manifest the checkpoint of `config_json` becomes, planned from the model's shapes
/// alone (as if its tensors were in one file), without its copied files: what the 4-bit model
/// will need of storage and of the GPU, known before a byte of weights is fetched. Shards
/// may split differently once the checkpoint's own files are read; sizes differ by headers.
pub fn planned_manifest(
    config_json: &[u8],
    head_rows: [usize; 2],
    device: &Device,
) -> Result<Manifest, QuantizeError> {
    let config = std::str::from_utf8(config_json)
        .map_err(|e| ModelError::Config(format!("config.json is not UTF-8: {e}")))?;
    let config = ModelConfig::from_json(config)?;
    let tensors = SourceTensor::laid_out(
        &sift_model::checkpoint_tensors(&config, device)?,
        Dtype::BF16,
    );
    let mut conversion = Conversion::new(&head_rows);
    let plan = conversion.plan(tensors)?;
    let shards = plan
        .shards
        .iter()
        .map(|s| FileEntry {
            file: s.file.clone(),
            bytes: s.bytes,
            sha256: String::new(),
        })
        .collect();
    conversion.record("planned", &plan, shards)?;
    Ok(conversion.manifest(Vec::new()))
}
