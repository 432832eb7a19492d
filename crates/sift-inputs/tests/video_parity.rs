//! Video inputs against the reference: qwen-vl-utils 0.0.14 `fetch_video` reading files with
//! decord 0.6.0, and the transformers 4.57.3 processor. Goldens in tests/golden/video, made by
//! tests/golden/make_video_golden.py: sampled indices, the source frame rate, the resized
//! frames (PNG), `video_grid_thw`, the layout of `pixel_values_videos` (row and column sums)
//! and the token ids of the expanded placeholder with its timestamps.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sift_inputs::prompt::PromptTokenizer;
use sift_inputs::video::{VideoFrames, frame_list_indices, video_from_frames};
use sift_inputs::{ImageOptions, ProcessorConfig, RgbImage, load_image_path};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/video")
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Source {
    File(String),
    Frames(Vec<String>),
}

#[derive(Deserialize)]
struct PixelSums {
    shape: [usize; 2],
    row_sums: Vec<f64>,
    col_sums: Vec<f64>,
}

#[derive(Deserialize)]
struct Expected {
    source: Source,
    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    fps: Option<f64>,
    max_frames: usize,
    video_fps: f64,
    frames_indices: Vec<usize>,
    resized_height: u32,
    resized_width: u32,
    video_grid_thw: [usize; 3],
    timestamps: Vec<String>,
    video_token_ids: Vec<u32>,
    pixel_values_videos: PixelSums,
    saved_frames: Vec<usize>,
}

fn expected(case: &str) -> Expected {
    let path = golden_dir().join(case).join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run tests/golden/make_video_golden.py",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The frames of a case, read the way sift reads them.
fn read(expected: &Expected) -> VideoFrames {
    let root = golden_dir();
    match &expected.source {
        Source::File(file) => read_file(&root.join(file), expected),
        Source::Frames(files) => {
            let indices = frame_list_indices(files.len(), expected.max_frames);
            let images = indices.iter().map(|&i| {
                Ok::<RgbImage, _>(
                    load_image_path(&root.join(&files[i]), &ImageOptions::default()).unwrap(),
                )
            });
            video_from_frames(indices.len(), images, usize::MAX).unwrap()
        }
    }
}

#[cfg(feature = "video")]
fn read_file(path: &Path, expected: &Expected) -> VideoFrames {
    let sampling = sift_inputs::video::VideoSampling {
        fps: expected.fps.expect("file cases name their fps"),
        max_frames: expected.max_frames,
    };
    sift_inputs::video::read_video(
        path,
        &sampling,
        usize::MAX,
        sift_inputs::DEFAULT_MAX_DECODED_PIXELS,
    )
    .unwrap()
}

#[cfg(not(feature = "video"))]
fn read_file(path: &Path, _: &Expected) -> VideoFrames {
    panic!("{} needs the `video` feature", path.display())
}

fn tokenizer() -> PromptTokenizer {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/tokenizer/tokenizer.json");
    PromptTokenizer::from_file(&path)
        .unwrap_or_else(|e| panic!("{e}; run tests/golden/fetch_tokenizer.sh"))
}

fn check(case: &str) {
    let expected = expected(case);
    let video = read(&expected);
    assert_eq!(
        video.indices, expected.frames_indices,
        "{case}: sampled frame indices"
    );
    assert_eq!(video.fps, expected.video_fps, "{case}: source frame rate");
    let size = (expected.resized_width, expected.resized_height);
    assert_eq!(
        video.frames[0].dimensions(),
        size,
        "{case}: resized frame size"
    );

    // Pixels: at most one grey level from torchvision's resize of decord's frames.
    let (mut worst, mut differing) = (0u8, 0usize);
    for &k in &expected.saved_frames {
        let path = golden_dir().join(case).join(format!("frame_{k:03}.png"));
        let reference = image::open(&path).unwrap().into_rgb8();
        for (a, b) in video.frames[k].as_raw().iter().zip(reference.as_raw()) {
            let d = a.abs_diff(*b);
            worst = worst.max(d);
            differing += usize::from(d > 0);
        }
    }
    println!(
        "{case}: {} frames, indices {:?}, max pixel difference {worst} ({differing} values differ)",
        video.frames.len(),
        &video.indices[..video.indices.len().min(6)]
    );
    assert!(worst <= 1, "{case}: a frame differs by {worst} grey levels");

    let prepared = video.prepare(&ProcessorConfig::default()).unwrap();
    assert_eq!(
        prepared.input.grid_thw, expected.video_grid_thw,
        "{case}: video_grid_thw"
    );
    let [rows, cols] = expected.pixel_values_videos.shape;
    assert_eq!(
        prepared.input.pixel_values.len(),
        rows * cols,
        "{case}: pixel_values_videos size"
    );
    // Sums over 1536 values (rows) or thousands (columns): a one-level pixel difference moves a
    // value by 2/255, so the bound scales with the count of differing values.
    let tolerance = 1e-3 + differing as f64 * 2.0 / 255.0;
    let values = &prepared.input.pixel_values;
    for (r, want) in expected.pixel_values_videos.row_sums.iter().enumerate() {
        let got: f64 = values[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| f64::from(v))
            .sum();
        assert!(
            (got - want).abs() <= tolerance,
            "{case}: row {r} sums to {got}, not {want}"
        );
    }
    for (c, want) in expected.pixel_values_videos.col_sums.iter().enumerate() {
        let got: f64 = (0..rows).map(|r| f64::from(values[r * cols + c])).sum();
        assert!(
            (got - want).abs() <= tolerance,
            "{case}: column {c} sums to {got}, not {want}"
        );
    }

    let text = prepared.placeholder.text();
    let stamps: Vec<&str> = text
        .match_indices("seconds>")
        .map(|(i, _)| {
            let start = text[..i].rfind('<').unwrap();
            &text[start..i + "seconds>".len()]
        })
        .collect();
    assert_eq!(stamps, expected.timestamps, "{case}: timestamps");
    let ids = tokenizer().encode(&text).unwrap();
    assert_eq!(
        ids, expected.video_token_ids,
        "{case}: token ids of the video placeholder"
    );
}

#[test]
fn frame_list_of_five_pngs_is_padded_to_six() {
    check("frames_png5");
}

#[test]
fn frame_list_of_seventy_jpegs_is_sampled_to_sixty_four() {
    check("frames_jpg70");
}

#[cfg(feature = "video")]
mod files {
    use super::check;

    #[test]
    fn h264_mp4_with_b_frames() {
        check("h264");
    }

    #[test]
    fn h264_mp4_sampled_at_two_fps_up_to_eight_frames() {
        check("h264_fps2_max8");
    }

    #[test]
    fn vp9_webm() {
        check("vp9");
    }

    #[test]
    fn ntsc_frame_rate() {
        check("ntsc");
    }

    #[test]
    fn one_second_clip_gets_four_frames() {
        check("one_second");
    }

    #[test]
    fn three_minute_clip_is_capped_at_max_frames() {
        check("three_minutes");
    }

    #[test]
    fn portrait_clip() {
        check("portrait");
    }
}
