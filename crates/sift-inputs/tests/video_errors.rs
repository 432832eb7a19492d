//! Bad video files are named errors, returned quickly, never panics (tests/golden/video/bad,
//! described in its README.md). A 10-hour video is sampled by seeking, not decoded whole.
#![cfg(feature = "video")]

use std::path::{Path, PathBuf};
use std::time::Instant;

use sift_inputs::video::{VideoError, VideoSampling, read_video};

/// The pixel limit the library applies by default.
const PIXELS: u64 = sift_inputs::DEFAULT_MAX_DECODED_PIXELS;

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/video/bad")
        .join(name)
}

fn error_of(name: &str) -> VideoError {
    let err = read_video(&bad(name), &VideoSampling::default(), usize::MAX, PIXELS).unwrap_err();
    println!("{name}: {err}");
    err
}

#[test]
fn corrupt_file_is_unreadable() {
    assert!(matches!(
        error_of("corrupt.mp4"),
        VideoError::Unreadable { .. }
    ));
}

#[test]
fn text_file_named_mp4_is_unreadable() {
    assert!(matches!(
        error_of("not_a_video.mp4"),
        VideoError::Unreadable { .. }
    ));
}

#[test]
fn audio_only_file_has_no_video_stream() {
    assert!(matches!(
        error_of("audio_only.m4a"),
        VideoError::NoVideoStream
    ));
}

#[test]
fn video_stream_without_frames() {
    assert!(matches!(error_of("zero_frames.mp4"), VideoError::NoFrames));
}

#[test]
fn unknown_codec_is_named_with_its_fourcc() {
    let err = error_of("unsupported_codec.avi");
    assert!(matches!(err, VideoError::UnsupportedCodec { .. }));
    assert!(err.to_string().contains("ZZZZ"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let err = error_of("no_such_file.mp4");
    assert!(matches!(err, VideoError::Io { .. }));
    assert!(err.to_string().contains("no_such_file.mp4"));
}

#[test]
fn bad_sampling_options_are_refused() {
    let path = bad("ten_hours.mp4");
    for sampling in [
        VideoSampling {
            fps: 0.0,
            max_frames: 64,
        },
        VideoSampling {
            fps: f64::NAN,
            max_frames: 64,
        },
        VideoSampling {
            fps: 1.0,
            max_frames: 1,
        },
    ] {
        let err = read_video(&path, &sampling, usize::MAX, PIXELS).unwrap_err();
        assert!(matches!(err, VideoError::InvalidOptions(_)), "{err}");
    }
}

#[derive(serde::Deserialize)]
struct TenHours {
    frames_indices: Vec<usize>,
}

#[test]
fn ten_hour_video_is_sampled_like_the_reference_without_decoding_it_all() {
    let text = std::fs::read_to_string(bad("ten_hours.json")).unwrap();
    let expected: TenHours = serde_json::from_str(&text).unwrap();
    let start = Instant::now();
    let video = read_video(
        &bad("ten_hours.mp4"),
        &VideoSampling::default(),
        usize::MAX,
        PIXELS,
    )
    .unwrap();
    println!(
        "ten_hours.mp4: 64 of 36000 frames, {} decoded, in {:?}",
        video.decoded_frames,
        start.elapsed()
    );
    assert_eq!(video.indices, expected.frames_indices);
    assert_eq!(video.frames.len(), 64);
    // Keyframes every 300 frames: each sample decodes at most one group of pictures.
    assert!(
        video.decoded_frames <= 64 * 300,
        "decoded {}",
        video.decoded_frames
    );
}

/// Every one of 36,000 frames asked for: refused from the header, with the numbers, before a
/// frame is decoded (decoding them would need tens of gigabytes).
#[test]
fn a_sample_over_the_token_limit_is_refused_before_decoding() {
    let sampling = VideoSampling {
        fps: 1.0,
        max_frames: 100_000,
    };
    let err = read_video(&bad("ten_hours.mp4"), &sampling, 32_768, PIXELS).unwrap_err();
    assert!(
        matches!(err, VideoError::TooManyTokens { frames: 36_000, tokens, limit: 32_768, .. } if tokens > 32_768),
        "{err}"
    );
}
