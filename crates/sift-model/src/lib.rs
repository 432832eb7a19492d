//! The Qwen3-VL reranker network on burn.
//!
//! Input: token ids, multimodal position ids and the preprocessed pixels of each image or video
//! (from `sift-inputs`). Output: the final hidden states and the reranker score
//! `sigmoid(h_last · (W_yes − W_no))`. The full vocabulary head is never computed.
//!
//! Modules, in the order data flows through them:
//! - `config`: the model's `config.json`: sizes, token ids, rotary settings.
//! - `device`: the GPU to run on and what it can bind in one buffer.
//! - `from_directory`: a model directory, Hugging Face checkpoint or sift 4-bit, read into parts.
//! - `config_check`: `config.json` against the shapes its weights hold, before anything of its
//!   sizes is built.
//! - `weights`: a Hugging Face checkpoint's safetensors, checked, then read into the network.
//! - `quantized`: a sift 4-bit model's shards, checked, then sent to the device as they arrive
//!   ([`QuantizedLoader`]).
//! - `host_table`: the token table where it stays on the host; only a prompt's rows go up.
//! - `network`: [`Qwen3VlModel`], the vision tower and text decoder as the checkpoint names them.
//! - `input`: [`ModelInput`], one (query, document) pair as the model reads it.
//! - `reranker_model`: [`RerankerModel`], the entry point: loads, runs the network, scores.
//! - `prefix`: a prompt beginning shared by many documents, its keys and values computed once.
//! - `vision`: the vision tower, patches to visual tokens and DeepStack features.
//! - `rope`: rotary position embeddings, multimodal for the text and 2-D for the vision tower.
//! - `text`: the text decoder, with the visual features injected at their pad tokens.
//! - `attention`: attention of both towers: burn's op or the formula, whichever is faster.
//! - `projection`: the linear layers, f32, f16 or 4-bit, where nearly all the work is.
//! - `kernels`: sift's own GPU kernels (flash attention, fused 4-bit matmul).
//! - `score`: [`ScoreTokens`] the score compares and the [`Score`] of a pair.
//! - `error`, `trace`, `profile`: the one error type, intermediates kept for comparison, and
//!   time per stage.

mod attention;
pub mod config;
mod config_check;
mod device;
mod error;
mod from_directory;
mod host_table;
mod input;
pub mod kernels;
mod network;
pub mod prefix;
pub mod profile;
mod projection;
mod quantized;
mod reranker_model;
mod rope;
mod score;
mod text;
mod trace;
mod vision;
mod weights;

pub use attention::{AttentionKernels, attention_measurements, use_attention_kernels};
pub use burn::tensor::{Device, Tensor};
pub use config::ModelConfig;
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub use device::gpu_device_async;
pub use device::{GpuInfo, binding_limit, gpu_info};
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub use device::{gpu_device, hardware_gpu_present};
pub use error::ModelError;
pub use from_directory::check_model_directory;
pub use input::ModelInput;
pub use network::{MAX_CHECKPOINT_TENSORS, Qwen3VlModel, checkpoint_tensors};
pub use prefix::Prefix;
pub use projection::Projection;
pub use quantized::{QuantizedLoader, Requirements, is_quantized, q4_scale_dtype, q4_tensor_data};
pub use reranker_model::RerankerModel;
pub use score::{Score, ScoreTokens};
pub use text::TextModel;
pub use trace::Trace;
pub use vision::{VisionModel, VisionOutput, VisualItem, VisualKind};
