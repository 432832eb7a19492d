//! The pure-Rust container probe against what decord (FFmpeg) reports: the golden clips of
//! tests/golden/video (made by tests/golden/make_video_golden.py with decord 0.6.0), the bad
//! files, truncated and damaged copies (errors, never panics), and, where an `ffmpeg` binary is
//! installed, clips encoded at test time in the shapes that exercise FFmpeg's corner cases
//! (edit lists, B-frames, fragments, Matroska without DefaultDuration), compared with ffprobe.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use sift_inputs::video::{ContainerInfo, VideoError, probe_container};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/video")
}

fn probe_bytes(bytes: &[u8]) -> Result<ContainerInfo, VideoError> {
    probe_container(Cursor::new(bytes))
}

fn probe_path(path: &Path) -> Result<ContainerInfo, VideoError> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    probe_container(file)
}

/// Every case of the golden set whose source is a file: (case, expected.json).
fn file_cases() -> Vec<(String, Value)> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("expected.json")) else {
            continue;
        };
        let expected: Value = serde_json::from_str(&text).unwrap();
        if expected["kind"] == "file" {
            cases.push((
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                expected,
            ));
        }
    }
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        cases.len() >= 7,
        "golden file cases missing: {}",
        cases.len()
    );
    cases
}

#[test]
fn golden_clips_match_decord() {
    for (case, expected) in file_cases() {
        let source = expected["source"].as_str().unwrap();
        let info = probe_path(&golden_dir().join(source))
            .unwrap_or_else(|e| panic!("{case} ({source}): {e}"));
        println!(
            "{case}: {} frames at {} fps, {}x{} {}",
            info.frame_times.len(),
            info.fps,
            info.width,
            info.height,
            info.codec
        );
        assert_eq!(
            info.frame_times.len() as u64,
            expected["total_frames"].as_u64().unwrap(),
            "{case}: total_frames"
        );
        assert_eq!(
            info.fps,
            expected["video_fps"].as_f64().unwrap(),
            "{case}: video_fps"
        );
        assert_eq!(
            u64::from(info.width),
            expected["input_width"].as_u64().unwrap(),
            "{case}: width"
        );
        assert_eq!(
            u64::from(info.height),
            expected["input_height"].as_u64().unwrap(),
            "{case}: height"
        );
        assert!(
            info.frame_times.windows(2).all(|w| w[0] <= w[1]),
            "{case}: frame times are sorted"
        );
    }
}

#[test]
fn codecs_are_named() {
    let clips = golden_dir().join("clips");
    assert_eq!(probe_path(&clips.join("h264.mp4")).unwrap().codec, "h264");
    assert_eq!(probe_path(&clips.join("vp9.webm")).unwrap().codec, "vp9");
}

/// The H.264 clip has B-frames: its edit list starts the media 2 frames in (1024 ticks of
/// 1/15360 s), so presentation times come out as exactly i/30 s.
#[test]
fn b_frame_clip_times_start_at_zero_and_increase() {
    let info = probe_path(&golden_dir().join("clips/h264.mp4")).unwrap();
    assert_eq!(info.frame_times[0], 0.0);
    assert!(info.frame_times.windows(2).all(|w| w[0] < w[1]));
    for (i, &t) in info.frame_times.iter().enumerate() {
        assert_eq!(t, i as f64 / 30.0, "frame {i}");
    }
}

/// The NTSC clip: 240 frames of 1001/30000 s, starting at 0 after its edit list.
#[test]
fn ntsc_clip_times() {
    let info = probe_path(&golden_dir().join("clips/ntsc.mp4")).unwrap();
    assert_eq!(info.fps, 30000.0 / 1001.0);
    for (i, &t) in info.frame_times.iter().enumerate() {
        assert_eq!(t, (i as f64 * 1001.0) / 30000.0, "frame {i}");
    }
}

/// The WebM clip: blocks every 40 ms.
#[test]
fn webm_times_are_block_timestamps() {
    let info = probe_path(&golden_dir().join("clips/vp9.webm")).unwrap();
    for (i, &t) in info.frame_times.iter().enumerate() {
        assert_eq!(t, (i as f64 * 40.0) / 1000.0, "frame {i}");
    }
}

/// Replaces the first DefaultDuration element (ID 23 E3 83, 4-byte value) with a Void element of
/// the same length, as a muxer that writes none (e.g. a browser's MediaRecorder) would leave it.
fn strip_default_duration(webm: &[u8]) -> Vec<u8> {
    let mut bytes = webm.to_vec();
    let at = bytes
        .windows(4)
        .position(|w| w == [0x23, 0xE3, 0x83, 0x84])
        .expect("a DefaultDuration element");
    bytes[at..at + 8].copy_from_slice(&[0xEC, 0x86, 0, 0, 0, 0, 0, 0]);
    bytes
}

/// Without DefaultDuration FFmpeg estimates the rate from the first packets' timestamps
/// (`avformat_find_stream_info`); ffprobe 5.1 reports 25/1 for this file.
#[test]
fn webm_without_default_duration_estimates_the_rate() {
    let webm = std::fs::read(golden_dir().join("clips/vp9.webm")).unwrap();
    let info = probe_bytes(&strip_default_duration(&webm)).unwrap();
    assert_eq!(info.frame_times.len(), 150);
    assert_eq!(info.fps, 25.0);
}

fn bad(name: &str) -> PathBuf {
    golden_dir().join("bad").join(name)
}

#[test]
fn audio_only_file_has_no_video_stream() {
    let err = probe_path(&bad("audio_only.m4a")).unwrap_err();
    assert!(matches!(err, VideoError::NoVideoStream), "{err}");
}

#[test]
fn text_and_corrupt_files_are_unreadable() {
    for name in ["not_a_video.mp4", "corrupt.mp4", "unsupported_codec.avi"] {
        let err = probe_path(&bad(name)).unwrap_err();
        println!("{name}: {err}");
        assert!(
            matches!(err, VideoError::Unreadable { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn zero_frame_file_has_no_frames() {
    let err = probe_path(&bad("zero_frames.mp4")).unwrap_err();
    assert!(matches!(err, VideoError::NoFrames), "{err}");
}

#[test]
fn empty_and_tiny_inputs_are_errors() {
    for bytes in [&b""[..], b"\0", b"\0\0\0\x08ftyp", b"\x1a\x45\xdf\xa3"] {
        assert!(probe_bytes(bytes).is_err(), "{bytes:?}");
    }
}

/// A 10-hour clip (36000 frames at 1 fps) is indexed from its `moov` alone, quickly.
#[test]
fn ten_hour_clip_is_quick() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(bad("ten_hours.json")).unwrap()).unwrap();
    let start = Instant::now();
    let info = probe_path(&bad("ten_hours.mp4")).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(
        info.frame_times.len() as u64,
        expected["total_frames"].as_u64().unwrap()
    );
    assert_eq!(info.fps, expected["video_fps"].as_f64().unwrap());
    assert_eq!(*info.frame_times.last().unwrap(), 35999.0);
    assert!(elapsed.as_secs_f64() < 2.0, "took {elapsed:?}");
}

fn all_clips() -> Vec<(String, Vec<u8>)> {
    let mut clips: Vec<(String, Vec<u8>)> = std::fs::read_dir(golden_dir().join("clips"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    clips.sort();
    clips
}

/// Every prefix length in a coarse sweep (every length in the first 600 bytes and in the last
/// 3000, where an MP4 written by FFmpeg keeps its `moov`, and ~150 in between) gives an answer
/// or an error, never a panic.
#[test]
fn truncated_copies_never_panic() {
    for (name, bytes) in all_clips() {
        let n = bytes.len();
        let step = (n / 150).max(1);
        let lengths = (0..600.min(n))
            .chain((600..n).step_by(step))
            .chain(n.saturating_sub(3000).max(600)..n);
        let mut answered = 0;
        for len in lengths {
            if probe_bytes(&bytes[..len]).is_ok() {
                answered += 1;
            }
        }
        println!("{name}: {answered} prefixes probed without error");
    }
}

/// Deterministic damage (1 to 4 bytes overwritten, mostly in the headers) gives an answer or
/// an error, never a panic or a hang.
#[test]
fn damaged_copies_never_panic() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, bytes) in all_clips() {
        // The headers: the first 4 KiB and, for an MP4 whose moov is at the end, the last 4 KiB.
        let regions = [
            (0, bytes.len().min(4096)),
            (bytes.len().saturating_sub(4096), bytes.len()),
        ];
        let start = Instant::now();
        for round in 0..400 {
            let mut damaged = bytes.clone();
            let (lo, hi) = regions[round % 2];
            for _ in 0..1 + next() % 4 {
                let at = lo + (next() as usize) % (hi - lo);
                damaged[at] = match next() % 3 {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => next() as u8,
                };
            }
            let _ = probe_bytes(&damaged);
        }
        println!("{name}: 400 damaged copies in {:?}", start.elapsed());
    }
}

/// A box or element that claims far more entries than the file holds is refused without
/// allocating for the claim.
#[test]
fn huge_claims_are_bounded() {
    // An MP4 whose stsz says 2^32-1 samples of 1 byte each, in a tiny file.
    let mut mp4 = std::fs::read(golden_dir().join("clips/one_second.mp4")).unwrap();
    let stsz = mp4.windows(4).position(|w| w == b"stsz").unwrap();
    // version/flags, then sample_size = 1 and sample_count = u32::MAX.
    mp4[stsz + 8..stsz + 12].copy_from_slice(&1u32.to_be_bytes());
    mp4[stsz + 12..stsz + 16].copy_from_slice(&u32::MAX.to_be_bytes());
    let stsc = mp4.windows(4).position(|w| w == b"stsc").unwrap();
    mp4[stsc + 16..stsc + 20].copy_from_slice(&u32::MAX.to_be_bytes());
    let start = Instant::now();
    let result = probe_bytes(&mp4);
    println!(
        "huge stsz: {:?} in {:?}",
        result.as_ref().map(|i| i.frame_times.len()),
        start.elapsed()
    );
    assert!(start.elapsed().as_secs_f64() < 5.0);
    if let Ok(info) = result {
        assert!(info.frame_times.len() <= mp4.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Clips encoded at test time, compared with ffprobe (skipped where ffmpeg is not installed).

fn have_ffmpeg() -> bool {
    let ok = |bin: &str| {
        Command::new(bin)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("ffmpeg") && ok("ffprobe")
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What ffprobe (FFmpeg's demuxer, as decord uses it) reports of the first video stream:
/// (packet count, avg_frame_rate, width, height, sorted pts times).
fn ffprobe(path: &Path) -> (usize, f64, u32, u32, Vec<f64>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=avg_frame_rate,time_base,width,height,nb_read_packets",
        ])
        .args(["-show_entries", "packet=pts", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}", path.display());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &v["streams"][0];
    let ratio = |s: &str| -> (f64, f64) {
        let (n, d) = s.split_once('/').unwrap();
        (n.parse().unwrap(), d.parse().unwrap())
    };
    let (num, den) = ratio(stream["avg_frame_rate"].as_str().unwrap());
    let (tb_num, tb_den) = ratio(stream["time_base"].as_str().unwrap());
    let mut pts: Vec<i64> = v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pts"].as_i64().unwrap_or(i64::MIN))
        .collect();
    pts.sort_unstable();
    let times = pts.iter().map(|&t| t as f64 * tb_num / tb_den).collect();
    (
        stream["nb_read_packets"].as_str().unwrap().parse().unwrap(),
        if den == 0.0 { f64::NAN } else { num / den },
        stream["width"].as_u64().unwrap() as u32,
        stream["height"].as_u64().unwrap() as u32,
        times,
    )
}

/// Encodings that exercise FFmpeg's corner cases, as (file, ffmpeg arguments before the output
/// path; `{..}` names an argument set below, split on spaces). `copy:FILE` re-muxes an earlier
/// file.
const ENCODED: &[(&str, &str)] = &[
    ("bframes.mp4", "{src30} {bframes}"),
    ("ntsc_bframes.mov", "{src2997} {bframes}"),
    (
        "hevc.mp4",
        "{src24} -c:v libx265 -x265-params log-level=error:bframes=4 -tag:v hvc1",
    ),
    ("vp9.mp4", "{src25} -c:v libvpx-vp9 -deadline realtime"),
    (
        "fragmented.mp4",
        "{src30} {bframes} -movflags frag_keyframe+empty_moov",
    ),
    (
        "dash.mp4",
        "{src30} {x264} -g 15 -movflags frag_keyframe+empty_moov+default_base_moof+global_sidx",
    ),
    (
        "with_audio.mp4",
        "{src25} {tone} {bframes} -c:a aac -shortest",
    ),
    (
        "vfr.mp4",
        "-f lavfi -i testsrc2=size=96x64:rate=30:duration=3,select='lt(mod(n\\,10)\\,7)' {x264} \
         -fps_mode passthrough",
    ),
    (
        "ms_timescale.mp4",
        "{src2997} {bframes} -video_track_timescale 1000",
    ),
    ("no_bframes.mp4", "{src30} {x264} -bf 0"),
    ("timecode.mov", "{src25} {x264} -timecode 01:00:00:00"),
    (
        "ntsc.webm",
        "{src2997} -c:v libvpx -deadline realtime -b:v 200k",
    ),
    ("bframes.mkv", "{src23976} {bframes}"),
    (
        "opus.webm",
        "{src30} {tone} -c:v libvpx-vp9 -deadline realtime -c:a libopus -shortest",
    ),
    (
        "low_fps.webm",
        "-f lavfi -i testsrc2=size=96x64:rate=2:duration=30 -c:v libvpx -deadline realtime",
    ),
    (
        "jitter.webm",
        "-f lavfi -i testsrc2=size=96x64:rate=30:duration=4,setpts=(N/30+0.006*random(1))/TB \
         -c:v libvpx -deadline realtime -fps_mode passthrough",
    ),
    // Edit lists that cut into the stream: a copy started between keyframes, one cut short,
    // and one that starts the video 0.5 s into the presentation (an empty edit).
    ("trimmed.mp4", "-ss 0.5 -i copy:bframes.mp4 -c copy"),
    ("cut.mp4", "-i copy:bframes.mp4 -t 1.3 -c copy"),
    ("offset.mp4", "-itsoffset 0.5 -i copy:bframes.mp4 -c copy"),
];

fn expand(args: &str, dir: &Path) -> Vec<String> {
    let sets: &[(&str, &str)] = &[
        (
            "{src30}",
            "-f lavfi -i testsrc2=size=96x64:rate=30:duration=3",
        ),
        (
            "{src25}",
            "-f lavfi -i testsrc2=size=96x64:rate=25:duration=3",
        ),
        (
            "{src24}",
            "-f lavfi -i testsrc2=size=96x64:rate=24:duration=2",
        ),
        (
            "{src2997}",
            "-f lavfi -i testsrc2=size=96x64:rate=30000/1001:duration=3",
        ),
        (
            "{src23976}",
            "-f lavfi -i testsrc2=size=96x64:rate=24000/1001:duration=3",
        ),
        ("{tone}", "-f lavfi -i sine=frequency=440:duration=3"),
        ("{x264}", "-c:v libx264 -preset ultrafast -pix_fmt yuv420p"),
        (
            "{bframes}",
            "-c:v libx264 -preset medium -bf 3 -g 12 -pix_fmt yuv420p",
        ),
    ];
    let mut out = Vec::new();
    for word in args.split_whitespace() {
        if let Some((_, set)) = sets.iter().find(|(name, _)| *name == word) {
            out.extend(set.split_whitespace().map(str::to_string));
        } else if let Some(file) = word.strip_prefix("copy:") {
            out.push(dir.join(file).to_string_lossy().into_owned());
        } else {
            out.push(word.to_string());
        }
    }
    out
}

#[test]
fn encoded_clips_match_ffprobe() {
    if !have_ffmpeg() {
        println!("ffmpeg/ffprobe not installed: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sift-container-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = Vec::new();
    for (name, args) in ENCODED {
        let mut args = expand(args, &dir);
        args.push(dir.join(name).to_string_lossy().into_owned());
        ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        names.push(name.to_string());
    }
    // Matroska files as a browser's MediaRecorder writes them: no DefaultDuration.
    for name in [
        "ntsc.webm",
        "bframes.mkv",
        "opus.webm",
        "low_fps.webm",
        "jitter.webm",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let stripped = format!("nodd_{name}");
        std::fs::write(dir.join(&stripped), strip_default_duration(&bytes)).unwrap();
        names.push(stripped);
    }
    let mut failures = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let (count, fps, width, height, times) = ffprobe(&path);
        let ours = probe_path(&path);
        let line = match &ours {
            Ok(info) => format!(
                "{name}: ffprobe {count} packets {fps} fps {width}x{height}; ours {} {} {}x{}",
                info.frame_times.len(),
                info.fps,
                info.width,
                info.height
            ),
            Err(e) => format!("{name}: ffprobe {count} packets {fps} fps; ours error {e}"),
        };
        println!("{line}");
        let Ok(info) = ours else {
            failures.push(line);
            continue;
        };
        let same_times = info.frame_times.len() == times.len()
            && info
                .frame_times
                .iter()
                .zip(&times)
                .all(|(a, b)| (a - b).abs() < 1e-9);
        if info.frame_times.len() != count
            || info.fps != fps
            || (info.width, info.height) != (width, height)
            || !same_times
        {
            let first: Vec<_> = info.frame_times.iter().take(6).collect();
            let theirs: Vec<_> = times.iter().take(6).collect();
            failures.push(format!("{line}; times {first:?} vs {theirs:?}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{failures:#?}");
}
