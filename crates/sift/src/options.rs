//! How a [`Reranker`](crate::Reranker) runs: where, in what precision, and the limits that turn
//! an input too large for the machine into a message instead of a crash.

use sift_inputs::ImageOptions;
use sift_inputs::prompt::DEFAULT_MAX_LENGTH;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Backend {
    /// burn's pure-Rust CPU backend (`flex`).
    #[default]
    Cpu,
    /// burn's wgpu backend: Vulkan, Metal or DirectX 12 (needs the `wgpu` feature).
    Gpu,
    /// The GPU if wgpu finds a hardware one (not a CPU rasteriser such as lavapipe), else the
    /// CPU.
    Auto,
}

/// The type the linear layers and attention multiply in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Precision {
    /// f32 throughout: the reference's scores within 1e-5.
    #[default]
    F32,
    /// The linear layers and attention in f16, accumulating in f32 (norms, the residual stream
    /// and the score in f32): faster on GPUs with f16 (tensor cores through Vulkan's SPIR-V);
    /// on the golden requests, scores within 6e-5 of f32. Where a GPU's kernels are WGSL,
    /// attention stays f32 (burn's f16 attention there is slower than its f32).
    F16,
}

#[derive(Debug, Clone)]
pub struct RerankOptions {
    pub backend: Backend,
    pub precision: Precision,
    /// Tokens kept before the 5-token suffix (reference: [`DEFAULT_MAX_LENGTH`], 10240). The
    /// reference keeps every special token when it cuts, so a prompt whose text holds more
    /// special tokens than this (besides the images' and videos' own) is refused rather
    /// than scored at any length.
    pub max_length: usize,
    /// Image sizes: `image.max_decoded_pixels` (default
    /// [`DEFAULT_MAX_DECODED_PIXELS`](sift_inputs::DEFAULT_MAX_DECODED_PIXELS), 50 MP) bounds
    /// every image file and every video frame from its header, before it is decoded, and an
    /// image file's bytes to 8 per pixel of it plus 64 MiB (`--max-image-pixels`).
    pub image: ImageOptions,
    /// Most image and video tokens in one (query, document) pair. The reference has no limit;
    /// sift refuses a pair above it with a message instead of running out of memory.
    pub max_visual_tokens: usize,
    /// Most images and videos on one side of a pair, refused before any is decoded.
    pub max_visuals_per_side: usize,
    /// Compute the prompt's beginning that a query's documents share once per query, not once
    /// per document ([`sift_model::Prefix`]); the scores are the same.
    pub reuse_prefix: bool,
    /// Documents after a shared prefix are computed together, packed into one forward pass (32
    /// at most), while the pass's widest activation (an MLP's inner layer) stays within this
    /// many bytes and the GPU's binding limit; a document larger than that is computed alone.
    pub batch_bytes: u64,
    /// Most bytes of host memory one request's inputs may hold at once (default
    /// [`DEFAULT_MEMORY_BUDGET`], 3 GiB; `--memory-budget`): its query's, the forward pass's
    /// documents' and the document being read with its decoding. Loading refuses limits whose
    /// worst case does not fit (a query and a document at `max_visual_tokens`, an image at
    /// `image.max_decoded_pixels` being decoded), and a pass reads another document only while
    /// the worst case of one more still fits.
    pub memory_budget: u64,
}

/// The default `max_visuals_per_side`.
pub const DEFAULT_MAX_VISUALS_PER_SIDE: usize = 64;

/// The default `max_visual_tokens`: room for a 64-frame 1080p video (23,040 tokens, spec §4.2)
/// beside a few full-size images.
pub const DEFAULT_MAX_VISUAL_TOKENS: usize = 32_768;

/// The default `batch_bytes`: 32 text documents (the cap) or 10 images of the workload in one
/// pass of the 2B model; peak GPU memory a few times this.
pub const DEFAULT_BATCH_BYTES: u64 = 512 << 20;

/// The default `memory_budget`: the default limits' worst case (2.65 GiB: a query and a
/// document of 32,768 visual tokens, 806 MB each, and a 50 MP image being decoded, 1.23 GB)
/// with room to spare.
pub const DEFAULT_MEMORY_BUDGET: u64 = 3 << 30;

impl Default for RerankOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Cpu,
            precision: Precision::F32,
            max_length: DEFAULT_MAX_LENGTH,
            image: ImageOptions::default(),
            max_visual_tokens: DEFAULT_MAX_VISUAL_TOKENS,
            max_visuals_per_side: DEFAULT_MAX_VISUALS_PER_SIDE,
            reuse_prefix: true,
            batch_bytes: DEFAULT_BATCH_BYTES,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }
}
