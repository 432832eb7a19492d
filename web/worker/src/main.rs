//! sift's model worker: the sift library on the browser's WebGPU, in a dedicated Web Worker so
//! that the page never freezes. It takes `ToWorker` messages from the page, one job at a time
//! (frames for a video in progress are delivered as they come), and answers with `FromWorker`.
//! A panic (a GPU lost or out of memory inside burn) is reported as `Fatal` before the worker
//! dies; the page then starts a new one. The page runs a second instance as its PDF renderer
//! (`render`), so that a PDF that stops the renderer costs neither the model nor the run.

#[cfg(target_arch = "wasm32")]
mod convert;
#[cfg(target_arch = "wasm32")]
mod explain;
#[cfg(target_arch = "wasm32")]
mod fit;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod media;
#[cfg(target_arch = "wasm32")]
mod model;
#[cfg(target_arch = "wasm32")]
mod render;
#[cfg(target_arch = "wasm32")]
mod reply;
#[cfg(target_arch = "wasm32")]
mod rerank;
#[cfg(target_arch = "wasm32")]
mod source;
#[cfg(target_arch = "wasm32")]
mod speed;
#[cfg(target_arch = "wasm32")]
mod storage;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("sift-worker runs in a browser: build it with Trunk (see the README)");
}

#[cfg(target_arch = "wasm32")]
fn main() {
    worker::start();
}
