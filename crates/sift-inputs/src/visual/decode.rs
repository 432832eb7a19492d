//! Decoding to 8-bit RGB exactly as the reference does: PIL `Image.open`, then qwen-vl-utils
//! `to_rgb` (mode "RGBA" is pasted onto white through its alpha; every other mode goes through
//! `convert("RGB")`, which drops alpha). EXIF orientation is not applied.
//!
//! PNG and GIF go to the `png` and `gif` crates (the decoders `image` itself uses) because PIL's
//! result depends on what `image` hides: the PNG colour type (a palette with tRNS is mode "P",
//! not "RGBA") and GIF palette indices under transparency. JPEG goes to `libjpeg-turbo-rs`, a
//! pure-Rust port of the libjpeg-turbo that PIL links (ISLOW IDCT, fancy upsampling, same
//! YCbCr tables), because `image`'s zune-jpeg differs by a few levels; CMYK comes out raw and
//! PIL's own CMYK->RGB formula is applied here. WebP, BMP and TIFF go through `image`.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, RgbImage};
use libjpeg_turbo_rs::{ColorSpace, DecodeLimits, Decoder as JpegDecoder, PixelFormat};

use super::ImageOptions;
use super::error::ImageError;
use crate::file::{BoundedFile, OpenError};

/// Reads a file and decodes it like [`load_image`]; errors name the path. The path must be a
/// regular file (a FIFO, a device such as `/dev/zero` or a directory is refused before it is
/// read) of at most [`max_file_bytes`]; its first 64 KiB are read first and the dimensions in
/// the header checked against `opts.max_decoded_pixels`, so an oversized image is refused
/// before the rest of the file is read.
pub fn load_image_path(path: &Path, opts: &ImageOptions) -> Result<RgbImage, ImageError> {
    let open_error = |e: OpenError| match e {
        OpenError::Io(source) => ImageError::Io {
            path: path.to_path_buf(),
            source,
        },
        OpenError::NotRegular(kind) => ImageError::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        },
        OpenError::TooLarge { size, limit } => ImageError::FileTooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        },
    };
    let in_file = |e: ImageError| ImageError::File {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    let mut file = BoundedFile::open(path, max_file_bytes(opts)).map_err(open_error)?;
    check_header(file.header().map_err(open_error)?, opts).map_err(in_file)?;
    let bytes = file.rest().map_err(open_error)?;
    load_image(&bytes, opts).map_err(in_file)
}

/// The largest image file [`load_image_path`] reads: 8 bytes per pixel of
/// `opts.max_decoded_pixels` (an uncompressed 16-bit RGBA image at the limit) plus 64 MiB of
/// metadata; 464 MiB with the default limit.
pub fn max_file_bytes(opts: &ImageOptions) -> u64 {
    alloc_limit(opts)
}

/// Refuses an image whose header, read from the file's first bytes, declares more pixels than
/// the limit. A header that the first bytes do not hold (a JPEG with large metadata first, a
/// TIFF whose directory is at its end) passes here and is checked when the whole file is.
fn check_header(head: &[u8], opts: &ImageOptions) -> Result<(), ImageError> {
    // The header reader `sift serve` also uses for its request limits, so both read the same
    // sizes.
    match imagesize::blob_size(head) {
        Ok(size) => check_pixels(size.width as u64, size.height as u64, opts),
        Err(_) => Ok(()),
    }
}

/// Decodes PNG, JPEG, WebP, GIF (first frame), BMP or TIFF bytes to 8-bit RGB as PIL +
/// qwen-vl-utils `to_rgb` would. The header's pixel count is checked against
/// `opts.max_decoded_pixels` before any pixel buffer is allocated.
pub fn load_image(bytes: &[u8], opts: &ImageOptions) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnsupportedFormat {
        found: describe_unknown(bytes),
    })?;
    let name = match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        other => {
            return Err(ImageError::UnsupportedFormat {
                found: format!("{other:?}"),
            });
        }
    };
    let corrupt = |detail: String| ImageError::Corrupt {
        format: name,
        detail,
    };

    // Each path reads the header and checks the pixel count before allocating pixels.
    let img = match format {
        ImageFormat::Png => decode_png(bytes, opts, name)?,
        ImageFormat::Jpeg => decode_jpeg(bytes, opts, name)?,
        ImageFormat::Gif => decode_gif(bytes, opts, name)?,
        _ => {
            let (w, h) = image::ImageReader::with_format(Cursor::new(bytes), format)
                .into_dimensions()
                .map_err(|e| corrupt(e.to_string()))?;
            check_pixels(u64::from(w), u64::from(h), opts)?;
            let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
            reader.limits(image_limits(opts));
            let dynamic = reader.decode().map_err(|e| match e {
                image::ImageError::Limits(_) => ImageError::TooLarge {
                    width: u64::from(w),
                    height: u64::from(h),
                    pixels: u64::from(w) * u64::from(h),
                    limit: opts.max_decoded_pixels,
                },
                image::ImageError::Unsupported(u) => ImageError::UnsupportedFormat {
                    found: format!("{name} variant: {u}"),
                },
                e => corrupt(e.to_string()),
            })?;
            from_dynamic(dynamic).ok_or_else(|| ImageError::UnsupportedFormat {
                found: format!("{name} with floating-point samples"),
            })?
        }
    };
    if img.width() == 0 || img.height() == 0 {
        return Err(corrupt(format!(
            "decoded to {}x{} pixels",
            img.width(),
            img.height()
        )));
    }
    Ok(img)
}

fn describe_unknown(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unrecognised data starting with bytes {}", head.join(" "))
}

fn check_pixels(width: u64, height: u64, opts: &ImageOptions) -> Result<(), ImageError> {
    let pixels = width.saturating_mul(height);
    // PIL raises DecompressionBombError when pixels > 2 * MAX_IMAGE_PIXELS.
    if pixels > opts.max_decoded_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            pixels,
            limit: opts.max_decoded_pixels,
        });
    }
    Ok(())
}

/// Bytes a decoder may allocate: room for 16-bit RGBA at the pixel limit, plus 64 MiB.
fn alloc_limit(opts: &ImageOptions) -> u64 {
    opts.max_decoded_pixels
        .saturating_mul(8)
        .saturating_add(64 << 20)
}

fn image_limits(opts: &ImageOptions) -> image::Limits {
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(alloc_limit(opts));
    limits
}

// ---------------------------------------------------------------- PIL's pixel conversions

/// PIL `DIV255` (ImagingUtils.h).
#[inline]
fn div255(a: u32) -> u8 {
    let t = a + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// qwen-vl-utils `to_rgb` for mode "RGBA": `Image.new("RGB", size, white).paste(im, mask=alpha)`,
/// i.e. Pillow's `paste_mask_L` per channel: `BLEND(a, 255, c) = DIV255(255 * (255 - a) + c * a)`.
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    let (c, a) = (u32::from(c), u32::from(a));
    div255(255 * (255 - a) + c * a)
}

/// PIL "I;16" -> "RGB" (`I16_RGB`): values above 255 saturate to 255.
#[inline]
fn i16_to_u8(v: u16) -> u8 {
    v.min(255) as u8
}

/// PIL's 16-bit -> 8-bit unpackers ("RGB;16B", "LA;16B", ...) keep the high byte.
#[inline]
fn hi(v: u16) -> u8 {
    (v >> 8) as u8
}

fn rgb_from_fn(w: u32, h: u32, n: usize, f: impl Fn(usize) -> [u8; 3]) -> RgbImage {
    let mut out = Vec::with_capacity(n * 3);
    for i in 0..n {
        out.extend_from_slice(&f(i));
    }
    RgbImage::from_raw(w, h, out).expect("w * h * 3 samples")
}

/// `image`'s decoded buffer, read as the PIL mode the same file opens as.
fn from_dynamic(img: DynamicImage) -> Option<RgbImage> {
    let (w, h) = (img.width(), img.height());
    let n = w as usize * h as usize;
    Some(match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageLuma8(i) => {
            let s = i.as_raw();
            rgb_from_fn(w, h, n, |p| [s[p]; 3])
        }
        DynamicImage::ImageLumaA8(i) => {
            let s = i.as_raw();
            rgb_from_fn(w, h, n, |p| [s[2 * p]; 3])
        }
        DynamicImage::ImageRgba8(i) => {
            let s = i.as_raw();
            rgb_from_fn(w, h, n, |p| {
                let a = s[4 * p + 3];
                [
                    over_white(s[4 * p], a),
                    over_white(s[4 * p + 1], a),
                    over_white(s[4 * p + 2], a),
                ]
            })
        }
        DynamicImage::ImageLuma16(i) => {
            let s = i.as_raw();
            rgb_from_fn(w, h, n, |p| [i16_to_u8(s[p]); 3])
        }
        DynamicImage::ImageLumaA16(i) => {
            let s = i.as_raw();
            rgb_from_fn(w, h, n, |p| [hi(s[2 * p]); 3])
        }
        DynamicImage::ImageRgb16(i) => {
            let s = i.as_raw();
            rgb_from_fn(w, h, n, |p| {
                [hi(s[3 * p]), hi(s[3 * p + 1]), hi(s[3 * p + 2])]
            })
        }
        DynamicImage::ImageRgba16(i) => {
            let s = i.as_raw();
            rgb_from_fn(w, h, n, |p| {
                let a = hi(s[4 * p + 3]);
                [
                    over_white(hi(s[4 * p]), a),
                    over_white(hi(s[4 * p + 1]), a),
                    over_white(hi(s[4 * p + 2]), a),
                ]
            })
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------- PNG

fn decode_png(
    bytes: &[u8],
    opts: &ImageOptions,
    name: &'static str,
) -> Result<RgbImage, ImageError> {
    let corrupt = |e: png::DecodingError| ImageError::Corrupt {
        format: name,
        detail: e.to_string(),
    };
    let limits = png::Limits {
        bytes: usize::try_from(alloc_limit(opts)).unwrap_or(usize::MAX),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    // PIL applies neither the ICC profile nor the text, and `png` would inflate an iCCP chunk
    // (or, asked, a zTXt/iTXt one) up to the whole allocation limit: a 1.3 MB file can hold a
    // 1.3 GB profile. Skipped, they cost only their compressed bytes, which the file size bounds.
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_ignore_text_chunk(true);
    // IHDR only.
    let (hw, hh) = decoder.read_header_info().map_err(corrupt)?.size();
    check_pixels(u64::from(hw), u64::from(hh), opts)?;
    // Palette -> RGB(A), grey below 8 bits -> 8 bits scaled (as PIL's "L;2"/"L;4"/"1"), tRNS -> alpha.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let source = reader.info().color_type;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| corrupt(png::DecodingError::LimitsExceeded))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(corrupt)?;
    let (w, h) = (frame.width, frame.height);
    let (out_type, depth) = reader.output_color_type();
    let channels = out_type.samples();
    let n = w as usize * h as usize;
    let sixteen = depth == png::BitDepth::Sixteen;
    // Sample `c` of pixel `p`: the 16-bit value (or the 8-bit value).
    let sample = |p: usize, c: usize| -> u16 {
        let i = p * channels + c;
        if sixteen {
            u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]])
        } else {
            u16::from(buf[i])
        }
    };
    let to8 = |v: u16| if sixteen { hi(v) } else { v as u8 };
    Ok(match source {
        // PIL mode "RGBA" (16-bit: "RGBA;16B", high bytes): onto white.
        png::ColorType::Rgba => rgb_from_fn(w, h, n, |p| {
            let a = to8(sample(p, 3));
            [
                over_white(to8(sample(p, 0)), a),
                over_white(to8(sample(p, 1)), a),
                over_white(to8(sample(p, 2)), a),
            ]
        }),
        // 16-bit grey + alpha opens as "RGBA" (rawmode "LA;16B"), so it too goes onto white.
        png::ColorType::GrayscaleAlpha if sixteen => rgb_from_fn(w, h, n, |p| {
            [over_white(to8(sample(p, 0)), to8(sample(p, 1))); 3]
        }),
        // 16-bit grey opens as "I;16"; "I;16" -> "RGB" saturates at 255. tRNS is ignored.
        png::ColorType::Grayscale if sixteen => {
            rgb_from_fn(w, h, n, |p| [i16_to_u8(sample(p, 0)); 3])
        }
        // "L" / "1" / "LA": grey replicated, alpha dropped.
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => {
            rgb_from_fn(w, h, n, |p| [to8(sample(p, 0)); 3])
        }
        // "RGB" and "P": colour channels; the alpha that EXPAND made from tRNS is dropped.
        png::ColorType::Rgb | png::ColorType::Indexed => rgb_from_fn(w, h, n, |p| {
            [to8(sample(p, 0)), to8(sample(p, 1)), to8(sample(p, 2))]
        }),
    })
}

// ---------------------------------------------------------------- JPEG

fn decode_jpeg(
    bytes: &[u8],
    opts: &ImageOptions,
    name: &'static str,
) -> Result<RgbImage, ImageError> {
    let corrupt = |e: libjpeg_turbo_rs::JpegError| ImageError::Corrupt {
        format: name,
        detail: e.to_string(),
    };
    // Header only (markers; no entropy decoding).
    let info = libjpeg_turbo_rs::probe(bytes).map_err(corrupt)?;
    check_pixels(info.width as u64, info.height as u64, opts)?;
    let format = match info.color_space {
        ColorSpace::Grayscale => PixelFormat::Grayscale,
        ColorSpace::YCbCr | ColorSpace::Rgb => PixelFormat::Rgb,
        // libjpeg converts YCCK to CMYK; PIL then reads the samples as "CMYK;I".
        ColorSpace::Cmyk | ColorSpace::Ycck => PixelFormat::Cmyk,
        ColorSpace::Unknown => {
            return Err(ImageError::UnsupportedFormat {
                found: format!(
                    "JPEG with {} components of unknown colour space",
                    info.components
                ),
            });
        }
    };
    let limits = DecodeLimits {
        max_width: 65_535,
        max_height: 65_535,
        max_pixels: opts.max_decoded_pixels,
        max_memory: Some(alloc_limit(opts)),
        ..DecodeLimits::default()
    };
    let mut decoder = JpegDecoder::new_with_limits(bytes, limits).map_err(corrupt)?;
    decoder.set_output_format(format);
    let img = decoder.decode_image().map_err(corrupt)?;
    // libjpeg pads a truncated stream with grey and warns; PIL refuses it ("image file is
    // truncated"), so do the same. Other libjpeg warnings pass in PIL and pass here.
    if let Some(w) = img
        .warnings
        .iter()
        .find(|w| matches!(w, libjpeg_turbo_rs::DecodeWarning::TruncatedData { .. }))
    {
        return Err(ImageError::Corrupt {
            format: name,
            detail: w.to_string(),
        });
    }
    let (w, h) = (img.width as u32, img.height as u32);
    let n = img.width * img.height;
    let px = &img.data;
    if px.len() < n * format.bytes_per_pixel() {
        return Err(ImageError::Corrupt {
            format: name,
            detail: format!("decoder returned {} bytes for {w}x{h}", px.len()),
        });
    }
    Ok(match format {
        PixelFormat::Grayscale => rgb_from_fn(w, h, n, |p| [px[p]; 3]),
        PixelFormat::Cmyk => rgb_from_fn(w, h, n, |p| {
            pil_cmyk_i_to_rgb([px[4 * p], px[4 * p + 1], px[4 * p + 2], px[4 * p + 3]])
        }),
        _ => RgbImage::from_raw(w, h, px[..n * 3].to_vec()).expect("w * h * 3"),
    })
}

/// PIL reads every CMYK JPEG with rawmode "CMYK;I" (Adobe's inverted samples), then
/// `convert("RGB")` is Pillow's `cmyk2rgb`: `nk = 255 - k; r = nk - MULDIV255(c, nk)`.
fn pil_cmyk_i_to_rgb(raw: [u8; 4]) -> [u8; 3] {
    let [c, m, y, k] = raw.map(|v| 255 - u32::from(v));
    let nk = 255 - k;
    let f = |v: u32| {
        let t = v * nk + 128;
        let muldiv = ((t >> 8) + t) >> 8;
        nk.saturating_sub(muldiv).min(255) as u8
    };
    [f(c), f(m), f(y)]
}

// ---------------------------------------------------------------- GIF

fn decode_gif(
    bytes: &[u8],
    opts: &ImageOptions,
    name: &'static str,
) -> Result<RgbImage, ImageError> {
    let corrupt = |e: gif::DecodingError| ImageError::Corrupt {
        format: name,
        detail: e.to_string(),
    };
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    options.set_memory_limit(match std::num::NonZeroU64::new(alloc_limit(opts)) {
        Some(n) => gif::MemoryLimit::Bytes(n),
        None => gif::MemoryLimit::Unlimited,
    });
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(corrupt)?;
    let (sw, sh) = (u32::from(decoder.width()), u32::from(decoder.height()));
    check_pixels(u64::from(sw), u64::from(sh), opts)?;
    let global = decoder.global_palette().map(<[u8]>::to_vec);
    let frame = decoder
        .next_frame_info()
        .map_err(corrupt)?
        .ok_or_else(|| ImageError::Corrupt {
            format: name,
            detail: "the file has no image frame".into(),
        })?;
    let (left, top) = (u32::from(frame.left), u32::from(frame.top));
    let (fw, fh) = (u32::from(frame.width), u32::from(frame.height));
    let transparent = frame.transparent;
    let palette = frame.palette.clone().or(global);
    // PIL grows the canvas to hold a first frame that reaches past the logical screen.
    let (w, h) = (sw.max(left + fw), sh.max(top + fh));
    check_pixels(u64::from(w), u64::from(h), opts)?;
    let mut indices = vec![0u8; decoder.buffer_size()];
    decoder.read_into_buffer(&mut indices).map_err(corrupt)?;
    // Frame 0 in PIL: the canvas starts as the transparent index (else 0), then the frame is
    // pasted; the result is mode "P" (or "L" without a palette), and "P" -> "RGB" ignores
    // transparency: every pixel takes its palette colour (black past the palette's end).
    let mut canvas = vec![transparent.unwrap_or(0); w as usize * h as usize];
    for y in 0..fh as usize {
        let row = (top as usize + y) * w as usize + left as usize;
        canvas[row..row + fw as usize]
            .copy_from_slice(&indices[y * fw as usize..(y + 1) * fw as usize]);
    }
    let n = canvas.len();
    Ok(match palette {
        Some(pal) => rgb_from_fn(w, h, n, |p| {
            let i = usize::from(canvas[p]) * 3;
            match pal.get(i..i + 3) {
                Some(c) => [c[0], c[1], c[2]],
                None => [0, 0, 0],
            }
        }),
        None => rgb_from_fn(w, h, n, |p| [canvas[p]; 3]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pil_blend_onto_white() {
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(0, 255), 0);
        assert_eq!(over_white(100, 255), 100);
        // 255 * 127 + 0 * 128 = 32385 -> DIV255 = 127
        assert_eq!(over_white(0, 128), 127);
    }

    #[test]
    fn pil_cmyk() {
        // Stored inverted: raw 255 = no ink.
        assert_eq!(pil_cmyk_i_to_rgb([255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(pil_cmyk_i_to_rgb([255, 255, 255, 0]), [0, 0, 0]);
        assert_eq!(pil_cmyk_i_to_rgb([0, 255, 255, 255]), [0, 255, 255]);
    }
}
