//! The video path of the reference: qwen-vl-utils 0.0.14 `fetch_video` (frame sampling, the
//! per-frame pixel budget, torchvision's antialiased bicubic resize), then transformers 4.57.3
//! `Qwen3VLVideoProcessor` with `do_resize=False` and the processor's per-group timestamps.
//! Spec sections 4.2-4.4.
//!
//! Files are decoded with FFmpeg behind the `video` feature; frame lists need no decoder.

mod container;
#[cfg(feature = "video")]
mod decode;
mod error;
mod sampling;

use std::borrow::Borrow;
use std::path::Path;

pub use container::{ContainerInfo, probe_container};
pub use error::VideoError;
pub use sampling::{
    FILE_TOTAL_PIXELS, FRAME_FACTOR, FRAME_LIST_FPS, FRAME_LIST_TOTAL_PIXELS, SamplePlan,
    VideoSampling, check_frame_pixels, check_sample_tokens, frame_list_indices, frame_size,
    group_timestamps, sample_frame_list, sample_indices, sample_tokens, sampled_frame_count,
};

use crate::prompt::VideoPlaceholder;
use crate::visual::{
    ImageError, ProcessorConfig, RgbImage, VisualInput, patchify, resize_bicubic_antialias_torch,
    resize_bicubic_pil, smart_resize,
};
use sampling::check_tokens;

/// Frames as `fetch_video` returns them: sampled, resized to the model's size, with what the
/// processor needs for timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrames {
    /// All of one size, sides multiples of 32.
    pub frames: Vec<RgbImage>,
    /// The frame index of each frame in the source (`frames_indices` of the metadata).
    pub indices: Vec<usize>,
    /// Frame rate of the source (`metadata.fps`): timestamps are `index / fps`.
    pub fps: f64,
    /// Frames decoded to get these: for a long file, far fewer than it holds, since the
    /// reader seeks to the keyframe before each sample.
    pub decoded_frames: usize,
}

/// A video turned into model input: its pixels and its placeholder in the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedVideo {
    pub input: VisualInput,
    pub placeholder: VideoPlaceholder,
}

/// Reads and samples a video file as the reference does with decord: frame `i` is the `i`-th
/// packet of the video stream in presentation order, `sampled_frame_count` of them chosen by
/// `sample_indices`, each resized to `frame_size` with torchvision's kernel right after
/// decoding (so a 4K video never holds more than one full-size frame). Only the frames that are
/// needed are decoded: the decoder seeks to the keyframe before each one. A sample of more
/// than `max_tokens` video tokens is refused from the file's header, before decoding, and so
/// are frames of more than `max_frame_pixels` pixels (the image limit,
/// `ImageOptions::max_decoded_pixels`). The path must be a regular file: a FIFO, a device or a
/// directory is refused before FFmpeg opens it.
pub fn read_video(
    path: &Path,
    sampling: &VideoSampling,
    max_tokens: usize,
    max_frame_pixels: u64,
) -> Result<VideoFrames, VideoError> {
    sampling.validate()?;
    #[cfg(feature = "video")]
    {
        decode::read_video(path, sampling, max_tokens, max_frame_pixels)
    }
    #[cfg(not(feature = "video"))]
    {
        let _ = (path, max_tokens, max_frame_pixels);
        Err(VideoError::DecoderNotBuilt)
    }
}

/// The sampled frames of a video file, decoded by FFmpeg natively or by a browser's `<video>`
/// element, received in the plan's order at their decoded size: each is resized right away
/// as the reference resizes it (torchvision's kernel, to the per-frame budget of the whole
/// sample), so a 4K video never holds more than one full-size frame. The two decoders differ
/// only in their pixels; which frames, their size and their timestamps are the same.
#[derive(Debug)]
pub struct FrameCollector {
    plan: SamplePlan,
    /// `(height, width)` of every resized frame, fixed by the first frame.
    size: Option<(u32, u32)>,
    frames: Vec<RgbImage>,
}

impl FrameCollector {
    pub fn new(plan: SamplePlan) -> Self {
        let frames = Vec::with_capacity(plan.indices.len());
        Self {
            plan,
            size: None,
            frames,
        }
    }

    pub fn plan(&self) -> &SamplePlan {
        &self.plan
    }

    /// Adds the next sampled frame, at the size it was decoded.
    pub fn push(&mut self, frame: &RgbImage) -> Result<(), VideoError> {
        let wanted = self.plan.indices.len();
        if self.frames.len() == wanted {
            return Err(VideoError::InvalidOptions(format!(
                "more frames than the {wanted} sampled were given"
            )));
        }
        let (height, width) = match self.size {
            Some(size) => size,
            None => {
                let size = frame_size(frame.height(), frame.width(), wanted, FILE_TOTAL_PIXELS)?;
                *self.size.insert(size)
            }
        };
        self.frames
            .push(resize_bicubic_antialias_torch(frame, width, height));
        Ok(())
    }

    /// The sampled video, once every planned frame has been added; `decoded_frames` is how
    /// many the decoder produced to get them.
    pub fn finish(self, decoded_frames: usize) -> Result<VideoFrames, VideoError> {
        let wanted = self.plan.indices.len();
        if self.frames.len() != wanted {
            return Err(VideoError::Corrupt {
                detail: format!(
                    "{} of the {wanted} sampled frames decoded",
                    self.frames.len()
                ),
            });
        }
        Ok(VideoFrames {
            frames: self.frames,
            indices: self.plan.indices,
            fps: self.plan.fps,
            decoded_frames,
        })
    }
}

/// A video given as a list of `count` frame images (already picked with
/// [`frame_list_indices`]), decoded one at a time by `images`, as `fetch_video` treats a list:
/// each frame through `fetch_image` with factor 64 (a quirk of qwen-vl-utils: PIL bicubic to
/// multiples of 64, 4 to 16384 tokens of 64²), padded to an even count with the last frame,
/// stamped at 2 fps, then the video resize of a file. Both resizes happen as each frame
/// arrives, so only frames at their final size are held, and a list of more than
/// `max_tokens` video tokens is refused after its first frame, before the others are decoded.
pub fn video_from_frames<F: Borrow<RgbImage>>(
    count: usize,
    images: impl IntoIterator<Item = Result<F, VideoError>>,
    max_tokens: usize,
) -> Result<VideoFrames, VideoError> {
    const FACTOR: u32 = 64;
    if count == 0 {
        return Err(VideoError::InvalidOptions(
            "the frame list is empty; pass at least one frame".into(),
        ));
    }
    let padded = count.next_multiple_of(FRAME_FACTOR);
    let mut frames = Vec::with_capacity(padded);
    // The first frame's size after `fetch_image`, and the final size of every frame.
    let mut sizes: Option<((u32, u32), (u32, u32))> = None;
    for (index, image) in images.into_iter().take(count).enumerate() {
        let image = image?;
        let image: &RgbImage = image.borrow();
        let (h, w) = smart_resize(
            image.height(),
            image.width(),
            FACTOR,
            4 * u64::from(FACTOR * FACTOR),
            16384 * u64::from(FACTOR * FACTOR),
        )
        .map_err(VideoError::Frame)?;
        let ((first_height, first_width), (final_height, final_width)) = match sizes {
            Some(sizes) => sizes,
            None => {
                check_tokens(h, w, padded, FRAME_LIST_TOTAL_PIXELS, max_tokens)?;
                let size = frame_size(h, w, padded, FRAME_LIST_TOTAL_PIXELS)?;
                *sizes.insert(((h, w), size))
            }
        };
        if (h, w) != (first_height, first_width) {
            return Err(VideoError::FrameSizeMismatch {
                index,
                width: w,
                height: h,
                first_width,
                first_height,
            });
        }
        let fetched = resize_bicubic_pil(image, w, h);
        frames.push(resize_bicubic_antialias_torch(
            &fetched,
            final_width,
            final_height,
        ));
    }
    if frames.len() != count {
        return Err(VideoError::InvalidOptions(format!(
            "{} of the {count} frames of the list were given",
            frames.len()
        )));
    }
    while frames.len() < padded {
        frames.push(frames[frames.len() - 1].clone());
    }
    Ok(VideoFrames {
        indices: (0..frames.len()).collect(),
        frames,
        fps: FRAME_LIST_FPS,
        decoded_frames: count,
    })
}

impl VideoFrames {
    /// Pixels and placeholder: the processor pads to an even frame count with the last frame,
    /// lays out patches like an image's, and writes one timestamp per 2-frame group.
    pub fn prepare(&self, proc: &ProcessorConfig) -> Result<PreparedVideo, ImageError> {
        let mut frames: Vec<&RgbImage> = self.frames.iter().collect();
        if let Some(&last) = frames.last() {
            while !frames.len().is_multiple_of(proc.temporal_patch_size) {
                frames.push(last);
            }
        }
        let input = patchify(&frames, proc)?;
        let [_, h, w] = input.grid_thw;
        let placeholder = VideoPlaceholder {
            group_timestamps: group_timestamps(&self.indices, self.fps),
            tokens_per_group: h * w / (proc.merge_size * proc.merge_size),
        };
        Ok(PreparedVideo { input, placeholder })
    }
}
