//! Errors a user can trigger with a video: each message names the cause and the fix.

use std::path::PathBuf;

use crate::visual::ImageError;

/// What sift decodes, for error messages.
pub(crate) const SUPPORTED: &str =
    "MP4/MOV (H.264, H.265), WebM/MKV (VP8, VP9, AV1) or AVI, or a list of frame images";

/// How to re-encode a video into something every build decodes.
const REENCODE: &str = "re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4`";

/// Why a video could not be read or turned into model input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VideoError {
    /// sift was compiled without FFmpeg.
    #[error(
        "this build of sift cannot decode video files; rebuild with `--features video` (needs \
         FFmpeg's libraries: `apt install libavformat-dev libavcodec-dev libswscale-dev \
         libclang-dev pkg-config`), or pass the video as a list of frame images"
    )]
    DecoderNotBuilt,

    /// The file could not be read at all.
    #[error("cannot read {}: {source}; check the path and its permissions", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The path is not a regular file (a FIFO, a device, a directory): refused before it is
    /// opened, since reading it could block or never end.
    #[error(
        "the video path {} is {kind}; a regular file is needed (copy the data to a file and \
         pass that)", path.display()
    )]
    NotRegularFile { path: PathBuf, kind: &'static str },

    /// The video's frames are larger than an image may be: refused from the container's (or
    /// the decoder's) header, before any frame is decoded.
    #[error(
        "the video's frames are {width}x{height} = {pixels} pixels, over the limit of {limit} \
         pixels per frame (the model resizes each frame to at most 786,432 pixels); downscale \
         the video, e.g. `ffmpeg -i IN -vf scale=1920:-2 OUT.mp4`, or raise the limit \
         (`--max-image-pixels`; \
         `ImageOptions::max_decoded_pixels`) if the file is trusted"
    )]
    FrameTooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },

    /// The container could not be opened or parsed.
    #[error("not a readable video ({detail}); pass a complete {SUPPORTED}, or {REENCODE}")]
    Unreadable { detail: String },

    /// The container has streams, but none of them is video (an audio file, say).
    #[error("the file has no video stream (audio only?); pass a file with video in it")]
    NoVideoStream,

    /// FFmpeg has no decoder for the stream's codec.
    #[error("the video codec {codec} cannot be decoded by this FFmpeg build; {REENCODE}")]
    UnsupportedCodec { codec: String },

    /// The video stream holds no frames.
    #[error("the video stream contains no frames; pass a video with at least 2 frames")]
    NoFrames,

    /// Too short to sample the 2 frames one temporal patch needs.
    #[error(
        "the video has {total_frames} frame(s); at least 2 are needed, so pass a single frame as \
         an image instead"
    )]
    TooFewFrames { total_frames: usize },

    /// The stream declares no usable frame rate, so frames cannot be placed in time.
    #[error("the video declares no frame rate ({detail}); {REENCODE}")]
    NoFrameRate { detail: String },

    /// Decoding stopped on damaged data.
    #[error("the video data is corrupt or truncated ({detail}); re-download it, or {REENCODE}")]
    Corrupt { detail: String },

    /// A frame size the model cannot take (from `smart_resize`), or a bad frame image.
    #[error("{0}")]
    Frame(#[source] ImageError),

    /// Frame images of one video differ in size after the reference's first resize.
    #[error(
        "frame {index} is {width}x{height} after resizing but frame 0 is {first_width}x{first_height}; \
         the frames of one video must share one size, so crop or pad them to one size"
    )]
    FrameSizeMismatch {
        index: usize,
        width: u32,
        height: u32,
        first_width: u32,
        first_height: u32,
    },

    /// Sampling settings that cannot work.
    #[error("invalid video options: {0}")]
    InvalidOptions(String),

    /// The sample would be more image and video tokens than a pair may have: refused before
    /// any frame is decoded.
    #[error(
        "sampling {frames} frames of {width}x{height} from this video gives {tokens} video \
         tokens, over the limit of {limit}; lower the request's \"fps\" or \"max_frames\", or \
         raise the limit (`--max-visual-tokens`) if the GPU has the memory"
    )]
    TooManyTokens {
        frames: usize,
        width: u32,
        height: u32,
        tokens: usize,
        limit: usize,
    },

    /// A browser could not play the video to capture its frames.
    #[error("{detail}")]
    NotPlayable { detail: String },
}
