//! The numbers of qwen-vl-utils 0.0.14 `fetch_video` and the transformers 4.57.3 processor:
//! how many frames, which ones, how large, and the timestamp of each 2-frame group.

use super::error::VideoError;
use crate::visual::smart_resize;

/// Frames are sampled and grouped in pairs (`FRAME_FACTOR`, = `temporal_patch_size`).
pub const FRAME_FACTOR: usize = 2;
/// `FPS_MIN_FRAMES`: fewer frames than this are never sampled (unless the video has fewer).
const MIN_FRAMES: usize = 4;
/// `VIDEO_MIN_TOKEN_NUM * 32^2`: the fewest pixels of one resized frame.
pub const FRAME_MIN_PIXELS: u64 = 128 * 32 * 32;
/// `VIDEO_MAX_TOKEN_NUM * 32^2`: the most pixels of one resized frame.
pub const FRAME_MAX_PIXELS: u64 = 768 * 32 * 32;
/// `total_pixels` of a video file: `MODEL_SEQ_LEN (128000) * 32^2 * 0.9`. The reranker passes
/// none for files, so qwen-vl-utils' default applies.
pub const FILE_TOTAL_PIXELS: f64 = 128_000.0 * 32.0 * 32.0 * 0.9;
/// `total_pixels` of a frame-list video: the reranker's `MAX_TOTAL_PIXELS = 10 * 768 * 32^2`.
pub const FRAME_LIST_TOTAL_PIXELS: f64 = 10.0 * 768.0 * 32.0 * 32.0;
/// Frame lists are stamped with this rate (`sample_fps` default of `fetch_video`).
pub const FRAME_LIST_FPS: f64 = 2.0;

/// How a video file is sampled: the reranker's `fps` and `max_frames`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSampling {
    /// Frames sampled per second of video (reference default 1.0).
    pub fps: f64,
    /// Most frames sampled (reference default 64); rounded down to even.
    pub max_frames: usize,
}

impl Default for VideoSampling {
    fn default() -> Self {
        VideoSampling {
            fps: 1.0,
            max_frames: 64,
        }
    }
}

impl VideoSampling {
    /// Refuses settings the reference would fail on later, with the fix.
    pub fn validate(&self) -> Result<(), VideoError> {
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(VideoError::InvalidOptions(format!(
                "fps is {}; use a positive number of frames per second, such as 1.0",
                self.fps
            )));
        }
        if self.max_frames < FRAME_FACTOR {
            return Err(VideoError::InvalidOptions(format!(
                "max_frames is {}; a video needs at least {FRAME_FACTOR} frames, use 2 or more",
                self.max_frames
            )));
        }
        Ok(())
    }
}

/// The frames of a video file the reference samples (decord's indices) and the file's rate,
/// which timestamps are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplePlan {
    /// Indices of the sampled frames among the file's frames in presentation order.
    pub indices: Vec<usize>,
    /// The file's frame rate (FFmpeg's `avg_frame_rate`).
    pub fps: f64,
}

impl SamplePlan {
    /// The sample of a file of `total_frames` frames at `video_fps` frames per second, as
    /// FFmpeg reports them, with the request's `sampling`.
    pub fn new(
        total_frames: usize,
        video_fps: f64,
        sampling: &VideoSampling,
    ) -> Result<Self, VideoError> {
        if total_frames == 0 {
            return Err(VideoError::NoFrames);
        }
        if !(video_fps.is_finite() && video_fps > 0.0) {
            return Err(VideoError::NoFrameRate {
                detail: format!("a rate of {video_fps} frames per second"),
            });
        }
        let n = sampled_frame_count(total_frames, video_fps, sampling)?;
        Ok(Self {
            indices: sample_indices(total_frames, n),
            fps: video_fps,
        })
    }

    /// The time of each sampled frame in seconds (`index / fps`), as the reference stamps it.
    pub fn times(&self) -> Vec<f64> {
        self.indices.iter().map(|&i| i as f64 / self.fps).collect()
    }
}

/// `floor2` in floating point: no integer to wrap, whatever `x` is (a `max_frames` of
/// 2^64 − 1 included).
fn floor_even(x: f64) -> f64 {
    (x / FRAME_FACTOR as f64).floor() * FRAME_FACTOR as f64
}

/// `smart_nframes`: `floor2(min(max(total / video_fps * fps, 4), floor2(max_frames), total))`.
pub fn sampled_frame_count(
    total_frames: usize,
    video_fps: f64,
    sampling: &VideoSampling,
) -> Result<usize, VideoError> {
    sampling.validate()?;
    let wanted = total_frames as f64 / video_fps * sampling.fps;
    let max_frames = floor_even(sampling.max_frames as f64);
    // At most `total_frames`, so the cast back is exact.
    let n = floor_even(
        wanted
            .max(MIN_FRAMES as f64)
            .min(max_frames)
            .min(total_frames as f64),
    ) as usize;
    if n < FRAME_FACTOR {
        return Err(VideoError::TooFewFrames { total_frames });
    }
    Ok(n)
}

/// `torch.linspace(0, total - 1, n).round()`: float32 as torch computes it (the first half
/// counted up from the start, the second half down from the end), rounded half to even.
pub fn sample_indices(total_frames: usize, n: usize) -> Vec<usize> {
    if n == 1 {
        return vec![0];
    }
    let (start, end) = (0f32, (total_frames - 1) as f32);
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            let x = if i < halfway {
                start + step * i as f32
            } else {
                end - step * (n - i - 1) as f32
            };
            x.round_ties_even() as usize
        })
        .collect()
}

/// The reranker's `sample_frames` for frame lists: `np.linspace(0, n - 1, max_frames, dtype=int)`
/// (truncated toward zero) when there are more than `max_frames` frames.
/// With `max_frames` 0 no frame is kept ([`sample_frame_list`] refuses that with the cause).
pub fn frame_list_indices(frames: usize, max_frames: usize) -> Vec<usize> {
    if frames <= max_frames {
        return (0..frames).collect();
    }
    if max_frames <= 1 {
        return vec![0; max_frames];
    }
    let step = (frames - 1) as f64 / (max_frames - 1) as f64;
    (0..max_frames)
        .map(|i| {
            if i == max_frames - 1 {
                frames - 1
            } else {
                (i as f64 * step) as usize
            }
        })
        .collect()
}

/// [`frame_list_indices`] of a list of `frames` frames, refusing what would leave no frame:
/// an empty list, or `max_frames` 0, each named as the cause.
pub fn sample_frame_list(frames: usize, max_frames: usize) -> Result<Vec<usize>, VideoError> {
    if frames == 0 {
        return Err(VideoError::InvalidOptions(
            "the frame list is empty; pass at least one frame".into(),
        ));
    }
    if max_frames == 0 {
        return Err(VideoError::InvalidOptions(format!(
            "max_frames is 0, so none of the list's {frames} frames would be kept; use 1 or more \
             (or leave it out for the default, 64)"
        )));
    }
    Ok(frame_list_indices(frames, max_frames))
}

/// Refuses frames of `width`×`height` above `limit` pixels (the image limit,
/// `ImageOptions::max_decoded_pixels`), read from a header before any frame is decoded.
pub fn check_frame_pixels(width: u32, height: u32, limit: u64) -> Result<(), VideoError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limit {
        return Err(VideoError::FrameTooLarge {
            width,
            height,
            pixels,
            limit,
        });
    }
    Ok(())
}

/// `(height, width)` every frame is resized to: the per-frame budget
/// `max(min(768·32², total_pixels / n · 2), int(128·32² · 1.05))`, then `smart_resize` (factor 32).
pub fn frame_size(
    height: u32,
    width: u32,
    frames: usize,
    total_pixels: f64,
) -> Result<(u32, u32), VideoError> {
    let budget = (total_pixels / frames as f64 * FRAME_FACTOR as f64).min(FRAME_MAX_PIXELS as f64);
    let floor = (FRAME_MIN_PIXELS as f64 * 1.05) as u64;
    let max_pixels = budget.max(floor as f64);
    // smart_resize compares against max_pixels as a float; flooring it to an integer changes
    // nothing, since h*w is an integer.
    smart_resize(
        height,
        width,
        32,
        FRAME_MIN_PIXELS,
        max_pixels.floor() as u64,
    )
    .map_err(VideoError::Frame)
}

/// The video tokens of a file's sample of `frames` frames decoded at `height`×`width`, resized
/// by [`frame_size`]: known before any frame is decoded. Each pair of frames gives one token per
/// 32×32 pixels.
pub fn sample_tokens(height: u32, width: u32, frames: usize) -> Result<usize, VideoError> {
    tokens_at(height, width, frames, FILE_TOTAL_PIXELS)
}

fn tokens_at(
    height: u32,
    width: u32,
    frames: usize,
    total_pixels: f64,
) -> Result<usize, VideoError> {
    let (h, w) = frame_size(height, width, frames, total_pixels)?;
    // Saturating: a count past usize is over every limit anyway, and is reported as such.
    Ok(frames
        .div_ceil(FRAME_FACTOR)
        .saturating_mul(h as usize / 32)
        .saturating_mul(w as usize / 32))
}

/// Refuses a file's sample of more than `limit` tokens, naming the numbers.
pub fn check_sample_tokens(
    height: u32,
    width: u32,
    frames: usize,
    limit: usize,
) -> Result<(), VideoError> {
    check_tokens(height, width, frames, FILE_TOTAL_PIXELS, limit)
}

/// Refuses `frames` frames of `height`×`width`, resized to share `total_pixels`, that give
/// more than `limit` tokens.
pub(super) fn check_tokens(
    height: u32,
    width: u32,
    frames: usize,
    total_pixels: f64,
    limit: usize,
) -> Result<(), VideoError> {
    let tokens = tokens_at(height, width, frames, total_pixels)?;
    if tokens > limit {
        return Err(VideoError::TooManyTokens {
            frames,
            width,
            height,
            tokens,
            limit,
        });
    }
    Ok(())
}

/// The processor's `_calculate_timestamps`: indices padded to even with the last one, each
/// `idx / fps`, then the mean of the first and last frame of every group.
pub fn group_timestamps(indices: &[usize], fps: f64) -> Vec<f64> {
    let mut padded = indices.to_vec();
    if let Some(&last) = indices.last() {
        while !padded.len().is_multiple_of(FRAME_FACTOR) {
            padded.push(last);
        }
    }
    padded
        .chunks(FRAME_FACTOR)
        .map(|g| (g[0] as f64 / fps + g[FRAME_FACTOR - 1] as f64 / fps) / 2.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_follows_smart_nframes() {
        let s = VideoSampling::default();
        // 300 frames at 30 fps, 1 fps: 10 frames.
        assert_eq!(sampled_frame_count(300, 30.0, &s).unwrap(), 10);
        // A 1-second clip still gets the 4-frame minimum.
        assert_eq!(sampled_frame_count(24, 24.0, &s).unwrap(), 4);
        // A 3-minute clip is capped at max_frames.
        assert_eq!(sampled_frame_count(1800, 10.0, &s).unwrap(), 64);
        // Odd max_frames rounds down to even.
        let odd = VideoSampling {
            fps: 2.0,
            max_frames: 9,
        };
        assert_eq!(sampled_frame_count(150, 30.0, &odd).unwrap(), 8);
        // max_frames at usize::MAX is no cap (it once wrapped to 0: "at least 2 frames").
        let unbounded = VideoSampling {
            fps: 1.0,
            max_frames: usize::MAX,
        };
        assert_eq!(sampled_frame_count(1800, 10.0, &unbounded).unwrap(), 180);
        assert_eq!(sampled_frame_count(24, 24.0, &unbounded).unwrap(), 4);
        // Three frames: fewer than 4, rounded down to 2.
        assert_eq!(sampled_frame_count(3, 30.0, &s).unwrap(), 2);
        assert!(matches!(
            sampled_frame_count(1, 30.0, &s),
            Err(VideoError::TooFewFrames { total_frames: 1 })
        ));
    }

    #[test]
    fn indices_match_the_spec_example() {
        // Spec §4.4: 300 frames, 10 samples.
        assert_eq!(
            sample_indices(300, 10),
            [0, 33, 66, 100, 133, 166, 199, 233, 266, 299]
        );
        let ts = group_timestamps(&sample_indices(300, 10), 30.0);
        let text: Vec<String> = ts.iter().map(|t| format!("{t:.1}")).collect();
        assert_eq!(text, ["0.6", "2.8", "5.0", "7.2", "9.4"]);
    }

    #[test]
    fn frame_lists_are_sampled_with_truncation_and_stamped_at_two_fps() {
        assert_eq!(frame_list_indices(5, 64), [0, 1, 2, 3, 4]);
        let idx = frame_list_indices(70, 64);
        assert_eq!(idx.len(), 64);
        assert_eq!((idx[0], idx[1], idx[63]), (0, 1, 69));
        // np.linspace(0, 69, 64, dtype=int)[32] = int(32 * 69 / 63) = 35.
        assert_eq!(idx[32], 35);
        assert_eq!(frame_list_indices(5, 0), Vec::<usize>::new());
        assert_eq!(frame_list_indices(5, 1), [0]);
        assert_eq!(sample_frame_list(5, usize::MAX).unwrap(), [0, 1, 2, 3, 4]);
        let err = sample_frame_list(5, 0).unwrap_err().to_string();
        assert!(
            err.contains("max_frames is 0") && err.contains("5 frames"),
            "{err}"
        );
        let ts = group_timestamps(&[0, 1, 2, 3, 4, 5], FRAME_LIST_FPS);
        let text: Vec<String> = ts.iter().map(|t| format!("{t:.1}")).collect();
        assert_eq!(text, ["0.2", "1.2", "2.2"]);
    }

    #[test]
    fn sample_tokens_count_pairs_of_resized_frames() {
        // 64 frames of 1080p: 640x1152 each, 32 pairs of 20x36 tokens (spec §4.2: 23,040).
        assert_eq!(sample_tokens(1080, 1920, 64).unwrap(), 23_040);
        let err = check_sample_tokens(64, 64, 36_000, 32_768).unwrap_err();
        assert!(
            matches!(err, VideoError::TooManyTokens { frames: 36_000, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("max_frames"));
    }

    #[test]
    fn frame_size_follows_the_budget() {
        // Spec §4.2: a 1080p file with 64 frames becomes 640x1152 per frame.
        assert_eq!(
            frame_size(1080, 1920, 64, FILE_TOTAL_PIXELS).unwrap(),
            (640, 1152)
        );
        // ...and a 64-frame 1080p frame list 352x640.
        assert_eq!(
            frame_size(1080, 1920, 64, FRAME_LIST_TOTAL_PIXELS).unwrap(),
            (352, 640)
        );
    }
}
