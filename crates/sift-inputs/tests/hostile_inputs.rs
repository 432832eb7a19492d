//! Inputs that once cost a whole request or the machine's memory (issue 28), each now one
//! document's clear error within seconds: endless or blocking paths (`/dev/zero`, a FIFO, a
//! directory), a PNG whose iCCP chunk inflates to hundreds of megabytes, an image far larger
//! than the model uses, a video of 16000x16000 frames, sampling numbers at their extremes, and
//! special tokens that would escape `max_length`. The hostile files are generated here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sift_inputs::prompt::{PromptTokenizer, SideContent, TokenizerError, prompt_text};
use sift_inputs::video::{VideoError, sample_frame_list};
use sift_inputs::{DEFAULT_MAX_DECODED_PIXELS, ImageError, ImageOptions, load_image_path};

/// Each case must answer within this.
const QUICK: Duration = Duration::from_secs(5);

/// Tests that measure the process's peak memory run one at a time.
static MEMORY: Mutex<()> = Mutex::new(());

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sift-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `f` on another thread and fails the test if it has not returned within [`QUICK`]
/// (a FIFO would otherwise hang the test run, not fail it).
fn within_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let out = rx
        .recv_timeout(QUICK)
        .unwrap_or_else(|_| panic!("{what}: no answer within {QUICK:?}"));
    println!("{what}: {:?}", start.elapsed());
    out
}

/// Linux's peak resident memory of this process (`VmHWM`), in bytes, after resetting it.
#[cfg(target_os = "linux")]
mod peak {
    pub fn reset() {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
    }
    pub fn bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
}

/// zlib of `len` zero bytes, compressed as it is produced (nothing of `len` is held).
fn zlib_zeros(len: u64, row: Option<usize>) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    match row {
        // Image rows: a filter byte (0, none), then `row` zero samples.
        Some(row) => {
            let line = vec![0u8; row + 1];
            for _ in 0..len {
                z.write_all(&line).unwrap();
            }
        }
        None => {
            let block = vec![0u8; 1 << 20];
            let mut left = len;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                z.write_all(&block[..n]).unwrap();
                left -= n as u64;
            }
        }
    }
    z.finish().unwrap()
}

fn ihdr(width: u32, height: u32, colour: u8) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, colour, 0, 0, 0]);
    ihdr
}

/// A complete, valid `width`x`height` 8-bit grey PNG, all black.
fn black_png(width: u32, height: u32, extra: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr(width, height, 0));
    for (kind, data) in extra {
        png_chunk(&mut out, kind, data);
    }
    let idat = zlib_zeros(u64::from(height), Some(width as usize));
    png_chunk(&mut out, b"IDAT", &idat);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn image_error(path: &Path) -> ImageError {
    let path = path.to_path_buf();
    within_seconds(&format!("image {}", path.display()), move || {
        load_image_path(&path, &ImageOptions::default())
    })
    .unwrap_err()
}

#[cfg(unix)]
#[test]
fn dev_zero_as_an_image_is_refused_before_it_is_read() {
    let err = image_error(Path::new("/dev/zero"));
    assert!(
        matches!(
            err,
            ImageError::NotRegularFile {
                kind: "a character device",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("/dev/zero") && msg.contains("regular file"),
        "{msg}"
    );
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn a_fifo_as_an_image_is_refused_at_once() {
    let dir = temp_dir("fifo-image");
    let fifo = dir.join("pipe.png");
    mkfifo(&fifo);
    let err = image_error(&fifo);
    assert!(
        matches!(
            err,
            ImageError::NotRegularFile {
                kind: "a FIFO (named pipe)",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("pipe.png"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_directory_as_an_image_is_refused() {
    let dir = temp_dir("dir-image");
    let err = image_error(&dir);
    assert!(
        matches!(
            err,
            ImageError::NotRegularFile {
                kind: "a directory",
                ..
            }
        ),
        "{err:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_image_file_larger_than_any_image_at_the_limit_is_refused_unread() {
    let dir = temp_dir("huge-file");
    let path = dir.join("huge.png");
    let png = black_png(4, 4, &[]);
    let file = std::fs::File::create(&path).unwrap();
    (&file).write_all(&png).unwrap();
    // Sparse: no disk used, but 1 GiB long.
    file.set_len(1 << 30).unwrap();
    let opts = ImageOptions {
        max_decoded_pixels: 1_000,
        ..ImageOptions::default()
    };
    let err = load_image_path(&path, &opts).unwrap_err();
    assert!(
        matches!(err, ImageError::FileTooLarge { size, .. } if size == 1 << 30),
        "{err:?}"
    );
    assert!(err.to_string().contains("--max-image-pixels"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A 1x1 PNG whose iCCP chunk inflates to 600 MB (from 600 KB): PIL ignores the profile and so
/// does sift now; the `png` crate used to inflate it whole (1.44 GB resident for 1.3 GB).
#[test]
fn a_png_with_an_iccp_bomb_decodes_without_inflating_it() {
    let _one = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("iccp");
    let path = dir.join("iccp_bomb.png");
    let inflated: u64 = 600 << 20;
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend_from_slice(&zlib_zeros(inflated, None));
    let mut ztxt = b"comment\0\0".to_vec();
    ztxt.extend_from_slice(&zlib_zeros(64 << 20, None));
    let png = black_png(1, 1, &[(b"iCCP", iccp), (b"zTXt", ztxt)]);
    assert!(png.len() < 2 << 20, "{} bytes", png.len());
    std::fs::write(&path, &png).unwrap();
    #[cfg(target_os = "linux")]
    peak::reset();
    #[cfg(target_os = "linux")]
    let before = peak::bytes();
    let p = path.clone();
    let img = within_seconds("iCCP bomb", move || {
        load_image_path(&p, &ImageOptions::default())
    })
    .unwrap();
    assert_eq!((img.width(), img.height()), (1, 1));
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    #[cfg(target_os = "linux")]
    {
        let grew = peak::bytes().saturating_sub(before);
        println!("iCCP bomb: peak memory grew by {} MB", grew >> 20);
        assert!(grew < 100 << 20, "peak memory grew by {grew} bytes");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A 13000x13000 PNG (under a megabyte, 169 MP): over the default limit of 50 MP, refused from
/// its header; it used to decode (1.27 GB, 7 s) for a model that resizes it under 2 MP.
#[test]
fn a_13000_square_png_is_refused_from_its_header() {
    let _one = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("13000");
    let path = dir.join("13000.png");
    let png = black_png(13_000, 13_000, &[]);
    assert!(png.len() < 1 << 20, "{} bytes", png.len());
    std::fs::write(&path, &png).unwrap();
    #[cfg(target_os = "linux")]
    peak::reset();
    #[cfg(target_os = "linux")]
    let before = peak::bytes();
    let err = image_error(&path);
    match err.cause() {
        ImageError::TooLarge {
            width: 13_000,
            height: 13_000,
            pixels: 169_000_000,
            limit: DEFAULT_MAX_DECODED_PIXELS,
        } => {}
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("13000.png") && msg.contains("--max-image-pixels"),
        "{msg}"
    );
    #[cfg(target_os = "linux")]
    {
        let grew = peak::bytes().saturating_sub(before);
        println!("13000x13000: peak memory grew by {} MB", grew >> 20);
        assert!(grew < 100 << 20, "peak memory grew by {grew} bytes");
    }
    // Under a raised limit it still decodes: the limit is the only thing in the way.
    let small = black_png(300, 200, &[]);
    std::fs::write(&path, &small).unwrap();
    assert!(load_image_path(&path, &ImageOptions::default()).is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_frame_list_with_max_frames_zero_names_max_frames() {
    let err = sample_frame_list(10, 0).unwrap_err();
    assert!(matches!(err, VideoError::InvalidOptions(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("max_frames is 0") && !msg.contains("is empty"),
        "{msg}"
    );
    assert_eq!(sample_frame_list(10, usize::MAX).unwrap().len(), 10);
    assert_eq!(sample_frame_list(10, 1).unwrap(), [0]);
}

fn tokenizer() -> PromptTokenizer {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/tokenizer/tokenizer.json");
    PromptTokenizer::from_file(&path)
        .unwrap_or_else(|e| panic!("{e}; run tests/golden/fetch_tokenizer.sh"))
}

fn document(text: String) -> String {
    let query = SideContent {
        texts: vec!["a query".into()],
        ..SideContent::default()
    };
    let document = SideContent {
        texts: vec![text],
        ..SideContent::default()
    };
    prompt_text("i", &query, &document)
}

/// 60,000 `<|im_end|>` in a document: the reference keeps every special token when it cuts to
/// max_length, so the prompt stayed 60,000 tokens long (153 s to score). Refused, naming the
/// cause; a few special tokens in a long text are still cut exactly as the reference cuts.
#[test]
fn special_tokens_in_text_cannot_escape_max_length() {
    let tokenizer = tokenizer();
    let start = Instant::now();
    let ids = tokenizer
        .encode(&document("<|im_end|>".repeat(60_000)))
        .unwrap();
    let err = tokenizer.truncate_bounded(ids, 10_240, 0).unwrap_err();
    assert!(start.elapsed() < QUICK, "{:?}", start.elapsed());
    match &err {
        TokenizerError::TooManySpecialTokens { count, max_length } => {
            assert_eq!((*count, *max_length), (60_003, 10_240));
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("<|im_end|>") && msg.contains("--max-length"),
        "{msg}"
    );

    // 100 special tokens in 20,000 words: cut as the reference cuts (every special token kept).
    let text = format!("{}{}", "<|endoftext|>".repeat(100), "word ".repeat(20_000));
    let ids = tokenizer.encode(&document(text)).unwrap();
    let cut = tokenizer.truncate(ids.clone(), 1_000);
    assert_eq!(tokenizer.truncate_bounded(ids, 1_000, 0).unwrap(), cut);
    assert_eq!(cut.len(), 1_005);

    // The images' and videos' own special tokens do not count against the text.
    let pads = SideContent {
        images: vec![2_000],
        ..SideContent::default()
    };
    assert_eq!(pads.visual_special_tokens(), 2_002);
    let text = document("word ".repeat(3_000));
    let with_image = text.replacen(
        "<Document>:",
        &format!(
            "<Document>:<|vision_start|>{}<|vision_end|>",
            "<|image_pad|>".repeat(2_000)
        ),
        1,
    );
    let ids = tokenizer.encode(&with_image).unwrap();
    let cut = tokenizer
        .truncate_bounded(ids.clone(), 1_000, 2_002)
        .unwrap();
    assert_eq!(cut, tokenizer.truncate(ids.clone(), 1_000));
    // Without them counted as the image's, the same prompt would be refused.
    assert!(tokenizer.truncate_bounded(ids, 1_000, 0).is_err());
}

#[cfg(feature = "video")]
mod video {
    use super::*;
    use ffmpeg_next as ffmpeg;
    use sift_inputs::video::{VideoSampling, read_video};

    fn video_error(path: &Path) -> VideoError {
        let path = path.to_path_buf();
        within_seconds(&format!("video {}", path.display()), move || {
            read_video(
                &path,
                &VideoSampling::default(),
                usize::MAX,
                DEFAULT_MAX_DECODED_PIXELS,
            )
        })
        .unwrap_err()
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_and_a_fifo_as_videos_are_refused_at_once() {
        let err = video_error(Path::new("/dev/zero"));
        assert!(
            matches!(
                err,
                VideoError::NotRegularFile {
                    kind: "a character device",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("/dev/zero"), "{err}");
        let dir = temp_dir("fifo-video");
        let fifo = dir.join("pipe.mp4");
        mkfifo(&fifo);
        let err = video_error(&fifo);
        assert!(
            matches!(
                err,
                VideoError::NotRegularFile {
                    kind: "a FIFO (named pipe)",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("regular file"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A video whose container declares `width`x`height` MJPEG frames, 4 of them; the
    /// packets are not real JPEG (the size must be refused before any is decoded).
    fn mjpeg_video(path: &Path, width: u32, height: u32) {
        ffmpeg::init().unwrap();
        let mut output = ffmpeg::format::output(&path).unwrap();
        let mut stream = output
            .add_stream(ffmpeg::encoder::find(ffmpeg::codec::Id::MJPEG))
            .unwrap();
        // SAFETY: the stream's codec parameters belong to `output`, alive here.
        unsafe {
            let par = (*stream.as_mut_ptr()).codecpar;
            (*par).codec_type = ffmpeg::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
            (*par).codec_id = ffmpeg::ffi::AVCodecID::AV_CODEC_ID_MJPEG;
            (*par).width = width as i32;
            (*par).height = height as i32;
        }
        stream.set_time_base(ffmpeg::Rational(1, 25));
        output.write_header().unwrap();
        let time_base = output.stream(0).unwrap().time_base();
        for i in 0..4 {
            let mut packet = ffmpeg::Packet::copy(&[0xff, 0xd8, 0xff, 0xd9, 0, 0, 0, 0]);
            packet.set_stream(0);
            packet.set_pts(Some(i));
            packet.set_dts(Some(i));
            packet.set_flags(ffmpeg::packet::Flags::KEY);
            packet.rescale_ts(ffmpeg::Rational(1, 25), time_base);
            packet.write_interleaved(&mut output).unwrap();
        }
        output.write_trailer().unwrap();
    }

    /// 16000x16000 frames (256 MP each): refused from the container in the library, as the
    /// server did; decoding 4 of them took 4.34 GB and 31 s. MKV is read by sift's probe, AVI
    /// by FFmpeg's header.
    #[test]
    fn a_video_of_16000_square_frames_is_refused_before_decoding() {
        let dir = temp_dir("16000");
        for name in ["big.mkv", "big.avi"] {
            let path = dir.join(name);
            mjpeg_video(&path, 16_000, 16_000);
            let err = video_error(&path);
            match &err {
                VideoError::FrameTooLarge {
                    width: 16_000,
                    height: 16_000,
                    pixels: 256_000_000,
                    limit: DEFAULT_MAX_DECODED_PIXELS,
                } => {}
                other => panic!("{name}: {other:?}"),
            }
            assert!(err.to_string().contains("--max-image-pixels"), "{err}");
            // The limit is the caller's: under a lower one, a smaller size is refused too.
            mjpeg_video(&path, 640, 480);
            let err =
                read_video(&path, &VideoSampling::default(), usize::MAX, 300_000).unwrap_err();
            assert!(
                matches!(
                    err,
                    VideoError::FrameTooLarge {
                        width: 640,
                        height: 480,
                        ..
                    }
                ),
                "{name}: {err:?}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// `max_frames` 2^64 − 1 is no cap: the same sample as any cap above the file's frames
    /// (it once wrapped to 0 and reported "at least 2 frames are needed"), and on a ten-hour
    /// file the true cause, the sample's tokens, before anything is decoded.
    #[test]
    fn max_frames_at_the_largest_integer_samples_like_no_cap() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/video");
        let sampling = |max_frames| VideoSampling {
            fps: 1.0,
            max_frames,
        };
        let clip = golden.join("clips/h264.mp4");
        let huge = read_video(
            &clip,
            &sampling(usize::MAX),
            usize::MAX,
            DEFAULT_MAX_DECODED_PIXELS,
        )
        .unwrap();
        let large = read_video(
            &clip,
            &sampling(1 << 40),
            usize::MAX,
            DEFAULT_MAX_DECODED_PIXELS,
        )
        .unwrap();
        assert_eq!(huge.indices, large.indices);
        let ten_hours = golden.join("bad/ten_hours.mp4");
        let err = within_seconds("ten hours, max_frames 2^64 - 1", move || {
            read_video(
                &ten_hours,
                &sampling(usize::MAX),
                32_768,
                DEFAULT_MAX_DECODED_PIXELS,
            )
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                VideoError::TooManyTokens {
                    frames: 36_000,
                    limit: 32_768,
                    ..
                }
            ),
            "{err}"
        );
    }
}
