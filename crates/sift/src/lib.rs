//! sift: rerank documents (text, images, video) against a query with Qwen3-VL-Reranker.
//!
//! ```no_run
//! use sift::{Content, Reranker, RerankOptions, Request};
//!
//! let reranker = Reranker::load("Qwen3-VL-Reranker-2B".as_ref(), RerankOptions::default())?;
//! let request = Request {
//!     query: Content::text("a cat asleep on a sofa"),
//!     documents: vec![Content::text("Cats sleep up to 16 hours a day."), Content::text("Stock prices fell.")],
//!     ..Request::default()
//! };
//! for (i, score) in reranker.score(&request).iter().enumerate() {
//!     println!("{i}: {score:?}");
//! }
//! # Ok::<(), sift::LoadError>(())
//! ```

#[cfg(not(target_family = "wasm"))]
pub mod bench;
mod loading;
mod quantize;
mod ranking;
mod request;
mod reranker;

pub use loading::{Loading, ModelFiles};
pub use quantize::{
    CHECKPOINT_INDEX, COPIED_FILES, Conversion, HeaderReader, QuantError, QuantizeError,
    QuantizeReport, QuantizedModel, ShardOutput, SourcePlan, SourceWriter, checkpoint_shards,
    head_rows, hex, planned_manifest, quantize,
};
pub use ranking::{rank, results_json};
pub use request::{Content, ImageSource, Request, RequestError, Video, VideoSource};
pub use reranker::{
    Backend, DEFAULT_BATCH_BYTES, DEFAULT_MAX_VISUAL_TOKENS, DEFAULT_MAX_VISUALS_PER_SIDE,
    DocError, LoadError, Precision, PreparedQuery, RerankOptions, Reranker, Scored, position_ids,
};
pub use sift_inputs::prompt::DEFAULT_INSTRUCTION;
pub use sift_inputs::video::{
    ContainerInfo, FrameCollector, SamplePlan, VideoError, VideoFrames, VideoSampling,
    check_sample_tokens, group_timestamps, probe_container,
};
pub use sift_inputs::{ImageError, ImageOptions, RgbImage};
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub use sift_model::gpu_device_async;
pub use sift_model::{Device, GpuInfo, ModelError, Requirements, gpu_info};
pub use sift_quant::{FileEntry, MANIFEST, Manifest};
