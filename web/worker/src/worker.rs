//! The worker itself: the GPU and the model it holds, the messages it takes from the page one
//! job at a time (frames for a video in progress, and PDF pages, are delivered as they come),
//! and its start. The page starts a second instance as its PDF renderer, which is sent only
//! `OpenPdf` and `RenderPage` and never sets up the GPU, and a third, for the page's speed
//! measurement, which is sent only `MeasureSpeed`.

use futures::StreamExt;
use futures::channel::mpsc;
use sift::{Device, Reranker};
use sift_web_protocol::{FromWorker, GpuInfo, RenderSettings, ToWorker, decode};
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::media::{FrameInbox, FrameMessage};
use crate::render::Renderer;
use crate::reply::post;
use crate::{model, rerank, speed, storage};

/// The GPU and the model, once set up (or, in the renderer, the PDF being drawn).
#[derive(Default)]
struct Worker {
    gpu: Option<(Device, sift::GpuInfo)>,
    /// The loaded model, the key it is stored under, and how its PDF pages are drawn.
    reranker: Option<(Reranker, String, RenderSettings)>,
    renderer: Renderer,
}

impl Worker {
    /// The GPU, set up on first use, or why there is none.
    async fn gpu(&mut self) -> Result<(Device, sift::GpuInfo), String> {
        if let Some(gpu) = &self.gpu {
            return Ok(gpu.clone());
        }
        let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
            .unwrap_or(JsValue::UNDEFINED);
        let has_webgpu = js_sys::Reflect::get(&navigator, &"gpu".into())
            .map(|gpu| !gpu.is_undefined())
            .unwrap_or(false);
        if !has_webgpu {
            return Err(
                "this browser has no WebGPU, which sift needs to run the model. \
                        Use Chrome or Edge 113 or later, Safari 26 or later, or Firefox \
                        141 or later on Windows; on Linux, Chrome needs WebGPU enabled \
                        (chrome://flags/#enable-unsafe-webgpu)"
                    .into(),
            );
        }
        let device = sift::gpu_device_async().await.map_err(|e| {
            format!(
                "the browser has WebGPU but gave no usable GPU ({e}). Update the graphics \
                 driver or the browser, or check that hardware acceleration is on in the \
                 browser's settings"
            )
        })?;
        let mut info = sift::gpu_info(&device).ok_or("the GPU's limits could not be read")?;
        if let Some(name) = adapter_name().await {
            info.name = name;
        }
        self.gpu = Some((device, info));
        Ok(self.gpu.clone().expect("just set"))
    }

    async fn probe(&mut self) {
        let gpu = self.gpu().await.map(|(_, info)| GpuInfo {
            name: info.name,
            max_binding: info.max_binding,
            f16: info.f16,
        });
        post(&FromWorker::Probed {
            gpu,
            storage: storage::estimate().await,
            models: storage::models().await.unwrap_or_default(),
        });
    }

    async fn handle(&mut self, message: ToWorker, inbox: &FrameInbox) {
        match message {
            ToWorker::Probe => self.probe().await,
            ToWorker::Load {
                source,
                f16,
                max_length,
            } => {
                // The previous model's GPU memory is freed before the next one loads.
                self.reranker = None;
                let loaded = match self.gpu().await {
                    Ok((device, gpu)) => model::load(source, f16, max_length, &device, &gpu).await,
                    Err(e) => Err(e),
                };
                match loaded {
                    Ok((reranker, summary, render)) => {
                        self.reranker = Some((reranker, summary.key.clone(), render));
                        post(&FromWorker::Loaded(summary));
                    }
                    Err(e) => post(&FromWorker::LoadFailed(e)),
                }
                self.probe().await;
            }
            ToWorker::MeasureSpeed { shape, f16 } => match self.gpu().await {
                Ok((device, gpu)) => speed::measure(shape, f16, &device, &gpu).await,
                Err(e) => post(&FromWorker::SpeedFailed(e)),
            },
            ToWorker::Remove(key) => {
                // Removing the model in use unloads it, freeing the GPU.
                if self.reranker.as_ref().is_some_and(|(_, k, _)| *k == key) {
                    self.reranker = None;
                }
                if let Err(e) = storage::remove(&key).await {
                    post(&FromWorker::LoadFailed(e));
                }
                self.probe().await;
            }
            ToWorker::Rerank(job) => match &self.reranker {
                Some((reranker, _, render)) => rerank::run(reranker, render, inbox, job).await,
                None => post(&FromWorker::LoadFailed(
                    "no model is loaded: press Load model first".into(),
                )),
            },
            ToWorker::OpenPdf {
                request,
                name,
                file,
            } => self.renderer.open(request, &name, &file),
            ToWorker::RenderPage {
                request,
                pdf,
                name,
                file,
                page,
                settings,
            } => {
                self.renderer
                    .render(request, pdf, &name, &file, page, &settings)
                    .await
            }
            // Frames and pages are delivered as they arrive, not queued behind the job.
            ToWorker::Frame { .. }
            | ToWorker::FramesFailed { .. }
            | ToWorker::Page { .. }
            | ToWorker::PageFailed { .. } => {}
        }
    }
}

/// The GPU as the browser names it (`GPUAdapterInfo`: "nvidia ampere", "google
/// swiftshader"), which wgpu's WebGPU backend does not pass on (it says only "WebGPU"). Read
/// by name: web-sys has these types only behind its unstable APIs.
async fn adapter_name() -> Option<String> {
    let get = |object: &JsValue, key: &str| js_sys::Reflect::get(object, &key.into()).ok();
    let navigator = get(&js_sys::global(), "navigator")?;
    let gpu = get(&navigator, "gpu")?;
    let request: js_sys::Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let adapter = request
        .call0(&gpu)
        .ok()?
        .dyn_into::<js_sys::Promise>()
        .ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(adapter).await.ok()?;
    let info = get(&adapter, "info")?;
    let field = |key| {
        get(&info, key)
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let description = field("description");
    let name = if description.is_empty() {
        format!("{} {}", field("vendor"), field("architecture"))
    } else {
        description
    };
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Installs the message handler and the job loop, then tells the page it is ready.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        post(&FromWorker::Fatal(info.to_string()));
        console_error_panic_hook::hook(info);
    }));
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let (jobs, mut queue) = mpsc::unbounded::<ToWorker>();
    let inbox = FrameInbox::default();
    let frames = inbox.clone();
    let on_message =
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            match decode::<ToWorker>(event.data()) {
                Ok(ToWorker::Frame {
                    job,
                    video,
                    index,
                    width,
                    height,
                    rgba,
                }) => frames.deliver(
                    job,
                    video,
                    FrameMessage::Frame {
                        index,
                        width,
                        height,
                        rgba,
                    },
                ),
                Ok(ToWorker::FramesFailed {
                    job,
                    video,
                    message,
                }) => frames.deliver(job, video, FrameMessage::Failed(message)),
                Ok(ToWorker::Page {
                    job,
                    media,
                    width,
                    height,
                    rgb,
                }) => frames.deliver(job, media, FrameMessage::Page { width, height, rgb }),
                Ok(ToWorker::PageFailed {
                    job,
                    media,
                    message,
                }) => frames.deliver(job, media, FrameMessage::Failed(message)),
                Ok(message) => {
                    let _ = jobs.unbounded_send(message);
                }
                Err(e) => post(&FromWorker::Fatal(format!(
                    "the page sent a message this worker does not understand ({e}); reload \
                 the page, it may be from another version of sift"
                ))),
            }
        });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    wasm_bindgen_futures::spawn_local(async move {
        let mut worker = Worker::default();
        while let Some(message) = queue.next().await {
            worker.handle(message, &inbox).await;
        }
    });
    post(&FromWorker::Ready {
        default_instruction: sift::DEFAULT_INSTRUCTION.to_string(),
        default_max_length: sift::DEFAULT_MAX_LENGTH,
    });
}
