//! sift's page: rank your own photos, videos, PDFs and notes against a query, privately, on your
//! GPU. The page owns the inputs and the display; the model runs in `sift-worker`, a Web
//! Worker, so the page never freezes and survives the worker's crashes; PDFs are opened and
//! drawn by a second instance of it, the renderer, which the page restarts when a PDF stops it.

#[cfg(target_arch = "wasm32")]
mod capture;
#[cfg(target_arch = "wasm32")]
mod config;
#[cfg(target_arch = "wasm32")]
mod files;
#[cfg(target_arch = "wasm32")]
mod format;
#[cfg(target_arch = "wasm32")]
mod kept_files;
#[cfg(target_arch = "wasm32")]
mod messages;
#[cfg(target_arch = "wasm32")]
mod renderer;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
mod speed;
#[cfg(target_arch = "wasm32")]
mod state;
#[cfg(target_arch = "wasm32")]
mod view;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(view::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("sift-app runs in a browser: build it with Trunk (see the README)");
}
