//! sift: rerank documents (text, images, video) against a query with Qwen3-VL-Reranker.
//!
//! A request's query and documents go in; each document comes out with its score (the
//! probability that it answers the query), or with the error that kept it from being scored
//! while the others still were. Three ways in:
//!
//! **A model directory** (a Hugging Face checkpoint, or one `sift quantize` wrote):
//!
//! ```no_run
//! use sift::{Content, ImageSource, Reranker, RerankOptions, Request};
//!
//! let reranker = Reranker::load("Qwen3-VL-Reranker-2B".as_ref(), RerankOptions::default())?;
//! let request = Request {
//!     query: Content::text("a cat asleep on a sofa"),
//!     documents: vec![
//!         Content::text("Cats sleep up to 16 hours a day."),
//!         Content::image(ImageSource::Path("sofa.jpg".into())),
//!     ],
//!     ..Request::default()
//! };
//! let scores = reranker.score(&request);
//! for index in sift::rank(&scores) {
//!     println!("{index}: {:?}", scores[index]);
//! }
//! # Ok::<(), sift::LoadError>(())
//! ```
//!
//! **A 4-bit model in parts**, as a browser downloads it or reads it from storage: its
//! manifest, its small files, then its shards one at a time (each checked against its sha256;
//! only one is held in memory):
//!
//! ```no_run
//! # fn fetch(name: &str) -> Vec<u8> { unimplemented!() }
//! use sift::{Loading, MANIFEST, Manifest, ModelFiles, RerankOptions};
//!
//! let manifest = Manifest::from_json(&fetch(MANIFEST), MANIFEST.as_ref())?;
//! let files = ModelFiles {
//!     config: fetch("config.json"),
//!     tokenizer: fetch("tokenizer.json"),
//!     preprocessor_config: None,
//! };
//! // In a browser: `sift::gpu_device_async().await` (the `webgpu` feature).
//! let device = sift::Device::default();
//! let mut loading = Loading::start(manifest, "https://…/model-q4/", files, &device, RerankOptions::default())?;
//! for (index, shard) in loading.shards().to_vec().iter().enumerate() {
//!     loading.add_shard(index, &fetch(&shard.file))?;
//! }
//! let reranker = loading.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Asynchronously**, as a browser must read results back from its GPU: the query is read
//! once, then its documents are scored in passes after the prompt's shared beginning.
//!
//! ```no_run
//! # async fn run(reranker: &sift::Reranker, request: &sift::Request) {
//! let query = reranker.prepare_query(request);
//! let scored = reranker.score_documents_async(&query, &request.documents).await;
//! let scores: Vec<_> = scored.into_iter().map(|r| r.map(|s| s.score)).collect();
//! println!("{}", sift::results_json(&scores, Some(5)));
//! # }
//! ```
//!
//! The modules beyond the root serve hosts that do part of the work themselves:
//! [`quantize`](mod@quantize) converts a checkpoint as its bytes arrive, [`video`] plans and collects the
//! frames a browser's `<video>` element decodes, [`model_input`] shows what the model reads
//! (for comparing with the reference), [`batch`] reads JSON Lines batches as `sift rerank --batch`
//! does, `pdf` (feature `pdf`) makes a PDF's pages documents, and `bench` (feature `bench`) times the model.
//!
//! The files, in the order a request flows through them: `request` (what a request holds),
//! `options`, `inputs` (sides read into token ids and pixels, within the limits), `memory`
//! (the budget of what a request's inputs hold), `prefix`
//! (the prompt's shared beginning), `passes` (documents packed into forward passes),
//! `reranker` (loading and scoring), `parts` (a 4-bit model loaded piece by piece),
//! `ranking` (results best first), `error`, `device`.

pub mod batch;
#[cfg(feature = "bench")]
pub mod bench;
mod device;
mod error;
mod inputs;
mod memory;
pub mod model_input;
mod options;
mod parts;
mod passes;
#[cfg(feature = "pdf")]
pub mod pdf;
mod prefix;
pub mod quantize;
mod ranking;
mod request;
mod reranker;
pub mod video;

pub use error::{DocError, LoadError};
pub use inputs::PreparedQuery;
pub use options::{
    Backend, DEFAULT_BATCH_BYTES, DEFAULT_MAX_VISUAL_TOKENS, DEFAULT_MAX_VISUALS_PER_SIDE,
    DEFAULT_MEMORY_BUDGET, Precision, RerankOptions,
};
pub use parts::{Loading, ModelFiles};
pub use quantize::quantize;
pub use ranking::{Scored, rank, request_results_json, results_json};
pub use request::{Content, ImageSource, Request, RequestError, Video, VideoSource};
pub use reranker::Reranker;
pub use sift_inputs::prompt::{DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH, TokenizerError};
pub use sift_inputs::video::{VideoError, VideoFrames, VideoSampling};
pub use sift_inputs::{ImageError, ImageOptions, RgbImage};
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub use sift_model::gpu_device_async;
pub use sift_model::{Device, GpuInfo, ModelError, Requirements, gpu_info};
pub use sift_quant::{FileEntry, MANIFEST, Manifest};
