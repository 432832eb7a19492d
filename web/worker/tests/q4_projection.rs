//! sift-model's Q4 projection test (`crates/sift-model/tests/q4_projection.rs`) in headless
//! Chromium on WebGPU. It runs from this crate so that it is built with the worker's own
//! dependencies: the browser's burn is then compiled once, for this test and the app alike.
#![cfg(target_arch = "wasm32")]

#[path = "../../../crates/sift-model/tests/q4_projection.rs"]
mod q4_projection;
