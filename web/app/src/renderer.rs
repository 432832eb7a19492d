//! The PDF renderer, seen from the page: a second instance of the worker's code that opens
//! PDFs and draws their pages, one at a time, each under a deadline. wasm32 cannot unwind, so a
//! page that makes the renderer panic or run out of memory ends that worker; a page that takes
//! too long is stopped by ending it. Either way the page starts a new renderer, fails that page
//! (or that PDF) alone with a sentence, and goes on with the rest: the model worker, its model
//! and the run are untouched, as the model worker's own restarts leave the user's inputs.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures::channel::oneshot;
use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use sift_web_protocol::{FromWorker, PdfInfo, RenderSettings, ToWorker, encode};
use wasm_bindgen::prelude::*;
use web_sys::{Blob, File, Url, Worker};

use crate::state::{AppState, PdfFile};
use crate::worker::{launch, post};

/// How long one PDF may take to open, or one page to draw, before the renderer is stopped. A
/// page takes about a second in this page's renderer; a hostile one can take minutes.
pub const DEADLINE_MS: u32 = 30_000;

/// A page drawn at the model's size: its RGB pixels for the model worker and a PNG to show.
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    pub rgb: js_sys::Uint8Array,
    pub preview: Blob,
}

enum Task {
    Open {
        name: String,
        file: File,
        reply: oneshot::Sender<Result<PdfInfo, String>>,
    },
    Render {
        pdf: PdfFile,
        page: u32,
        settings: RenderSettings,
        reply: oneshot::Sender<Result<Rendered, String>>,
    },
}

impl Task {
    /// What the renderer is doing, for the progress line.
    fn doing(&self) -> String {
        match self {
            Task::Open { name, .. } => format!("opening {name}"),
            Task::Render { pdf, page, .. } => {
                format!("rendering {}, page {page} of {}", pdf.name, pdf.pages)
            }
        }
    }

    /// Fails the task with what stopped the renderer.
    fn fail(self, cause: &Stop) {
        match self {
            Task::Open { name, reply, .. } => {
                let what = match cause {
                    Stop::Deadline => format!("took more than {} s to open", DEADLINE_MS / 1000),
                    Stop::Crashed(detail) => {
                        format!("stopped the PDF renderer while it was being opened ({detail})")
                    }
                };
                let _ = reply.send(Err(format!(
                    "{name} {what}, so it cannot be ranked here. Open it in a PDF reader and \
                     print it to a new PDF (\"Save as PDF\"), remove it here and add the new \
                     file."
                )));
            }
            Task::Render {
                pdf, page, reply, ..
            } => {
                let what = match cause {
                    Stop::Deadline => format!(
                        "took more than {} s to draw and was stopped",
                        DEADLINE_MS / 1000
                    ),
                    Stop::Crashed(detail) => format!(
                        "stopped the PDF renderer ({detail}): it is damaged, or drawing it \
                         needs more memory than this tab has"
                    ),
                };
                let _ = reply.send(Err(format!(
                    "Page {page} of {} {what}, so it was not ranked; the other documents are. \
                     Remove this page here; or, for all its pages, open the PDF in a PDF \
                     reader and print it to a new PDF (\"Save as PDF\"), remove it here and \
                     add the new file.",
                    pdf.name
                )));
            }
        }
    }
}

/// What stopped the renderer on a task.
enum Stop {
    Deadline,
    /// It aborted or threw: the browser's message.
    Crashed(String),
}

struct Current {
    request: u32,
    task: Task,
    _deadline: Timeout,
}

#[derive(Default)]
struct Inner {
    worker: Option<Worker>,
    /// Which start of the renderer this is: events of an ended one are ignored.
    generation: u32,
    ready: bool,
    handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    script_url: Option<String>,
    queue: VecDeque<Task>,
    /// The task the renderer is on: one at a time, so that its deadline and a crash belong to
    /// it alone.
    current: Option<Current>,
    next_request: u32,
    /// Why the renderer cannot start, once it failed to: tasks then fail at once.
    broken: Option<String>,
}

/// A cheap handle to the renderer; clones share it.
#[derive(Clone)]
pub struct Renderer {
    inner: Rc<RefCell<Inner>>,
    state: AppState,
}

impl Renderer {
    /// The renderer starts with the first PDF: a page without PDFs never loads a second copy
    /// of the worker's code.
    pub fn new(state: AppState) -> Self {
        Self {
            inner: Rc::default(),
            state,
        }
    }

    /// Opens a PDF: its page count and the limits on pages, or why it cannot be opened.
    pub async fn open(&self, file: &File) -> Result<PdfInfo, String> {
        let (reply, answer) = oneshot::channel();
        self.push(Task::Open {
            name: file.name(),
            file: file.clone(),
            reply,
        });
        answer.await.unwrap_or_else(|_| Err(stopped(&file.name())))
    }

    /// Draws `page` of `pdf` at the model's `settings`.
    pub async fn render(
        &self,
        pdf: PdfFile,
        page: u32,
        settings: RenderSettings,
    ) -> Result<Rendered, String> {
        let name = pdf.name.clone();
        let (reply, answer) = oneshot::channel();
        self.push(Task::Render {
            pdf,
            page,
            settings,
            reply,
        });
        answer.await.unwrap_or_else(|_| Err(stopped(&name)))
    }

    fn push(&self, task: Task) {
        let broken = self.inner.borrow().broken.clone();
        match broken {
            Some(why) => task.fail(&Stop::Crashed(why)),
            None => {
                let started = {
                    let mut inner = self.inner.borrow_mut();
                    inner.queue.push_back(task);
                    inner.worker.is_some()
                };
                if started {
                    self.next();
                } else {
                    self.spawn();
                }
            }
        }
    }

    fn spawn(&self) {
        let generation = self.inner.borrow().generation;
        let on_message = {
            let this = self.clone();
            move |message: Result<FromWorker, String>| {
                if this.inner.borrow().generation != generation {
                    return;
                }
                match message {
                    Ok(message) => this.receive(message),
                    Err(e) => this.died(&format!("it sent a message the page cannot read: {e}")),
                }
            }
        };
        let on_error = {
            let this = self.clone();
            move |detail: String| {
                if this.inner.borrow().generation == generation {
                    this.died(&detail);
                }
            }
        };
        match launch("sift-renderer", on_message, on_error) {
            Ok(launched) => {
                let mut inner = self.inner.borrow_mut();
                inner.worker = Some(launched.worker);
                inner.ready = false;
                inner.handlers = launched.handlers;
                inner.script_url = Some(launched.script_url);
            }
            Err(e) => self.cannot_start(&format!("{e:?}")),
        }
    }

    /// Sends the next task if the renderer is ready and idle, under its deadline.
    fn next(&self) {
        let doing = self.send_next();
        if let Some(doing) = doing {
            self.state.pdf_activity.set(doing);
        }
    }

    /// Sends the next task if it can: what the renderer is doing now, if that changed.
    fn send_next(&self) -> Option<Option<String>> {
        let mut inner = self.inner.borrow_mut();
        if !inner.ready || inner.current.is_some() {
            return None;
        }
        let Some(task) = inner.queue.pop_front() else {
            return Some(None);
        };
        inner.next_request += 1;
        let request = inner.next_request;
        let message = match &task {
            Task::Open { name, file, .. } => ToWorker::OpenPdf {
                request,
                name: name.clone(),
                file: file.clone().into(),
            },
            Task::Render {
                pdf,
                page,
                settings,
                ..
            } => ToWorker::RenderPage {
                request,
                pdf: pdf.id,
                name: pdf.name.clone(),
                file: pdf.file.clone().into(),
                page: *page,
                settings: settings.clone(),
            },
        };
        let doing = task.doing();
        let deadline = {
            let this = self.clone();
            Timeout::new(DEADLINE_MS, move || this.timed_out(request))
        };
        if let Some(worker) = &inner.worker {
            post(worker, &encode(&message), None);
        }
        inner.current = Some(Current {
            request,
            task,
            _deadline: deadline,
        });
        Some(Some(doing))
    }

    fn receive(&self, message: FromWorker) {
        match message {
            FromWorker::Ready { .. } => {
                {
                    let mut inner = self.inner.borrow_mut();
                    inner.ready = true;
                    if let Some(url) = inner.script_url.take() {
                        let _ = Url::revoke_object_url(&url);
                    }
                }
                self.next();
            }
            FromWorker::Fatal(detail) => self.died(&detail),
            FromWorker::PdfOpened { request, result } => {
                if let Some(Task::Open { reply, .. }) = self.finish(request) {
                    let _ = reply.send(result);
                }
            }
            FromWorker::PageRendered {
                request,
                width,
                height,
                rgb,
                preview,
            } => {
                if let Some(Task::Render { reply, .. }) = self.finish(request) {
                    let _ = reply.send(Ok(Rendered {
                        width,
                        height,
                        rgb,
                        preview,
                    }));
                }
            }
            FromWorker::PageNotRendered { request, message } => {
                if let Some(Task::Render { reply, .. }) = self.finish(request) {
                    let _ = reply.send(Err(message));
                }
            }
            // The renderer is sent nothing else, so it answers nothing else.
            _ => {}
        }
    }

    /// The task `request` is answered: the next one goes.
    fn finish(&self, request: u32) -> Option<Task> {
        let task = {
            let mut inner = self.inner.borrow_mut();
            match &inner.current {
                Some(current) if current.request == request => inner.current.take().map(|c| c.task),
                _ => None,
            }
        };
        self.next();
        task
    }

    fn timed_out(&self, request: u32) {
        let current = self.inner.borrow().current.as_ref().map(|c| c.request);
        if current == Some(request) {
            self.restart(Stop::Deadline);
        }
    }

    /// The renderer stopped (a panic or a failed allocation aborts it): the task it was on
    /// fails, a new renderer takes the rest. One that stops before it is ready cannot start
    /// at all: its tasks fail and it is not started again.
    fn died(&self, detail: &str) {
        if self.inner.borrow().ready {
            self.restart(Stop::Crashed(detail.trim_end_matches('.').to_string()));
            return;
        }
        self.cannot_start(detail);
    }

    fn cannot_start(&self, detail: &str) {
        let why = format!("it could not start: {detail}");
        let queued = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            if let Some(worker) = inner.worker.take() {
                worker.terminate();
            }
            inner.broken = Some(why.clone());
            std::mem::take(&mut inner.queue)
        };
        for task in queued {
            task.fail(&Stop::Crashed(why.clone()));
        }
        self.state.pdf_activity.set(None);
        self.state.notice.set(Some(format!(
            "The PDF renderer could not start ({detail}), so PDFs cannot be read. Reload the page."
        )));
    }

    fn restart(&self, cause: Stop) {
        let current = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            if let Some(worker) = inner.worker.take() {
                worker.terminate();
            }
            inner.ready = false;
            inner.current.take()
        };
        if let Some(current) = current {
            current.task.fail(&cause);
        }
        // A new renderer for the tasks waiting, else with the next one.
        if self.inner.borrow().queue.is_empty() {
            self.state.pdf_activity.set(None);
        } else {
            self.state
                .pdf_activity
                .set(Some("restarting the PDF renderer".into()));
            self.spawn();
        }
    }
}

/// A task whose answer was dropped (the page is going away).
fn stopped(name: &str) -> String {
    format!("{name} was not read: the PDF renderer stopped. Reload the page and add it again.")
}
