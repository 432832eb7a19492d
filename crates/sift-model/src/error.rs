//! What can go wrong, for every part of the crate: one error type.

use std::path::PathBuf;

use sift_quant::QuantError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{0}")]
    Weights(String),
    #[error("invalid model input: {0}")]
    Input(String),
    #[error("no usable GPU: {0}")]
    Gpu(String),
    #[error(
        "the model computed a score of {0} (a numeric overflow on this device); this pair \
         cannot be scored here: try the CPU backend, or report it with the inputs"
    )]
    NotFinite(f32),
}

impl From<QuantError> for ModelError {
    fn from(e: QuantError) -> Self {
        ModelError::Weights(e.to_string())
    }
}
