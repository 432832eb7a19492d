//! Frames of a video, captured on the page: a hidden `<video>` element is seeked to each time
//! the worker asks for (sift chose the frames from the file's container, as the reference
//! samples them), each frame drawn on a canvas and its pixels moved to the worker. The same
//! player draws each video's poster frame, so that lists show a picture instead of a black box.

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

/// The widest poster frame kept (lists show videos at most a few hundred pixels wide).
const POSTER_WIDTH: u32 = 480;

/// Captures the frames of `file` at `seek_times` and sends them to the worker; a failure is
/// sent as the sentence the user will read (the worker puts the file's name before it).
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
    let player = Player::open(file, None).await?;
    for (index, &time) in times.iter().enumerate() {
        player.show(time).await?;
        let data = player.pixels()?;
        // The pixels as a JS array, moved to the worker without a copy into this page's memory.
        let buffer = data.buffer();
        worker.send_with_transfer(
            &ToWorker::Frame {
                job,
                video: video_id,
                index,
                width: player.width,
                height: player.height,
                rgba: js_sys::Uint8Array::new(&buffer),
            },
            Some(js_sys::Array::of1(&buffer)),
        );
    }
    Ok(())
}

/// A frame from a fifth of the way into the video (its first is often black, a fade-in), at
/// most 3 s in, as a JPEG `data:` URL; `None` if the browser cannot play the file.
pub async fn poster(file: &File) -> Option<String> {
    let player = Player::open(file, Some(POSTER_WIDTH)).await.ok()?;
    let duration = player.video.duration();
    let time = if duration.is_finite() {
        (duration * 0.2).min(3.0)
    } else {
        0.0
    };
    player.show(time).await.ok()?;
    player.draw().ok()?;
    player.canvas.to_data_url_with_type("image/jpeg").ok()
}

/// A hidden `<video>` playing a file, and a canvas its frames are drawn on; both removed, and
/// the file's URL revoked, when dropped.
struct Player {
    video: HtmlVideoElement,
    target: EventTarget,
    url: String,
    canvas: HtmlCanvasElement,
    context: CanvasRenderingContext2d,
    /// The canvas's size: the video's, or scaled down to a poster's width.
    width: u32,
    height: u32,
}

impl Player {
    /// Loads `file` until its first frame can be shown; `max_width` scales the canvas down.
    async fn open(file: &File, max_width: Option<u32>) -> Result<Self, String> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("the page has no document")?;
        let video: HtmlVideoElement = document
            .create_element("video")
            .map_err(|_| "this browser has no video player")?
            .unchecked_into();
        video.set_muted(true);
        video.set_preload("auto");
        let _ = video.set_attribute("class", "capture");
        let canvas: HtmlCanvasElement = document
            .create_element("canvas")
            .map_err(|_| "this browser has no canvas")?
            .unchecked_into();
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&options, &"willReadFrequently".into(), &true.into());
        let context: CanvasRenderingContext2d = canvas
            .get_context_with_context_options("2d", &options)
            .ok()
            .flatten()
            .ok_or("this browser has no 2D canvas")?
            .unchecked_into();
        let url = web_sys::Url::create_object_url_with_blob(file)
            .map_err(|_| "the file is no longer readable; remove it and add it again.")?;
        if let Some(body) = document.body() {
            let _ = body.append_child(&video);
        }
        let mut player = Self {
            target: video.clone().unchecked_into(),
            video,
            url,
            canvas,
            context,
            width: 0,
            height: 0,
        };
        let loaded = next_event(&player.target, &["loadeddata", "error"]);
        player.video.set_src(&player.url);
        if loaded.await.as_deref() != Some("loadeddata") {
            let code = player.video.error().map(|e| e.code()).unwrap_or(0);
            return Err(format!(
                "this browser cannot play it (media error {code}). Convert it to MP4 (H.264) \
                 or WebM (VP9) with a video converter, remove it here and add the converted \
                 file, or open this page in a browser that plays it."
            ));
        }
        let (width, height) = (player.video.video_width(), player.video.video_height());
        if width == 0 || height == 0 {
            return Err("it has no picture this browser can show.".into());
        }
        let scale = max_width.map_or(1.0, |max| (f64::from(max) / f64::from(width)).min(1.0));
        player.width = ((f64::from(width) * scale).round() as u32).max(1);
        player.height = ((f64::from(height) * scale).round() as u32).max(1);
        player.canvas.set_width(player.width);
        player.canvas.set_height(player.height);
        Ok(player)
    }

    /// Seeks to `time` (seconds) and waits until that frame is shown.
    async fn show(&self, time: f64) -> Result<(), String> {
        // The last frame's midpoint may lie past the end the element reports.
        let duration = self.video.duration();
        let time = if duration.is_finite() {
            time.min(duration - 1e-3).max(0.0)
        } else {
            time
        };
        let seeked = next_event(&self.target, &["seeked", "error"]);
        // Asked before the seek, so that a frame presented before `seeked` fires is not missed.
        let presented = FramePresented::request(&self.video);
        self.video.set_current_time(time);
        let timeout =
            gloo_timers::future::TimeoutFuture::new(SEEK_TIMEOUT_MS).map(|_| None::<String>);
        match futures::future::select(Box::pin(seeked), Box::pin(timeout)).await {
            futures::future::Either::Left((Some(event), _)) if event == "seeked" => {}
            futures::future::Either::Left(_) => {
                return Err(format!(
                    "this browser failed to show its frame at {time:.2} s; the file may be \
                     damaged. Remove it and add a complete copy."
                ));
            }
            futures::future::Either::Right(_) => {
                return Err(format!(
                    "this browser did not reach {time:.2} s in it within {} s. Remove it and \
                     add it again, or convert it to MP4 (H.264) or WebM (VP9).",
                    SEEK_TIMEOUT_MS / 1000
                ));
            }
        }
        // Under load, `seeked` can fire while the element still shows the previous frame.
        presented.wait(PRESENT_TIMEOUT_MS).await;
        Ok(())
    }

    /// Draws the frame shown onto the canvas, scaled to its size.
    fn draw(&self) -> Result<(), String> {
        self.context
            .draw_image_with_html_video_element_and_dw_and_dh(
                &self.video,
                0.0,
                0.0,
                f64::from(self.width),
                f64::from(self.height),
            )
            .map_err(|_| "this browser could not draw its frame.".to_string())
    }

    /// The frame shown, as RGBA pixels.
    fn pixels(&self) -> Result<js_sys::Uint8ClampedArray, String> {
        self.draw()?;
        let unreadable = |_| "this browser could not read its frame's pixels.".to_string();
        let image = self
            .context
            .get_image_data(0.0, 0.0, f64::from(self.width), f64::from(self.height))
            .map_err(unreadable)?;
        Ok(js_sys::Reflect::get(&image, &"data".into())
            .map_err(unreadable)?
            .unchecked_into())
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.video.remove();
        let _ = web_sys::Url::revoke_object_url(&self.url);
    }
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
