//! sift-model's flash attention test (`crates/sift-model/tests/flash_attention.rs`) in headless
//! Chromium on WebGPU, built with the worker's own dependencies as `q4_projection.rs` is.
#![cfg(target_arch = "wasm32")]

#[path = "../../../crates/sift-model/tests/flash_attention.rs"]
mod flash_attention;
