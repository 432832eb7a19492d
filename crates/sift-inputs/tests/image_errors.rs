//! Every user-caused failure is a typed error whose message names the cause and the fix.

use std::path::Path;
use std::time::{Duration, Instant};

use sift_inputs::{
    ImageError, ImageOptions, ProcessorConfig, RgbImage, load_image, load_image_path,
    preprocess_image,
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name)
}

fn opts() -> ImageOptions {
    ImageOptions::default()
}

/// A PNG with only the signature, an IHDR for `w`x`h` RGB 8-bit, a tiny IDAT and IEND.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[test]
fn empty_input() {
    let e = load_image(&[], &opts()).unwrap_err();
    assert!(matches!(e, ImageError::Empty), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("empty (0 bytes)") && msg.contains("pass the complete bytes"),
        "{msg}"
    );
}

#[test]
fn corrupt_and_truncated_data() {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(b"this is not a PNG chunk stream at all");
    let e = load_image(&bytes, &opts()).unwrap_err();
    assert!(
        matches!(e, ImageError::Corrupt { format: "PNG", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("re-export or re-download"), "{e}");

    let full = std::fs::read(fixture("chelsea.png")).unwrap();
    let e = load_image(&full[..full.len() / 2], &opts()).unwrap_err();
    assert!(
        matches!(e, ImageError::Corrupt { format: "PNG", .. }),
        "{e:?}"
    );

    let gif = std::fs::read(fixture("anim.gif")).unwrap();
    let e = load_image(&gif[..40], &opts()).unwrap_err();
    assert!(
        matches!(e, ImageError::Corrupt { format: "GIF", .. }),
        "{e:?}"
    );

    let jpeg = std::fs::read(fixture("rocket.jpg")).unwrap();
    let e = load_image(&jpeg[..jpeg.len() / 2], &opts()).unwrap_err();
    assert!(
        matches!(e, ImageError::Corrupt { format: "JPEG", .. }),
        "{e:?}"
    );

    let e = load_image(b"\xff\xd8\xff\xdb\x00\x04garbage", &opts()).unwrap_err();
    assert!(
        matches!(e, ImageError::Corrupt { format: "JPEG", .. }),
        "{e:?}"
    );
}

#[test]
fn unsupported_formats() {
    let e = load_image(b"<html>not an image</html>", &opts()).unwrap_err();
    assert!(matches!(e, ImageError::UnsupportedFormat { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("3c 68 74 6d") && msg.contains("convert the image to PNG, JPEG"),
        "{msg}"
    );

    // A valid PPM: a format the `image` crate knows but the reranker path does not accept.
    let e = load_image(b"P6\n1 1\n255\n\x00\x00\x00", &opts()).unwrap_err();
    match &e {
        ImageError::UnsupportedFormat { found } => assert_eq!(found, "Pnm"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_path_and_bad_file_name_the_path() {
    let e = load_image_path(Path::new("/no/such/dir/cat.png"), &opts()).unwrap_err();
    assert!(matches!(e, ImageError::Io { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("/no/such/dir/cat.png") && msg.contains("check that the path exists"),
        "{msg}"
    );

    let dir = std::env::temp_dir().join(format!("sift-inputs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("empty.jpg");
    std::fs::write(&bad, b"").unwrap();
    let e = load_image_path(&bad, &opts()).unwrap_err();
    assert!(matches!(e.cause(), ImageError::Empty), "{e:?}");
    assert!(
        e.to_string().contains("empty.jpg") && e.to_string().contains("0 bytes"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn aspect_ratio_over_200_is_refused() {
    let proc = ProcessorConfig::default();
    for (w, h) in [(1u32, 1000u32), (201, 1), (1000, 4)] {
        let img = RgbImage::new(w, h);
        // Through the whole path: decoding is fine, smart_resize refuses.
        let decoded = load_image(&encode_png(&img), &opts()).unwrap();
        let e = preprocess_image(&decoded, &opts(), &proc).unwrap_err();
        match &e {
            ImageError::AspectRatio {
                width, height, max, ..
            } => {
                assert_eq!((*width, *height, *max), (u64::from(w), u64::from(h), 200));
            }
            other => panic!("{w}x{h}: {other:?}"),
        }
        assert!(e.to_string().contains("crop or pad the image"), "{e}");
    }
    // Exactly 200:1 is allowed (the reference raises only above 200): 1x200 -> 32x192.
    let v = preprocess_image(&RgbImage::new(200, 1), &opts(), &proc).unwrap();
    assert_eq!(v.grid_thw, [1, 2, 12]);
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let start = Instant::now();
    let e = load_image(&png_header(30_000, 30_000), &opts()).unwrap_err();
    match &e {
        ImageError::TooLarge {
            width,
            height,
            pixels,
            limit,
        } => {
            assert_eq!(
                (*width, *height, *pixels, *limit),
                (30_000, 30_000, 900_000_000, 50_000_000)
            );
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("downscale the image") && msg.contains("max_decoded_pixels"),
        "{msg}"
    );

    // GIF logical screen 65535x65535.
    let mut gif = b"GIF89a\xff\xff\xff\xff\x00\x00\x00".to_vec();
    gif.extend_from_slice(b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;");
    let e = load_image(&gif, &opts()).unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::TooLarge {
                width: 65535,
                height: 65535,
                ..
            }
        ),
        "{e:?}"
    );

    // BMP header declaring 20000x20000 (24-bit), no pixel data.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0u8; 8]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&20_000i32.to_le_bytes());
    bmp.extend_from_slice(&20_000i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0u8; 24]);
    let e = load_image(&bmp, &opts()).unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::TooLarge {
                width: 20_000,
                height: 20_000,
                ..
            }
        ),
        "{e:?}"
    );

    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn pixel_limit_is_configurable() {
    let bytes = std::fs::read(fixture("chelsea.png")).unwrap();
    let small = ImageOptions {
        max_decoded_pixels: 451 * 300 - 1,
        ..ImageOptions::default()
    };
    let e = load_image(&bytes, &small).unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::TooLarge {
                pixels: 135_300,
                limit: 135_299,
                ..
            }
        ),
        "{e:?}"
    );
    let exact = ImageOptions {
        max_decoded_pixels: 451 * 300,
        ..ImageOptions::default()
    };
    assert_eq!(load_image(&bytes, &exact).unwrap().dimensions(), (451, 300));
}

#[test]
fn inconsistent_options() {
    let img = RgbImage::new(64, 64);
    let bad = ImageOptions {
        min_pixels: 10_000,
        max_pixels: 5_000,
        ..ImageOptions::default()
    };
    let e = preprocess_image(&img, &bad, &ProcessorConfig::default()).unwrap_err();
    assert!(matches!(e, ImageError::InvalidOptions(_)), "{e:?}");
    assert!(
        e.to_string().contains("set min_pixels <= max_pixels"),
        "{e}"
    );
}
