//! Rescale + normalise + patchify as transformers 4.57.3 `Qwen2VLImageProcessorFast._preprocess`
//! with `do_resize=False`, for still images and video frame groups alike.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::error::ImageError;

/// The fields of the model's `preprocessor_config.json` that the pixel path reads.
/// Missing keys take the Qwen3-VL values; unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorConfig {
    /// Per-channel mean (R, G, B) on the 0..1 scale.
    pub image_mean: [f32; 3],
    /// Per-channel std (R, G, B) on the 0..1 scale.
    pub image_std: [f32; 3],
    /// Side of one ViT patch in pixels.
    pub patch_size: usize,
    /// Frames per patch along time.
    pub temporal_patch_size: usize,
    /// Side of the block of patches merged into one token.
    pub merge_size: usize,
    /// Factor applied to the 0..255 samples (1/255).
    pub rescale_factor: f64,
    /// Multiply by `rescale_factor`.
    pub do_rescale: bool,
    /// Subtract the mean and divide by the std.
    pub do_normalize: bool,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            patch_size: 16,
            temporal_patch_size: 2,
            merge_size: 2,
            rescale_factor: 1.0 / 255.0,
            do_rescale: true,
            do_normalize: true,
        }
    }
}

impl ProcessorConfig {
    /// Parses the text of a `preprocessor_config.json`.
    pub fn from_json_str(text: &str) -> Result<Self, ImageError> {
        let cfg: ProcessorConfig = serde_json::from_str(text).map_err(|e| {
            ImageError::InvalidOptions(format!(
                "preprocessor_config.json does not parse ({e}); pass the file shipped with the model"
            ))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a `preprocessor_config.json`.
    pub fn from_path(path: &Path) -> Result<Self, ImageError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text)
    }

    /// Checks sizes are non-zero and std has no zero.
    pub fn validate(&self) -> Result<(), ImageError> {
        if self.patch_size == 0 || self.temporal_patch_size == 0 || self.merge_size == 0 {
            return Err(ImageError::InvalidOptions(format!(
                "patch_size ({}), temporal_patch_size ({}) and merge_size ({}) must be positive; \
                 fix preprocessor_config.json",
                self.patch_size, self.temporal_patch_size, self.merge_size
            )));
        }
        if self.do_normalize && self.image_std.contains(&0.0) {
            return Err(ImageError::InvalidOptions(
                "image_std contains 0, which would divide by zero; fix preprocessor_config.json"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Side that image sides must be a multiple of: `patch_size * merge_size` (32 for Qwen3-VL).
    pub fn resize_factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// `value_lut()[c][v]`: the float that sample value `v` of channel `c` becomes.
    ///
    /// With `do_rescale && do_normalize` transformers fuses the two (`_fuse_mean_std_and_rescale_factor`):
    /// `m = f32(mean) * f32(1 / rescale_factor)`, same for `s`, then torchvision `normalize`
    /// computes `(x - m) / s` in f32. With mean = std = 0.5 that is `(x - 127.5) / 127.5`.
    pub fn value_lut(&self) -> [[f32; 256]; 3] {
        let mut lut = [[0f32; 256]; 3];
        let inv = (1.0 / self.rescale_factor) as f32;
        for (c, table) in lut.iter_mut().enumerate() {
            let (mean, std) = (self.image_mean[c], self.image_std[c]);
            for (v, out) in table.iter_mut().enumerate() {
                let x = v as f32;
                *out = match (self.do_rescale, self.do_normalize) {
                    (true, true) => (x - mean * inv) / (std * inv),
                    (false, true) => (x - mean) / std,
                    (true, false) => x * self.rescale_factor as f32,
                    (false, false) => x,
                };
            }
        }
        lut
    }
}

/// What the vision tower reads for one image or one video.
#[derive(Debug, Clone, PartialEq)]
pub struct VisualInput {
    /// `[num_patches, patch_dim]`, row-major.
    pub pixel_values: Vec<f32>,
    /// `3 * temporal_patch_size * patch_size^2` (1536 for Qwen3-VL).
    pub patch_dim: usize,
    /// `[t, h, w]` in patches: `[frames / temporal_patch_size, H / patch, W / patch]`.
    pub grid_thw: [usize; 3],
}

impl VisualInput {
    /// Rows of `pixel_values`: `t * h * w`.
    pub fn num_patches(&self) -> usize {
        self.grid_thw.iter().product()
    }

    /// Placeholder tokens in the prompt after the 2x2 merge: `t * h * w / merge^2`.
    pub fn num_tokens(&self, merge_size: usize) -> usize {
        self.num_patches() / (merge_size * merge_size)
    }
}

/// Normalises and lays out frames as `pixel_values`, in the reference's row order:
/// rows `(t_group, block_row, block_col, in_row, in_col)` with `merge_size` blocks, each row
/// `(channel, temporal, py, px)`. `frames.len()` must be a multiple of `temporal_patch_size`
/// (a still image passes itself `temporal_patch_size` times), all of one size, sides multiples
/// of `patch_size * merge_size`.
pub fn patchify(frames: &[&RgbImage], proc: &ProcessorConfig) -> Result<VisualInput, ImageError> {
    proc.validate()?;
    let (p, tp, m) = (proc.patch_size, proc.temporal_patch_size, proc.merge_size);
    let first = frames
        .first()
        .ok_or_else(|| ImageError::InvalidFrames("no frames; pass at least one".into()))?;
    let (w, h) = (first.width() as usize, first.height() as usize);
    if !frames.len().is_multiple_of(tp) {
        return Err(ImageError::InvalidFrames(format!(
            "{} frames is not a multiple of temporal_patch_size {tp}; repeat the last frame to pad",
            frames.len()
        )));
    }
    if let Some(f) = frames.iter().find(|f| f.dimensions() != first.dimensions()) {
        return Err(ImageError::InvalidFrames(format!(
            "frames differ in size ({}x{} and {w}x{h}); resize them all to one size",
            f.width(),
            f.height()
        )));
    }
    let factor = p * m;
    if w == 0 || h == 0 || !w.is_multiple_of(factor) || !h.is_multiple_of(factor) {
        return Err(ImageError::InvalidFrames(format!(
            "frame size {w}x{h} is not a multiple of {factor}; resize with smart_resize first"
        )));
    }
    let lut = proc.value_lut();
    let (gt, gh, gw) = (frames.len() / tp, h / p, w / p);
    let patch_dim = 3 * tp * p * p;
    let mut out = vec![0f32; gt * gh * gw * patch_dim];
    // One row of merge blocks of one temporal group at a time, on every core natively: a
    // video's 38 MB of values are the host's largest share of a pair.
    let block_row_values = (gw / m) * m * m * patch_dim;
    for_each_chunk(&mut out, block_row_values, |index, chunk| {
        let (t, br) = (index / (gh / m), index % (gh / m));
        let group = &frames[t * tp..(t + 1) * tp];
        let mut runs = chunk.chunks_exact_mut(p);
        for bc in 0..gw / m {
            for ir in 0..m {
                for ic in 0..m {
                    let (y0, x0) = ((br * m + ir) * p, (bc * m + ic) * p);
                    for (c, table) in lut.iter().enumerate() {
                        for frame in group {
                            let raw = frame.as_raw();
                            for py in 0..p {
                                let start = ((y0 + py) * w + x0) * 3 + c;
                                let run = runs.next().expect("p values per patch row");
                                let samples = &raw[start..start + 3 * (p - 1) + 1];
                                for (px, value) in run.iter_mut().enumerate() {
                                    *value = table[usize::from(samples[3 * px])];
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(VisualInput {
        pixel_values: out,
        patch_dim,
        grid_thw: [gt, gh, gw],
    })
}

/// `fill(index, chunk)` for each `size`-long chunk of `values`: in parallel natively, in turn in
/// browsers (no threads).
fn for_each_chunk(values: &mut [f32], size: usize, fill: impl Fn(usize, &mut [f32]) + Sync) {
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        values
            .par_chunks_mut(size)
            .enumerate()
            .for_each(|(index, chunk)| fill(index, chunk));
    }
    #[cfg(target_family = "wasm")]
    for (index, chunk) in values.chunks_mut(size).enumerate() {
        fill(index, chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_normalisation_is_x_minus_127_5_over_127_5() {
        let lut = ProcessorConfig::default().value_lut();
        assert_eq!(lut[0][0], -1.0);
        assert_eq!(lut[1][255], 1.0);
        assert_eq!(lut[2][128], 0.5f32 / 127.5);
        assert_eq!(lut[2][200], (200.0f32 - 127.5) / 127.5);
    }

    #[test]
    fn config_defaults_and_parsing() {
        let cfg = ProcessorConfig::from_json_str(
            r#"{"image_mean":[0.48145466,0.4578275,0.40821073],"patch_size":14,"size":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(cfg.patch_size, 14);
        assert_eq!(cfg.image_std, [0.5; 3]);
        assert_eq!(cfg.image_mean[0], 0.481_454_66_f32);
        assert_eq!(
            ProcessorConfig::from_json_str("{}").unwrap(),
            ProcessorConfig::default()
        );
        assert!(ProcessorConfig::from_json_str(r#"{"patch_size":0}"#).is_err());
    }

    #[test]
    fn row_order_matches_the_spec() {
        // 64x32 image: grid 1 x 2 x 4, one row of two 2x2 blocks.
        let img = RgbImage::from_fn(64, 32, |x, y| {
            image::Rgb([(x / 16 + 4 * (y / 16)) as u8, 0, 0])
        });
        let v = patchify(&[&img, &img], &ProcessorConfig::default()).unwrap();
        assert_eq!(v.grid_thw, [1, 2, 4]);
        assert_eq!(v.patch_dim, 1536);
        assert_eq!(v.num_tokens(2), 2);
        let lut = ProcessorConfig::default().value_lut();
        // Row r = (bc * 2 + ir) * 2 + ic covers patch (2 * 0 + ir, 2 * bc + ic).
        let expect = [0u8, 1, 4, 5, 2, 3, 6, 7];
        for (r, &id) in expect.iter().enumerate() {
            let row = &v.pixel_values[r * 1536..(r + 1) * 1536];
            assert!(
                row[..512].iter().all(|&x| x == lut[0][usize::from(id)]),
                "row {r}"
            );
            assert!(row[512..].iter().all(|&x| x == -1.0));
        }
    }

    #[test]
    fn frame_errors() {
        let img = RgbImage::new(32, 32);
        let other = RgbImage::new(64, 32);
        let cfg = ProcessorConfig::default();
        assert!(matches!(
            patchify(&[&img], &cfg),
            Err(ImageError::InvalidFrames(_))
        ));
        assert!(matches!(
            patchify(&[&img, &other], &cfg),
            Err(ImageError::InvalidFrames(_))
        ));
        let odd = RgbImage::new(48, 32);
        assert!(matches!(
            patchify(&[&odd, &odd], &cfg),
            Err(ImageError::InvalidFrames(_))
        ));
    }
}
