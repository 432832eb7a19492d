// Hand-written: no crate reproduces torch's antialiased bicubic (`_upsample_bicubic2d_aa`) bit for bit.
//! torchvision 0.29.2 `transforms.functional.resize(uint8 frames, [h, w], BICUBIC, antialias=True)`,
//! the video-frame resize of qwen-vl-utils 0.0.14 `fetch_video`.
//!
//! torchvision's v1 tensor `resize` (`_functional_tensor.resize`) casts uint8 to float32, calls
//! `F.interpolate(mode="bicubic", align_corners=False, antialias=True)`, clamps to [0, 255], rounds
//! half to even (`torch.round`) and casts back. On CPU, torch 2.15 runs that interpolate as
//! `separable_upsample_generic_Nd_kernel_impl<2, _, HelperInterpCubic>` in
//! `aten/src/ATen/native/cpu/UpSampleKernel.cpp`, on float32 throughout:
//!
//! * weights: `HelperInterpBase::_compute_indices_min_size_weights_aa` with
//!   `HelperInterpCubic::aa_filter<float>`, whose antialias kernel is Keys' a = -0.5 (PIL's), not
//!   the a = -0.75 of torch's non-antialiased bicubic; support 2 * scale when downscaling;
//! * the horizontal pass (last axis) first, then the vertical one; an axis whose size does not
//!   change is skipped (`basic_loop_aa_horizontal` / `basic_loop_aa_vertical`, each output value
//!   `t0 * w0` then `+= t_j * w_j` in tap order).
//!
//! The last float bits follow torch's AVX2 and AVX512 kernels (what torch dispatches to on any
//! x86-64 CPU with AVX2), checked bit for bit on the float output of `F.interpolate`: GCC fuses
//! the filter polynomial into multiply-adds, and vectorises the tap loop four taps at a time
//! (products rounded, then added in order), with a fused multiply-add for each of the remaining
//! `(taps - 1) % 4` taps. torch's DEFAULT build (x86-64 without AVX2) fuses nothing and differs in
//! the last float bit, which moves a rounded sample by one level now and then; other
//! architectures' builds were not checked.

use image::RgbImage;

/// `HelperInterpCubic::aa_filter<float>` (a = -0.5), with the multiply-adds GCC fuses.
fn bicubic_filter(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        // cubic_convolution1: ((A + 2) * x - (A + 3)) * x * x + 1
        ((A + 2.0).mul_add(x, -(A + 3.0)) * x).mul_add(x, 1.0)
    } else if x < 2.0 {
        // cubic_convolution2: ((A * x - 5A) * x + 8A) * x - 4A
        A.mul_add(x, -5.0 * A)
            .mul_add(x, 8.0 * A)
            .mul_add(x, -4.0 * A)
    } else {
        0.0
    }
}

/// Per output index along one axis: first input index, number of taps, and `ksize` weights each.
struct Taps {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<f32>,
}

impl Taps {
    fn of(&self, i: usize) -> (usize, &[f32]) {
        let (min, len) = self.bounds[i];
        (min, &self.weights[i * self.ksize..i * self.ksize + len])
    }
}

/// `HelperInterpCubic::compute_index_ranges_weights` for float input, antialias, no
/// `align_corners`, no explicit scale: the operation order and f32 / f64 mix of the C++.
fn compute_taps(in_size: usize, out_size: usize) -> Taps {
    // compute_scales_value<float>: static_cast<float>(input_size) / output_size.
    let scale = in_size as f32 / out_size as f32;
    // support = (scale >= 1.0) ? (interp_size * 0.5) * scale : interp_size * 0.5, in double.
    let support = if scale >= 1.0 {
        (2.0 * f64::from(scale)) as f32
    } else {
        2.0
    };
    let ksize = (support.ceil() as usize) * 2 + 1;
    let invscale = if scale >= 1.0 {
        (1.0 / f64::from(scale)) as f32
    } else {
        1.0
    };
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0f32; out_size * ksize];
    for (i, row) in weights.chunks_exact_mut(ksize).enumerate() {
        // scalar_t center = scale * (i + 0.5): the product in double.
        let center = (f64::from(scale) * (i as f64 + 0.5)) as f32;
        // (int64_t)(center -/+ support + 0.5): float difference, double sum, truncation.
        let xmin = ((f64::from(center - support) + 0.5) as i64).max(0);
        let xmax = ((f64::from(center + support) + 0.5) as i64).min(in_size as i64);
        let xsize = (xmax - xmin).clamp(0, ksize as i64) as usize;
        let mut total = 0f32;
        for (j, w) in row.iter_mut().enumerate().take(xsize) {
            // (j + xmin - center + 0.5) * invscale: int64 - float in float, the rest in double.
            let d = (j as i64 + xmin) as f32 - center;
            *w = bicubic_filter(((f64::from(d) + 0.5) * f64::from(invscale)) as f32);
            total += *w;
        }
        if total != 0.0 {
            for w in row.iter_mut().take(xsize) {
                *w /= total;
            }
        }
        bounds.push((xmin as usize, xsize));
    }
    Taps {
        ksize,
        bounds,
        weights,
    }
}

/// Taps summed as products (vectorised by 4 in torch's kernel), the rest as fused multiply-adds.
#[inline]
fn unfused_taps(len: usize) -> usize {
    1 + (len.saturating_sub(1) & !3)
}

/// `basic_loop_aa_horizontal<float>`: `rows` rows of `width` interleaved RGB samples to `taps`
/// output columns.
#[inline(always)]
fn horizontal(src: &[f32], width: usize, rows: usize, taps: &Taps) -> Vec<f32> {
    let out_w = taps.bounds.len();
    let mut out = vec![0f32; out_w * rows * 3];
    for (line, line_out) in src
        .chunks_exact(width * 3)
        .zip(out.chunks_exact_mut(out_w * 3))
    {
        for (xx, px) in line_out.chunks_exact_mut(3).enumerate() {
            let (xmin, w) = taps.of(xx);
            let split = unfused_taps(w.len());
            let window = line[xmin * 3..(xmin + w.len()) * 3].chunks_exact(3);
            // The three channels are independent planes in torch; same operations per sample.
            let mut acc = [0f32; 3];
            for (j, (s, &wj)) in window.zip(w).enumerate() {
                for c in 0..3 {
                    acc[c] = if j == 0 {
                        s[c] * wj
                    } else if j < split {
                        acc[c] + s[c] * wj
                    } else {
                        s[c].mul_add(wj, acc[c])
                    };
                }
            }
            px.copy_from_slice(&acc);
        }
    }
    out
}

/// `basic_loop_aa_vertical<float>` for one output row: `acc` gets the row's float values.
#[inline(always)]
fn vertical_row(src: &[f32], row_len: usize, ymin: usize, w: &[f32], acc: &mut [f32]) {
    let row = |j: usize| &src[(ymin + j) * row_len..(ymin + j + 1) * row_len];
    for (a, &s) in acc.iter_mut().zip(row(0)) {
        *a = s * w[0];
    }
    let split = unfused_taps(w.len());
    for (j, &wj) in w.iter().enumerate().take(split).skip(1) {
        for (a, &s) in acc.iter_mut().zip(row(j)) {
            *a += s * wj;
        }
    }
    for (j, &wj) in w.iter().enumerate().skip(split) {
        for (a, &s) in acc.iter_mut().zip(row(j)) {
            *a = s.mul_add(wj, *a);
        }
    }
}

/// torchvision's `img.clamp(0, 255)`, `torch.round` (half to even), `.to(uint8)`.
#[inline]
fn to_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0).round_ties_even() as u8
}

/// Both passes and the cast back to uint8; `(w, h)` to `(out_w, out_h)`, none of them 0.
#[inline(always)]
fn resample(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let src: Vec<f32> = src.iter().map(|&v| f32::from(v)).collect();
    // Horizontal pass first, on every input row.
    let (mid, mid_w) = if out_w != w {
        (horizontal(&src, w, h, &compute_taps(w, out_w)), out_w)
    } else {
        (src, w)
    };
    if out_h == h {
        return mid.iter().map(|&v| to_u8(v)).collect();
    }
    let taps = compute_taps(h, out_h);
    let row_len = mid_w * 3;
    let mut acc = vec![0f32; row_len];
    let mut out = vec![0u8; row_len * out_h];
    for (yy, line_out) in out.chunks_exact_mut(row_len).enumerate() {
        let (ymin, wts) = taps.of(yy);
        vertical_row(&mid, row_len, ymin, wts, &mut acc);
        for (o, &v) in line_out.iter_mut().zip(&acc) {
            *o = to_u8(v);
        }
    }
    out
}

/// [`resample`] compiled with the FMA instructions, so `mul_add` is one instruction instead of a
/// call to the C library's `fmaf`. Same results: `mul_add` is exactly rounded either way.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn resample_fma(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    resample(src, w, h, out_w, out_h)
}

/// torchvision 0.29.2 `resize(frame, [height, width], InterpolationMode.BICUBIC, antialias=True)`
/// of a uint8 RGB frame on CPU, as qwen-vl-utils 0.0.14 `fetch_video` resizes every frame.
///
/// Bit-exact with torch 2.15's AVX2 / AVX512 kernels (see the module notes). A frame already of
/// the target size is returned unchanged, as torchvision does.
pub fn resize_bicubic_antialias_torch(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if (w, h) == (width, height) {
        return img.clone();
    }
    if w == 0 || h == 0 || width == 0 || height == 0 {
        return RgbImage::new(width, height);
    }
    let dims = (w as usize, h as usize, width as usize, height as usize);
    #[cfg(target_arch = "x86_64")]
    let out = if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the FMA instructions resample_fma is compiled with.
        unsafe { resample_fma(img.as_raw(), dims.0, dims.1, dims.2, dims.3) }
    } else {
        resample(img.as_raw(), dims.0, dims.1, dims.2, dims.3)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let out = resample(img.as_raw(), dims.0, dims.1, dims.2, dims.3);
    RgbImage::from_raw(width, height, out).expect("resample returns width * height * 3 samples")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_cover_the_input() {
        for (i, o) in [(37, 160), (101, 32), (1920, 416), (5, 5), (1, 64), (64, 1)] {
            let t = compute_taps(i, o);
            for k in 0..o {
                let (min, w) = t.of(k);
                assert!(!w.is_empty() && min + w.len() <= i, "{i}->{o} #{k}");
                let s: f32 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{i}->{o} #{k}: {s}");
            }
        }
    }

    #[test]
    fn constant_frame_stays_constant() {
        let img = RgbImage::from_pixel(37, 11, image::Rgb([0, 128, 255]));
        for (w, h) in [(64, 32), (5, 4), (37, 40), (90, 11)] {
            let out = resize_bicubic_antialias_torch(&img, w, h);
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [0, 128, 255]), "{w}x{h}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_build_matches_the_portable_one() {
        if !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        let src: Vec<u8> = (0u32..61 * 47 * 3)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for (w, h) in [(160, 96), (20, 15), (200, 30), (61, 100)] {
            // SAFETY: the CPU has FMA (checked above).
            let fast = unsafe { resample_fma(&src, 61, 47, w, h) };
            assert_eq!(fast, resample(&src, 61, 47, w, h), "{w}x{h}");
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(resize_bicubic_antialias_torch(&img, 5, 3), img);
    }
}
