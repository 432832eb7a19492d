//! The vision tower (`Qwen3VLVisionModel`): patch embedding, interpolated learned positions,
//! 2-D rotary attention inside each image or 2-frame group, DeepStack taps and the patch merger.
//! Field names follow the checkpoint (`model.visual.*`), so weights load without a mapping table.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::attention::{AttentionPrecision, attention, equal_length_runs};
use crate::config::VisionConfig;
use crate::error::ModelError;
use crate::profile;
use crate::projection::Projection;
use crate::rope::{self, RotaryTables};
use crate::trace::Trace;

/// One image, or one video, as the processor hands it over: `grid_thw` in patches and one row of
/// `channels × temporal_patch × patch × patch` values per patch, rows in merge-block order.
#[derive(Debug, Clone)]
pub struct VisualItem {
    pub kind: VisualKind,
    pub pixel_values: Vec<f32>,
    pub grid_thw: [usize; 3],
}

/// Which pad token an item's features replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisualKind {
    Image,
    Video,
}

impl VisualItem {
    pub fn patch_count(&self) -> usize {
        self.grid_thw.iter().product()
    }
}

/// The Conv3d whose kernel equals its stride: a linear map of each flattened patch.
#[derive(Module, Debug)]
pub struct PatchEmbedProj {
    pub weight: Param<Tensor<5>>,
    pub bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: PatchEmbedProj,
}

#[derive(Module, Debug)]
pub struct VisionAttention {
    pub qkv: Projection,
    pub proj: Projection,
    #[module(skip)]
    num_heads: usize,
}

#[derive(Module, Debug)]
pub struct VisionMlp {
    pub linear_fc1: Projection,
    pub linear_fc2: Projection,
}

#[derive(Module, Debug)]
pub struct VisionBlock {
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    pub attn: VisionAttention,
    pub mlp: VisionMlp,
}

/// `Qwen3VLVisionPatchMerger`: 2×2 neighbouring patches become one text-width token. The main
/// merger normalises each patch before the shuffle; DeepStack mergers normalise after it.
#[derive(Module, Debug)]
pub struct PatchMerger {
    pub norm: LayerNorm,
    pub linear_fc1: Projection,
    pub linear_fc2: Projection,
    #[module(skip)]
    postshuffle_norm: bool,
}

#[derive(Module, Debug)]
pub struct VisionModel {
    pub patch_embed: PatchEmbed,
    pub pos_embed: Embedding,
    pub blocks: Vec<VisionBlock>,
    pub merger: PatchMerger,
    pub deepstack_merger_list: Vec<PatchMerger>,
    #[module(skip)]
    config: VisionConfig,
    #[module(skip)]
    pos_grid_side: usize,
}

/// The merged visual tokens for the decoder and one DeepStack feature set per tap.
pub struct VisionOutput {
    pub embeds: Tensor<2>,
    pub deepstack: Vec<Tensor<2>>,
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Projection {
    Projection::new(d_in, d_out, true, device)
}

fn layer_norm(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(1e-6).init(device)
}

impl PatchMerger {
    fn new(c: &VisionConfig, postshuffle_norm: bool, device: &Device) -> Self {
        let merged = c.hidden_size * c.spatial_merge_size * c.spatial_merge_size;
        let norm_width = if postshuffle_norm {
            merged
        } else {
            c.hidden_size
        };
        Self {
            norm: layer_norm(norm_width, device),
            linear_fc1: linear(merged, merged, device),
            linear_fc2: linear(merged, c.out_hidden_size, device),
            postshuffle_norm,
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [patches, width] = x.dims();
        let merged_width = self.linear_fc1.d_in();
        let groups = patches * width / merged_width;
        let x = if self.postshuffle_norm {
            self.norm.forward(x.reshape([groups, merged_width]))
        } else {
            self.norm.forward(x).reshape([groups, merged_width])
        };
        // The mergers use the exact erf GELU (`nn.GELU()`), unlike the blocks' tanh GELU.
        self.linear_fc2.forward(gelu(self.linear_fc1.forward(x)))
    }
}

impl VisionAttention {
    /// Full attention inside each segment `[start, end)` of patches (one image or one 2-frame
    /// group), none across segments.
    fn forward(
        &self,
        x: Tensor<2>,
        rotary: &RotaryTables,
        segments: &[(usize, usize)],
    ) -> Tensor<2> {
        let [len, width] = x.dims();
        let heads = self.num_heads;
        let head_dim = width / heads;
        // qkv(x).reshape(L, 3, heads, hd): q, k, v are the outer split.
        let qkv = self.qkv.forward(x).reshape([len, 3, heads, head_dim]);
        let part = |i: usize| {
            qkv.clone()
                .slice([0..len, i..i + 1, 0..heads, 0..head_dim])
                .reshape([len, heads, head_dim])
                .swap_dims(0, 1)
        };
        let q = rope::apply_rotary(part(0), rotary);
        let k = rope::apply_rotary(part(1), rotary);
        let v = part(2);
        let precision = AttentionPrecision::of(&self.qkv);
        // Segments of one length (a video's frame groups, images of one size) side by side
        // form one batch: one launch for all of them.
        let outputs: Vec<Tensor<3>> = equal_length_runs(segments.iter().map(|&(s, e)| s..e))
            .into_iter()
            .map(|run| {
                let out = profile::stage("vision attention", &q.device(), || {
                    attention(
                        run.batch(&q),
                        run.batch(&k),
                        run.batch(&v),
                        false,
                        precision,
                    )
                });
                run.unbatch(out)
            })
            .collect();
        let out = Tensor::cat(outputs, 1)
            .swap_dims(0, 1)
            .reshape([len, width]);
        self.proj.forward(out)
    }
}

impl VisionBlock {
    fn forward(
        &self,
        x: Tensor<2>,
        rotary: &RotaryTables,
        segments: &[(usize, usize)],
    ) -> Tensor<2> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), rotary, segments);
        let hidden = gelu_tanh(self.mlp.linear_fc1.forward(self.norm2.forward(x.clone())));
        x + self.mlp.linear_fc2.forward(hidden)
    }
}

/// The blocks' activation, GELU's tanh approximation (`gelu_pytorch_tanh`), as
/// x·σ(2c·(x + 0.044715·x³)) with c = √(2/π), since 0.5·(1 + tanh z) = σ(2z): burn's
/// `gelu_approximate` takes a power and a tanh, which its CPU backend computes one value at a
/// time (1.9× slower there; one pass fewer on GPUs without fusion).
fn gelu_tanh(x: Tensor<2>) -> Tensor<2> {
    const TWO_C: f64 = 2.0 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
    let inner = (x.clone() * x.clone() * (0.044715 * TWO_C) + TWO_C) * x.clone();
    x * sigmoid(inner)
}

/// For each patch in processor order (merge blocks of `merge × merge` patches, row-major inside
/// a block), its full-resolution `(row, col)` in the `h × w` patch grid.
fn patch_coordinates(h: usize, w: usize, merge: usize) -> Vec<(usize, usize)> {
    let mut coords = Vec::with_capacity(h * w);
    for block_row in 0..h / merge {
        for block_col in 0..w / merge {
            for in_row in 0..merge {
                for in_col in 0..merge {
                    coords.push((block_row * merge + in_row, block_col * merge + in_col));
                }
            }
        }
    }
    coords
}

/// `torch.linspace(0, end, steps)` in f32: the first half counts up from 0, the second half down
/// from `end`, which decides the last bit of the bilinear weights.
fn linspace_f32(end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![0.0];
    }
    let step = end / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step * i as f32
            } else {
                end - step * (steps - 1 - i) as f32
            }
        })
        .collect()
}

impl VisionModel {
    pub fn new(config: &VisionConfig, device: &Device) -> Self {
        let c = config;
        let patch_dim = c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size;
        let blocks = (0..c.depth)
            .map(|_| VisionBlock {
                norm1: layer_norm(c.hidden_size, device),
                norm2: layer_norm(c.hidden_size, device),
                attn: VisionAttention {
                    qkv: linear(c.hidden_size, 3 * c.hidden_size, device),
                    proj: linear(c.hidden_size, c.hidden_size, device),
                    num_heads: c.num_heads,
                },
                mlp: VisionMlp {
                    linear_fc1: linear(c.hidden_size, c.intermediate_size, device),
                    linear_fc2: linear(c.intermediate_size, c.hidden_size, device),
                },
            })
            .collect();
        let kernel = [
            c.hidden_size,
            c.in_channels,
            c.temporal_patch_size,
            c.patch_size,
            c.patch_size,
        ];
        debug_assert_eq!(kernel[1..].iter().product::<usize>(), patch_dim);
        Self {
            patch_embed: PatchEmbed {
                // Unallocated until weights fill them, like every other parameter.
                proj: PatchEmbedProj {
                    weight: Initializer::Zeros.init(kernel, device),
                    bias: Initializer::Zeros.init([c.hidden_size], device),
                },
            },
            pos_embed: EmbeddingConfig::new(c.num_position_embeddings, c.hidden_size).init(device),
            blocks,
            merger: PatchMerger::new(c, false, device),
            deepstack_merger_list: c
                .deepstack_visual_indexes
                .iter()
                .map(|_| PatchMerger::new(c, true, device))
                .collect(),
            config: c.clone(),
            pos_grid_side: (c.num_position_embeddings as f64).sqrt().round() as usize,
        }
    }

    /// Width of one row of `pixel_values`.
    pub fn patch_dim(&self) -> usize {
        let c = &self.config;
        c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size
    }

    /// Runs the tower over `items` in the given order; the outputs keep that order.
    pub fn forward(
        &self,
        items: &[VisualItem],
        device: &Device,
        trace: &mut Trace,
    ) -> Result<VisionOutput, ModelError> {
        let merge = self.config.spatial_merge_size;
        let patch_dim = self.patch_dim();
        let mut pixels = Vec::new();
        let mut coords = Vec::new();
        let mut segments = Vec::new();
        let mut pos_indices: [Vec<i64>; 4] = Default::default();
        let mut pos_weights: [Vec<f32>; 4] = Default::default();
        for item in items {
            let [t, h, w] = item.grid_thw;
            if h % merge != 0 || w % merge != 0 || t == 0 {
                return Err(ModelError::Input(format!(
                    "visual grid {:?} is not a whole number of {merge}×{merge} merge blocks",
                    item.grid_thw
                )));
            }
            if item.pixel_values.len() != item.patch_count() * patch_dim {
                return Err(ModelError::Input(format!(
                    "visual item with grid {:?} has {} pixel values, expected {} × {patch_dim}",
                    item.grid_thw,
                    item.pixel_values.len(),
                    item.patch_count()
                )));
            }
            pixels.extend_from_slice(&item.pixel_values);
            let item_coords = patch_coordinates(h, w, merge);
            self.interpolation_terms(h, w, &item_coords, t, &mut pos_indices, &mut pos_weights);
            for _ in 0..t {
                let start = coords.len();
                coords.extend_from_slice(&item_coords);
                segments.push((start, coords.len()));
            }
        }
        let patches = coords.len();

        // Patch embedding: the Conv3d as one matmul over flattened patches.
        let proj = &self.patch_embed.proj;
        let width = self.config.hidden_size;
        let kernel = proj.weight.val().reshape([width, patch_dim]).transpose();
        let x = Tensor::<2>::from_data(TensorData::new(pixels, [patches, patch_dim]), device);
        let x = x.matmul(kernel) + proj.bias.val().unsqueeze();
        trace.record(|| "vision.patch_embed".into(), &x);

        let pos = self.interpolated_positions(pos_indices, pos_weights, patches, device);
        trace.record(|| "vision.pos_embed".into(), &pos);
        let mut x = x + pos;
        trace.record(|| "vision.embed".into(), &x);

        let head_dim = width / self.config.num_heads;
        let rotary = rope::vision_2d(&coords, head_dim, device);
        let mut deepstack = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, &rotary, &segments);
            trace.record(|| format!("vision.blocks.{i}"), &x);
            if let Some(k) = self
                .config
                .deepstack_visual_indexes
                .iter()
                .position(|&d| d == i)
            {
                let feature = self.deepstack_merger_list[k].forward(x.clone());
                trace.record(|| format!("vision.deepstack.{k}"), &feature);
                deepstack.push(feature);
            }
        }
        let embeds = self.merger.forward(x);
        trace.record(|| "vision.merger".into(), &embeds);
        Ok(VisionOutput { embeds, deepstack })
    }

    /// Bilinear sampling of the learned `side × side` position grid at an `h × w` patch grid
    /// (`fast_pos_embed_interpolate`, align-corners), as four (index, weight) terms per patch in
    /// processor order, repeated for each of the `t` temporal groups.
    fn interpolation_terms(
        &self,
        h: usize,
        w: usize,
        coords: &[(usize, usize)],
        t: usize,
        indices: &mut [Vec<i64>; 4],
        weights: &mut [Vec<f32>; 4],
    ) {
        let side = self.pos_grid_side;
        let last = (side - 1) as f32;
        let rows = linspace_f32(last, h);
        let cols = linspace_f32(last, w);
        let split = |v: f32| {
            let floor = v as usize; // truncation, like `tensor.int()`
            (floor, (floor + 1).min(side - 1), v - floor as f32)
        };
        for _ in 0..t {
            for &(r, c) in coords {
                let (r0, r1, dr) = split(rows[r]);
                let (c0, c1, dc) = split(cols[c]);
                let terms = [
                    (r0 * side + c0, (1.0 - dr) * (1.0 - dc)),
                    (r0 * side + c1, (1.0 - dr) * dc),
                    (r1 * side + c0, dr * (1.0 - dc)),
                    (r1 * side + c1, dr * dc),
                ];
                for (k, (index, weight)) in terms.into_iter().enumerate() {
                    indices[k].push(index as i64);
                    weights[k].push(weight);
                }
            }
        }
    }

    fn interpolated_positions(
        &self,
        indices: [Vec<i64>; 4],
        weights: [Vec<f32>; 4],
        patches: usize,
        device: &Device,
    ) -> Tensor<2> {
        let table = self.pos_embed.weight.val();
        indices
            .into_iter()
            .zip(weights)
            .map(|(index, weight)| {
                let index = Tensor::<1, Int>::from_data(TensorData::new(index, [patches]), device);
                let weight = Tensor::<2>::from_data(TensorData::new(weight, [patches, 1]), device);
                table.clone().select(0, index) * weight
            })
            .reduce(|a, b| a + b)
            .expect("four interpolation terms")
    }
}
