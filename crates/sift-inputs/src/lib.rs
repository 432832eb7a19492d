//! Turns a rerank request into what the model reads: prompt, token ids, pixels, position ids.

pub mod positions;
pub mod prompt;
pub mod video;
pub mod visual;

pub use visual::{
    ImageError, ImageOptions, ProcessorConfig, RgbImage, VisualInput, load_image, load_image_path,
    patchify, preprocess_image, resize_for_model,
};
