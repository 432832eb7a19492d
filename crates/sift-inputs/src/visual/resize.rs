//! `smart_resize` (qwen-vl-utils 0.0.14) and Pillow's BICUBIC resize of 8-bit images.
//!
//! Written by hand because no crate reproduces Pillow's fixed-point two-pass bicubic
//! (`src/libImaging/Resample.c`) bit for bit, and the reference resizes with it.

use image::RgbImage;

use super::error::ImageError;

/// qwen-vl-utils `MAX_RATIO`: `smart_resize` raises above this aspect ratio.
pub const MAX_ASPECT_RATIO: u32 = 200;

/// qwen-vl-utils `smart_resize(height, width, factor, min_pixels, max_pixels)`.
///
/// Returns `(height, width)`, both multiples of `factor`. Python's `round` (ties to even),
/// `math.floor` and `math.ceil` on f64, as in the reference.
pub fn smart_resize(
    height: u32,
    width: u32,
    factor: u32,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(u32, u32), ImageError> {
    if factor == 0 {
        return Err(ImageError::InvalidOptions(
            "the resize factor is 0; use patch_size * merge_size (32 for Qwen3-VL)".into(),
        ));
    }
    if max_pixels < min_pixels {
        return Err(ImageError::InvalidOptions(format!(
            "min_pixels ({min_pixels}) is larger than max_pixels ({max_pixels}); set min_pixels <= max_pixels"
        )));
    }
    if height == 0 || width == 0 {
        return Err(ImageError::InvalidOptions(format!(
            "the image is {width}x{height}; an image needs at least one pixel"
        )));
    }
    let (h, w, f) = (f64::from(height), f64::from(width), f64::from(factor));
    let ratio = h.max(w) / h.min(w);
    if ratio > f64::from(MAX_ASPECT_RATIO) {
        return Err(ImageError::AspectRatio {
            width: u64::from(width),
            height: u64::from(height),
            ratio,
            max: MAX_ASPECT_RATIO,
        });
    }
    let mut h_bar = f.max((h / f).round_ties_even() * f);
    let mut w_bar = f.max((w / f).round_ties_even() * f);
    // h*w and the pixel limits are integers below 2^53, so these f64 values are exact,
    // and f64 division rounds like Python's int / int.
    let area = h * w;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = (area / max_pixels as f64).sqrt();
        h_bar = (h / beta / f).floor() * f;
        w_bar = (w / beta / f).floor() * f;
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / area).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    if h_bar < 1.0 || w_bar < 1.0 || h_bar > f64::from(u32::MAX) || w_bar > f64::from(u32::MAX) {
        return Err(ImageError::InvalidOptions(format!(
            "smart_resize of {width}x{height} gives {w_bar}x{h_bar}; raise max_pixels to at least {}",
            u64::from(factor) * u64::from(factor)
        )));
    }
    Ok((h_bar as u32, w_bar as u32))
}

/// Pillow `PRECISION_BITS` for 8-bit images: 32 - 8 - 2.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `bicubic_filter` (a = -0.5), same operation order.
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    }
    if x < 2.0 {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * A;
    }
    0.0
}

/// Pillow's BICUBIC support.
const BICUBIC_SUPPORT: f64 = 2.0;

/// Per output pixel: first input index, number of taps, and fixed-point weights (`ksize` each).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    kk: Vec<i32>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
fn precompute_coeffs(in_size: usize, in0: f32, in1: f32, out_size: usize) -> Coeffs {
    // C: `(double)(in1 - in0) / outSize`, the subtraction in float.
    let scale = f64::from(in1 - in0) / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = BICUBIC_SUPPORT * filterscale;
    let ksize = (support.ceil() as usize) * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
        // C `(int)` truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let xmax = xmax.max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bicubic_filter((x as f64 + xmin as f64 - center + 0.5) * inv_filterscale);
            *kx = w;
            ww += w;
        }
        let row = &mut kk[xx * ksize..(xx + 1) * ksize];
        for (x, out) in row.iter_mut().enumerate().take(xmax) {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let scaled = w * f64::from(1u32 << PRECISION_BITS);
            *out = if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin as usize, xmax));
    }
    Coeffs { ksize, bounds, kk }
}

/// Pillow's `clip8`: `lookup[ss >> PRECISION_BITS]`, the table clamps to 0..=255.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUNDING: i32 = 1 << (PRECISION_BITS - 1);

/// An interleaved 8-bit image: `channels` samples per pixel, rows without padding.
struct Plane<'a> {
    data: &'a [u8],
    width: usize,
    channels: usize,
}

/// `_ImagingResampleHorizontal_8bpc`: rows `offset..offset + out_rows` of `src` to `out_w` columns.
fn resample_horizontal(
    src: &Plane,
    out_w: usize,
    out_rows: usize,
    offset: usize,
    c: &Coeffs,
) -> Vec<u8> {
    let ch = src.channels;
    let mut out = vec![0u8; out_w * out_rows * ch];
    for yy in 0..out_rows {
        let line = &src.data[(yy + offset) * src.width * ch..(yy + offset + 1) * src.width * ch];
        let line_out = &mut out[yy * out_w * ch..(yy + 1) * out_w * ch];
        for xx in 0..out_w {
            let (xmin, xmax) = c.bounds[xx];
            let k = &c.kk[xx * c.ksize..xx * c.ksize + xmax];
            for b in 0..ch {
                let mut ss = ROUNDING;
                for (x, &kx) in k.iter().enumerate() {
                    ss = ss.wrapping_add(i32::from(line[(x + xmin) * ch + b]).wrapping_mul(kx));
                }
                line_out[xx * ch + b] = clip8(ss);
            }
        }
    }
    out
}

/// `_ImagingResampleVertical_8bpc`: all columns of `src` to `out_h` rows.
fn resample_vertical(src: &Plane, out_h: usize, c: &Coeffs) -> Vec<u8> {
    let ch = src.channels;
    let row_len = src.width * ch;
    let mut out = vec![0u8; row_len * out_h];
    for yy in 0..out_h {
        let (ymin, ymax) = c.bounds[yy];
        let k = &c.kk[yy * c.ksize..yy * c.ksize + ymax];
        let line_out = &mut out[yy * row_len..(yy + 1) * row_len];
        for (i, o) in line_out.iter_mut().enumerate() {
            let mut ss = ROUNDING;
            for (y, &ky) in k.iter().enumerate() {
                ss =
                    ss.wrapping_add(i32::from(src.data[(y + ymin) * row_len + i]).wrapping_mul(ky));
            }
            *o = clip8(ss);
        }
    }
    out
}

/// Pillow's `ImagingResampleInner` (BICUBIC, box = whole image) on interleaved 8-bit samples.
///
/// Matches Pillow 12.0.0, the version the reference's `uv.lock` pins: always the horizontal pass
/// first, on only the rows the vertical pass reads, then the vertical pass. A pass is skipped when
/// its axis keeps its size (both skipped: a copy, as `Image.resize` to the same size).
fn resample_8bpc(
    data: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let need_horizontal = out_w != width;
    let need_vertical = out_h != height;
    let mut vert = precompute_coeffs(height, 0.0, height as f32, out_h);
    let src = Plane {
        data,
        width,
        channels,
    };
    if !need_horizontal {
        return if need_vertical {
            resample_vertical(&src, out_h, &vert)
        } else {
            data.to_vec()
        };
    }
    // First and last (exclusive) source rows the vertical pass reads.
    let ybox_first = vert.bounds[0].0;
    let (last_min, last_len) = vert.bounds[out_h - 1];
    let ybox_last = last_min + last_len;
    for b in &mut vert.bounds {
        b.0 -= ybox_first;
    }
    let horiz = precompute_coeffs(width, 0.0, width as f32, out_w);
    let tmp = resample_horizontal(&src, out_w, ybox_last - ybox_first, ybox_first, &horiz);
    if !need_vertical {
        return tmp;
    }
    let tmp_plane = Plane {
        data: &tmp,
        width: out_w,
        channels,
    };
    resample_vertical(&tmp_plane, out_h, &vert)
}

/// `Image.resize((width, height))` of an RGB image with Pillow's default BICUBIC filter.
pub fn resize_bicubic_pil(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if (w, h) == (width, height) || w == 0 || h == 0 || width == 0 || height == 0 {
        return if (w, h) == (width, height) {
            img.clone()
        } else {
            RgbImage::new(width, height)
        };
    }
    let out = resample_8bpc(
        img.as_raw(),
        w as usize,
        h as usize,
        3,
        width as usize,
        height as usize,
    );
    RgbImage::from_raw(width, height, out).expect("resample returns width * height * 3 samples")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_examples_from_the_spec() {
        let r = |h, w| smart_resize(h, w, 32, 4096, 1_843_200).unwrap();
        assert_eq!(r(1080, 1920), (992, 1792));
        assert_eq!(r(480, 640), (480, 640));
        assert_eq!(r(3000, 4000), (1152, 1536));
        assert_eq!(r(20, 20), (64, 64));
        assert_eq!(r(100, 3000), (96, 3008));
        // 80 / 32 = 2.5 rounds to 2 (ties to even), 112 / 32 = 3.5 rounds to 4.
        assert_eq!(r(80, 112), (64, 128));
    }

    #[test]
    fn identity_resize_is_a_copy() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(resize_bicubic_pil(&img, 5, 3), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 11, image::Rgb([10, 128, 250]));
        let out = resize_bicubic_pil(&img, 64, 32);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
        let out = resize_bicubic_pil(&img, 5, 4);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }
}
