//! The image path of the reference: qwen-vl-utils 0.0.14 `fetch_image` (decode, `to_rgb`,
//! `smart_resize`, PIL BICUBIC) then transformers 4.57.3 `Qwen2VLImageProcessorFast` with
//! `do_resize=False` (fused rescale + normalise, patchify). Spec sections 4.1 and 4.3.

mod decode;
mod error;
mod patches;
mod resize;
mod resize_torch;

pub use decode::{load_image, load_image_path, max_file_bytes};
pub use error::ImageError;
pub use image::RgbImage;
pub use patches::{ProcessorConfig, VisualInput, patchify};
pub use resize::{MAX_ASPECT_RATIO, resize_bicubic_pil, smart_resize};
pub use resize_torch::resize_bicubic_antialias_torch;

/// Limits for decoding and resizing one image. Defaults are the reranker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// Fewest pixels after resizing: 4 tokens * 32^2 = 4096.
    pub min_pixels: u64,
    /// Most pixels after resizing: 1800 tokens * 32^2 = 1,843,200.
    pub max_pixels: u64,
    /// Most pixels an image file, or a video file's frame, may declare: refused from its
    /// header, before it is decoded (and an image file before it is read whole). The default
    /// is [`DEFAULT_MAX_DECODED_PIXELS`].
    pub max_decoded_pixels: u64,
}

/// The default `max_decoded_pixels`, shared by the library, the CLI and `sift serve`: 50
/// megapixels, about 150 MB as 8-bit RGB. The model resizes every image to at most 1,843,200
/// pixels (and a video frame to at most 786,432), so a larger file only costs memory and time;
/// PIL, the reference, refuses from 178,956,970 (`DecompressionBombError`).
pub const DEFAULT_MAX_DECODED_PIXELS: u64 = 50_000_000;

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            min_pixels: 4 * 32 * 32,
            max_pixels: 1800 * 32 * 32,
            max_decoded_pixels: DEFAULT_MAX_DECODED_PIXELS,
        }
    }
}

/// qwen-vl-utils `fetch_image` after decoding: `smart_resize` to multiples of
/// `proc.resize_factor()`, then PIL's `Image.resize` (BICUBIC), which the reference always calls.
pub fn resize_for_model(
    img: &RgbImage,
    opts: &ImageOptions,
    proc: &ProcessorConfig,
) -> Result<RgbImage, ImageError> {
    proc.validate()?;
    let factor = u32::try_from(proc.resize_factor())
        .map_err(|_| ImageError::InvalidOptions("patch_size * merge_size is too large".into()))?;
    let (h, w) = smart_resize(
        img.height(),
        img.width(),
        factor,
        opts.min_pixels,
        opts.max_pixels,
    )?;
    Ok(resize_bicubic_pil(img, w, h))
}

/// A decoded RGB image to model input: [`resize_for_model`], then [`patchify`] with the one
/// frame repeated `temporal_patch_size` times. `grid_thw = [1, H / 16, W / 16]` for Qwen3-VL.
pub fn preprocess_image(
    img: &RgbImage,
    opts: &ImageOptions,
    proc: &ProcessorConfig,
) -> Result<VisualInput, ImageError> {
    let resized = resize_for_model(img, opts, proc)?;
    let frames = vec![&resized; proc.temporal_patch_size];
    patchify(&frames, proc)
}
