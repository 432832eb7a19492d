//! The model worker, seen from the page: started from a `blob:` script (so it inherits the
//! page's Content-Security-Policy, and may fetch only where the page may), sent messages once
//! it is ready, and restarted when it dies (a GPU lost or out of memory, a crash), reloading
//! the model from storage. The user's inputs live in the page and are never touched.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use sift_web_protocol::{FromWorker, ModelSource, ToWorker, decode, encode};
use wasm_bindgen::prelude::*;
use web_sys::{Blob, BlobPropertyBag, MessageEvent, Url, Worker};

use crate::config::asset_url;
use crate::state::{AppState, ModelState};

/// The running worker, and what to send it once it says it is ready.
#[derive(Default)]
struct Inner {
    worker: Option<Worker>,
    ready: bool,
    queued: Vec<(JsValue, Option<js_sys::Array>)>,
    /// The model to load again after a restart.
    loaded: Option<ModelSource>,
    /// Handlers, kept alive with the worker.
    handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    /// The `blob:` URL the worker started from, revoked once it runs.
    script_url: Option<String>,
}

/// What the page does with each message from the worker (its readiness and its death are
/// handled here first).
pub type Handler = Rc<dyn Fn(&ModelWorker, AppState, FromWorker)>;

/// A cheap handle to the worker; clones share it.
#[derive(Clone)]
pub struct ModelWorker {
    inner: Rc<RefCell<Inner>>,
    state: AppState,
    handle: Handler,
}

impl ModelWorker {
    pub fn start(state: AppState, handle: Handler) -> Self {
        let worker = Self {
            inner: Rc::default(),
            state,
            handle,
        };
        worker.spawn();
        worker
    }

    fn spawn(&self) {
        let on_message = {
            let this = self.clone();
            move |message: Result<FromWorker, String>| match message {
                Ok(message) => this.receive(message),
                Err(e) => this.died(&format!("it sent a message the page cannot read ({e})")),
            }
        };
        let on_error = {
            let this = self.clone();
            move |detail: String| this.died(&detail)
        };
        let launched = match launch("sift-model", on_message, on_error) {
            Ok(launched) => launched,
            Err(e) => {
                self.state.model.set(ModelState::Failed(format!(
                    "the model worker could not start ({e:?}); reload the page"
                )));
                return;
            }
        };
        let mut inner = self.inner.borrow_mut();
        inner.worker = Some(launched.worker);
        inner.ready = false;
        inner.handlers = launched.handlers;
        inner.script_url = Some(launched.script_url);
    }

    /// Sends a message now, or once the worker is ready.
    pub fn send(&self, message: &ToWorker) {
        self.send_with_transfer(message, None);
    }

    /// Sends a message whose `transfer` objects (pixel buffers) move to the worker.
    pub fn send_with_transfer(&self, message: &ToWorker, transfer: Option<js_sys::Array>) {
        if let ToWorker::Load { source, .. } = message {
            self.inner.borrow_mut().loaded = Some(source.clone());
        }
        let value = encode(message);
        let mut inner = self.inner.borrow_mut();
        match (&inner.worker, inner.ready) {
            (Some(worker), true) => post(worker, &value, transfer.as_ref()),
            _ => inner.queued.push((value, transfer)),
        }
    }

    /// Where the model in use (or last asked for) came from, to load it again.
    pub fn loaded(&self) -> Option<ModelSource> {
        self.inner.borrow().loaded.clone()
    }

    /// Forgets the model to reload after a restart (it was removed).
    pub fn forget_model(&self) {
        self.inner.borrow_mut().loaded = None;
    }

    fn receive(&self, message: FromWorker) {
        if let FromWorker::Ready {
            default_instruction,
            default_max_length,
        } = &message
        {
            self.state
                .default_instruction
                .set(default_instruction.clone());
            self.state.default_max_length.set(*default_max_length);
            let queued = {
                let mut inner = self.inner.borrow_mut();
                inner.ready = true;
                if let Some(url) = inner.script_url.take() {
                    let _ = Url::revoke_object_url(&url);
                }
                std::mem::take(&mut inner.queued)
            };
            let inner = self.inner.borrow();
            if let Some(worker) = &inner.worker {
                for (value, transfer) in queued {
                    post(worker, &value, transfer.as_ref());
                }
            }
        }
        if let FromWorker::Fatal(detail) = &message {
            self.died(detail);
            return;
        }
        (self.handle)(self, self.state, message);
    }

    /// The worker stopped: end it, say why and what happens, and start a new one that loads
    /// the model again from storage. Documents not yet scored keep their place.
    fn died(&self, detail: &str) {
        if let Some(worker) = self.inner.borrow_mut().worker.take() {
            worker.terminate();
        }
        let state = self.state;
        let was_running = state.run.with_untracked(|run| run.running);
        state.run.update(|run| run.running = false);
        state.notice.set(Some(explain_crash(detail, was_running)));
        let reload = self.inner.borrow().loaded.clone();
        state.model.set(ModelState::Starting);
        self.spawn();
        self.send(&ToWorker::Probe);
        // The same source again: its files are in storage now, so nothing is fetched.
        match reload {
            Some(source) => self.send(&state.load_message(source)),
            None => state.model.set(ModelState::Idle),
        }
    }
}

/// What the user reads when the worker died, by what killed it.
fn explain_crash(detail: &str, was_running: bool) -> String {
    let lower = detail.to_lowercase();
    let cause = if lower.contains("out of memory") || lower.contains("outofmemory") {
        "The GPU ran out of memory. Rerank fewer or smaller images and videos at a time (lower \
         \"max frames\"), close other tabs that use the GPU, or use a smaller model."
            .to_string()
    } else if lower.contains("lost") {
        "The GPU was lost (its driver restarted, or the browser reclaimed it). ".to_string()
    } else {
        format!("The model worker stopped: {detail}.")
    };
    let after = if was_running {
        " It has been restarted and the model is loading again from this browser's storage; \
         your query and documents are kept. Press Rerank to try again."
    } else {
        " It has been restarted and the model is loading again from this browser's storage; \
         your query and documents are kept."
    };
    format!("{cause}{after}")
}

/// A started worker (sift-worker's code, which says `Ready` once it runs), with the handlers
/// that must live as long as it does and the `blob:` URL it started from.
pub struct Launched {
    pub worker: Worker,
    pub handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    pub script_url: String,
}

/// Starts sift's worker code in a new worker named `name` (as developer tools list it):
/// `message` gets each message (or why it cannot be read), `error` why the worker stopped (an
/// uncaught error; a panic, which aborts wasm, ends in one).
pub fn launch(
    name: &str,
    message: impl Fn(Result<FromWorker, String>) + 'static,
    error: impl Fn(String) + 'static,
) -> Result<Launched, JsValue> {
    let script = format!(
        "importScripts({});wasm_bindgen({{module_or_path:{}}});",
        js_string(&asset_url("sift-worker.js")),
        js_string(&asset_url("sift-worker_bg.wasm"))
    );
    let script_url = blob_url(&script)?;
    // `new Worker(url, { name })`, built by hand: this build of web-sys has no `WorkerOptions`.
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"name".into(), &name.into())?;
    let class = js_sys::Reflect::get(&js_sys::global(), &"Worker".into())?;
    let worker: Worker = js_sys::Reflect::construct(
        class.unchecked_ref::<js_sys::Function>(),
        &js_sys::Array::of2(&script_url.clone().into(), &options),
    )?
    .unchecked_into();
    let on_message = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let event: MessageEvent = event.unchecked_into();
        message(decode::<FromWorker>(event.data()));
    });
    // A plain `Event` when the script cannot load, an `ErrorEvent` for an uncaught error.
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        error(
            event
                .dyn_ref::<web_sys::ErrorEvent>()
                .map(|e| e.message())
                .unwrap_or_else(|| "its code could not be loaded".into()),
        );
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Ok(Launched {
        worker,
        handlers: vec![on_message, on_error],
        script_url,
    })
}

/// Posts a message, moving the `transfer` objects (pixel buffers) with it.
pub fn post(worker: &Worker, value: &JsValue, transfer: Option<&js_sys::Array>) {
    // Posting fails only for values that cannot be cloned, which protocol messages never are.
    let _ = match transfer {
        Some(list) => worker.post_message_with_transfer(value, list),
        None => worker.post_message(value),
    };
}

fn js_string(text: &str) -> String {
    js_sys::JSON::stringify(&JsValue::from_str(text))
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

fn blob_url(script: &str) -> Result<String, JsValue> {
    let options = BlobPropertyBag::new();
    options.set_type("text/javascript");
    let parts = js_sys::Array::of1(&JsValue::from_str(script));
    let blob = Blob::new_with_str_sequence_and_options(&parts, &options)?;
    Url::create_object_url_with_blob(&blob)
}
