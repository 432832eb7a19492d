//! Turns a rerank request into what the model reads: prompt, token ids, pixels, position ids.

mod file;
#[cfg(feature = "pdf")]
pub mod pdf;
pub mod positions;
pub mod prompt;
pub mod video;
pub mod visual;

pub use visual::{
    DEFAULT_MAX_DECODED_PIXELS, ImageError, ImageOptions, ProcessorConfig, RgbImage, VisualInput,
    load_image, load_image_path, max_file_bytes, patchify, preprocess_image, resize_for_model,
};
