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

mod quantize;
mod request;
mod reranker;

pub use quantize::{QuantError, QuantizeError, QuantizeReport, QuantizedModel, quantize};
pub use request::{Content, ImageSource, Request, RequestError, Video, VideoSource};
pub use reranker::{
    Backend, DEFAULT_MAX_VISUAL_TOKENS, DocError, LoadError, RerankOptions, Reranker, position_ids,
};
pub use sift_inputs::ImageOptions;
pub use sift_inputs::video::{VideoError, VideoSampling};
