//! How the model runs, as `rerank`, `serve` and `bench` take it from the command line.

use clap::Args;
use sift::{Backend, Precision, RerankOptions};

#[derive(Args)]
pub struct ModelOptions {
    /// Where the model runs: `auto` takes a hardware GPU when wgpu finds one, else the CPU.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub device: Backend,
    /// What the linear layers and attention multiply in: f32 (the reference's scores within
    /// 1e-5) or f16 (faster on GPUs with f16; scores move by about 1e-4; attention stays f32
    /// where the GPU's kernels are WGSL, every build but `--features vulkan`).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Tokens kept before the prompt's 5-token suffix; longer document text is cut.
    #[arg(long, default_value_t = sift::DEFAULT_MAX_LENGTH)]
    pub max_length: usize,
    /// Most image and video tokens in one (query, document) pair; a pair above it is an error
    /// rather than an out-of-memory crash.
    #[arg(long, default_value_t = sift::DEFAULT_MAX_VISUAL_TOKENS)]
    pub max_visual_tokens: usize,
    /// Most images and videos on one side (the query, or one document); more is an error for
    /// that pair before anything is decoded.
    #[arg(long, default_value_t = sift::DEFAULT_MAX_VISUALS_PER_SIDE)]
    pub max_visuals_per_side: usize,
    /// Most pixels an image, or a video's frame, may declare: larger ones are refused from
    /// their header, before they are decoded (the model resizes images to at most 1.8 MP
    /// anyway).
    #[arg(long, value_name = "PIXELS", default_value_t = sift::ImageOptions::default().max_decoded_pixels)]
    pub max_image_pixels: u64,
    /// Most host memory one request's inputs may hold at once, in bytes or as 3GiB, 512MiB
    /// (the default is 3GiB): the model
    /// refuses to load with limits whose worst case is over it, and documents are read for a
    /// forward pass only while it holds.
    #[arg(long, value_name = "BYTES", default_value_t = sift::DEFAULT_MEMORY_BUDGET, value_parser = parse_bytes)]
    pub memory_budget: u64,
}

/// A size as people write it ("3GiB", "512 MB", "1000000"), through bytesize.
fn parse_bytes(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("{e}; write a size such as 3GiB, 512MiB or 1000000"))
}

impl ModelOptions {
    pub fn rerank_options(&self) -> RerankOptions {
        RerankOptions {
            backend: self.device,
            precision: self.precision,
            max_length: self.max_length,
            max_visual_tokens: self.max_visual_tokens,
            max_visuals_per_side: self.max_visuals_per_side,
            image: sift::ImageOptions {
                max_decoded_pixels: self.max_image_pixels,
                ..sift::ImageOptions::default()
            },
            memory_budget: self.memory_budget,
            ..RerankOptions::default()
        }
    }
}
