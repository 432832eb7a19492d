//! Errors a user can trigger with an image: each message names the cause and the fix.

use std::path::PathBuf;

/// The formats `load_image` decodes, for error messages.
pub(crate) const SUPPORTED: &str = "PNG, JPEG, WebP, GIF, BMP or TIFF";

/// Why an image could not be loaded or turned into model input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The input has no bytes at all.
    #[error("the image data is empty (0 bytes); pass the complete bytes of a {SUPPORTED} file")]
    Empty,

    /// The bytes are not one of the supported formats.
    #[error("unsupported image format ({found}); convert the image to {SUPPORTED}")]
    UnsupportedFormat {
        /// What was found instead (a format name, or the first bytes).
        found: String,
    },

    /// The format was recognised but the data could not be decoded.
    #[error(
        "the {format} data is corrupt or truncated ({detail}); re-export or re-download the image, \
         or convert it to PNG"
    )]
    Corrupt {
        /// The format named by the file's signature.
        format: &'static str,
        /// The decoder's own message.
        detail: String,
    },

    /// The header announces more pixels than the decoder is allowed to allocate.
    #[error(
        "the image is {width}x{height} = {pixels} pixels, over the decoding limit of {limit} pixels \
         (the model resizes every image to at most 1,843,200 pixels, and this limit guards \
         against decompression bombs); downscale the image before passing it, or raise the \
         limit (`--max-image-pixels`; \
         `ImageOptions::max_decoded_pixels`) if the file is trusted"
    )]
    TooLarge {
        /// Width from the header.
        width: u64,
        /// Height from the header.
        height: u64,
        /// `width * height`.
        pixels: u64,
        /// The configured limit.
        limit: u64,
    },

    /// The reference (qwen-vl-utils `smart_resize`) refuses images longer than 200:1.
    #[error(
        "the image is {width}x{height}, an aspect ratio of {ratio:.1}:1, over the limit of \
         {max}:1; crop or pad the image so that its long side is at most {max} times its short side"
    )]
    AspectRatio {
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
        /// `max(w, h) / min(w, h)`.
        ratio: f64,
        /// The limit (200).
        max: u32,
    },

    /// The file could not be read.
    #[error("cannot read the image file {}: {source}; check that the path exists and is readable", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The path is not a regular file (a FIFO, a device such as `/dev/zero`, a directory):
    /// refused before anything is read, since it could block or never end.
    #[error(
        "the image path {} is {kind}; a regular file is needed (copy the data to a file and \
         pass that)", path.display()
    )]
    NotRegularFile {
        /// The path as given.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },

    /// The file is larger than an image at the decoding limit can be, refused before it is
    /// read whole.
    #[error(
        "the image file {} is {size} bytes, over the limit of {limit} bytes (8 bytes per pixel \
         of the decoding limit, plus 64 MiB); downscale or re-compress the image, or raise the \
         pixel limit (`--max-image-pixels`; \
         `ImageOptions::max_decoded_pixels`) if the file is trusted", path.display()
    )]
    FileTooLarge {
        /// The path as given.
        path: PathBuf,
        /// The file's size in bytes (or what was read before the bound).
        size: u64,
        /// The bound in bytes.
        limit: u64,
    },

    /// The file was read but its content failed; the path is named, the cause is inside.
    #[error("image file {}: {source}", path.display())]
    File {
        /// The path as given.
        path: PathBuf,
        /// What went wrong with the content.
        #[source]
        source: Box<ImageError>,
    },

    /// Inconsistent options (e.g. `min_pixels > max_pixels`, a zero patch size).
    #[error("invalid image options: {0}")]
    InvalidOptions(String),

    /// Frames handed to `patchify` that it cannot lay out.
    #[error("invalid frames for patchify: {0}")]
    InvalidFrames(String),
}

impl ImageError {
    /// The error itself, or for [`ImageError::File`] the error about the file's content.
    pub fn cause(&self) -> &ImageError {
        match self {
            ImageError::File { source, .. } => source.cause(),
            other => other,
        }
    }
}
