//! Frames of a video, captured on the page: a hidden `<video>` element is seeked to each time
//! the worker asks for (sift chose the frames from the file's container, as the reference
//! samples them), each frame drawn on a canvas and its pixels moved to the worker.

use std::cell::RefCell;
use std::rc::Rc;

use futures::FutureExt;
use futures::channel::oneshot;
use sift_web_protocol::ToWorker;
use wasm_bindgen::prelude::*;
use web_sys::{CanvasRenderingContext2d, EventTarget, File, HtmlCanvasElement, HtmlVideoElement};

use crate::worker::ModelWorker;

/// How long one seek may take before the video is declared unplayable.
const SEEK_TIMEOUT_MS: u32 = 20_000;

/// How long to wait, after `seeked`, for the element to present the sought frame. A seek that
/// lands on the frame already shown presents nothing, so the wait must end on its own.
const PRESENT_TIMEOUT_MS: u32 = 1_000;

/// Captures the frames of `file` at `seek_times` and sends them to the worker; a failure is
/// sent as the sentence the user will read.
pub async fn send_frames(worker: ModelWorker, job: u32, video: u32, file: File, times: Vec<f64>) {
    let sent = capture(&worker, job, video, &file, &times).await;
    if let Err(message) = sent {
        worker.send(&ToWorker::FramesFailed {
            job,
            video,
            message,
        });
    }
}

async fn capture(
    worker: &ModelWorker,
    job: u32,
    video_id: u32,
    file: &File,
    times: &[f64],
) -> Result<(), String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let video: HtmlVideoElement = document
        .create_element("video")
        .map_err(|_| "no video element")?
        .unchecked_into();
    video.set_muted(true);
    video.set_preload("auto");
    let _ = video.set_attribute("class", "capture");
    let url = web_sys::Url::create_object_url_with_blob(file).map_err(|_| "the file is gone")?;
    let body = document.body().ok_or("no body")?;
    let _ = body.append_child(&video);
    let result = capture_from(worker, job, video_id, &video, &url, times, &document).await;
    video.remove();
    let _ = web_sys::Url::revoke_object_url(&url);
    result
}

async fn capture_from(
    worker: &ModelWorker,
    job: u32,
    video_id: u32,
    video: &HtmlVideoElement,
    url: &str,
    times: &[f64],
    document: &web_sys::Document,
) -> Result<(), String> {
    let target: EventTarget = video.clone().unchecked_into();
    let loaded = next_event(&target, &["loadeddata", "error"]);
    video.set_src(url);
    if loaded.await.as_deref() != Some("loadeddata") {
        let code = video.error().map(|e| e.code()).unwrap_or(0);
        return Err(format!(
            "this browser cannot play the video (media error {code}); convert it to H.264 MP4 \
             or VP9 WebM (e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4`) or use a \
             browser that plays it"
        ));
    }
    let (width, height) = (video.video_width(), video.video_height());
    if width == 0 || height == 0 {
        return Err("the video has no picture this browser can show".into());
    }
    let canvas: HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(|_| "no canvas")?
        .unchecked_into();
    canvas.set_width(width);
    canvas.set_height(height);
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"willReadFrequently".into(), &true.into());
    let context: CanvasRenderingContext2d = canvas
        .get_context_with_context_options("2d", &options)
        .ok()
        .flatten()
        .ok_or("no 2D canvas")?
        .unchecked_into();
    let duration = video.duration();
    for (index, &time) in times.iter().enumerate() {
        // The last frame's midpoint may lie past the end the element reports.
        let time = if duration.is_finite() {
            time.min(duration - 1e-3).max(0.0)
        } else {
            time
        };
        let seeked = next_event(&target, &["seeked", "error"]);
        // Asked before the seek, so that a frame presented before `seeked` fires is not missed.
        let presented = FramePresented::request(video);
        video.set_current_time(time);
        let timeout =
            gloo_timers::future::TimeoutFuture::new(SEEK_TIMEOUT_MS).map(|_| None::<String>);
        match futures::future::select(Box::pin(seeked), Box::pin(timeout)).await {
            futures::future::Either::Left((Some(event), _)) if event == "seeked" => {}
            futures::future::Either::Left(_) => {
                return Err(format!(
                    "the browser failed to show the frame at {time:.2} s; the file may be damaged"
                ));
            }
            futures::future::Either::Right(_) => {
                return Err(format!(
                    "the browser did not reach {time:.2} s in the video within {} s",
                    SEEK_TIMEOUT_MS / 1000
                ));
            }
        }
        // Under load, `seeked` can fire while the element still shows the previous frame.
        presented.wait(PRESENT_TIMEOUT_MS).await;
        context
            .draw_image_with_html_video_element(video, 0.0, 0.0)
            .map_err(|_| "the frame could not be drawn")?;
        let image = context
            .get_image_data(0.0, 0.0, f64::from(width), f64::from(height))
            .map_err(|_| "the frame's pixels could not be read")?;
        // The pixels as a JS array, moved to the worker without a copy into this page's memory.
        let data: js_sys::Uint8ClampedArray = js_sys::Reflect::get(&image, &"data".into())
            .map_err(|_| "the frame's pixels could not be read")?
            .unchecked_into();
        let buffer = data.buffer();
        worker.send_with_transfer(
            &ToWorker::Frame {
                job,
                video: video_id,
                index,
                width,
                height,
                rgba: js_sys::Uint8Array::new(&buffer),
            },
            Some(js_sys::Array::of1(&buffer)),
        );
    }
    Ok(())
}

/// The element's next presented frame, through `requestVideoFrameCallback` (not in web-sys's
/// stable API; called by name). Browsers without it fall back to drawing after `seeked`.
struct FramePresented {
    video: HtmlVideoElement,
    /// `None` where the browser has no `requestVideoFrameCallback`.
    request: Option<FrameRequest>,
    receiver: oneshot::Receiver<()>,
}

/// A frame callback asked of the browser: its handle, and the callback, kept alive until it
/// fires or is cancelled.
struct FrameRequest {
    handle: JsValue,
    _callback: Closure<dyn FnMut(JsValue, JsValue)>,
}

impl FramePresented {
    fn request(video: &HtmlVideoElement) -> Self {
        let (sender, receiver) = oneshot::channel();
        let mut sender = Some(sender);
        let callback = Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_, _| {
            if let Some(sender) = sender.take() {
                let _ = sender.send(());
            }
        });
        let request = js_sys::Reflect::get(video, &"requestVideoFrameCallback".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .and_then(|f| f.call1(video, callback.as_ref()).ok())
            .map(|handle| FrameRequest {
                handle,
                _callback: callback,
            });
        Self {
            video: video.clone(),
            request,
            receiver,
        }
    }

    /// Waits for the frame, at most `timeout_ms`; returns at once where the browser cannot tell.
    async fn wait(mut self, timeout_ms: u32) {
        if self.request.is_some() {
            let timeout = gloo_timers::future::TimeoutFuture::new(timeout_ms);
            futures::future::select(&mut self.receiver, timeout).await;
        }
    }
}

impl Drop for FramePresented {
    /// Cancelled before the callback is freed, so the browser never calls a freed one (a no-op
    /// once it has fired).
    fn drop(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        let cancel = js_sys::Reflect::get(&self.video, &"cancelVideoFrameCallback".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        if let Some(cancel) = cancel {
            let _ = cancel.call1(&self.video, &request.handle);
        }
    }
}

/// The name of whichever of `names` fires first on `target`, or `None` if none can. The
/// listeners are in place when this returns, before the caller triggers the event.
fn next_event(
    target: &EventTarget,
    names: &[&'static str],
) -> impl std::future::Future<Output = Option<String>> + use<> {
    let (sender, receiver) = oneshot::channel::<String>();
    let sender = Rc::new(RefCell::new(Some(sender)));
    let listeners: Vec<_> = names
        .iter()
        .map(|&name| {
            let sender = sender.clone();
            gloo_events::EventListener::once(target, name, move |_| {
                if let Some(sender) = sender.borrow_mut().take() {
                    let _ = sender.send(name.to_string());
                }
            })
        })
        .collect();
    async move {
        let name = receiver.await.ok();
        drop(listeners);
        name
    }
}
