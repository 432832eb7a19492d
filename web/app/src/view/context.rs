//! What every component of the page needs: the state and the worker, and the actions that use
//! both.

use leptos::prelude::*;
use leptos::task::spawn_local;
use sift_quant::MANIFEST;
use sift_web_protocol::{Media, ModelSource, PdfPart, RerankJob, Side, ToWorker};

use crate::files::add_documents;
use crate::messages::load;
use crate::renderer::Renderer;
use crate::state::{AppState, Item, MediaFile, QUERY_MEDIA, Run, media_id};
use crate::worker::ModelWorker;

/// What every component needs: the state, the model worker and the PDF renderer.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub state: AppState,
    pub worker: StoredValue<ModelWorker, LocalStorage>,
    pub renderer: StoredValue<Renderer, LocalStorage>,
}

impl Ctx {
    pub fn send(&self, message: &ToWorker) {
        self.worker.with_value(|w| w.send(message));
    }

    /// Whether Rerank can run now, or why not (shown on the button's hint).
    pub fn blocked(&self) -> Option<&'static str> {
        let state = self.state;
        if !state.model_ready() {
            Some("Load a model first.")
        } else if state.run.with(|r| r.running) {
            Some("Reranking…")
        } else if state.docs.with(Vec::is_empty) {
            Some("Add at least one document.")
        } else if state.query_text.with(|t| t.trim().is_empty())
            && state.query_image.with(Option::is_none)
            && state.query_video.with(Option::is_none)
        {
            Some("Type a query, or add a query image or video.")
        } else {
            None
        }
    }

    /// Files picked or dropped anywhere: a model folder (it holds the manifest) is loaded as the
    /// model, anything else is added as documents.
    pub fn take_files(&self, files: Vec<web_sys::File>) {
        let state = self.state;
        if files.iter().any(|f| f.name() == MANIFEST) {
            let array: js_sys::Array = files.into_iter().collect();
            self.worker
                .with_value(|w| load(w, state, ModelSource::Files(array)));
        } else {
            spawn_local(add_documents(state, self.renderer.get_value(), files));
        }
    }

    /// Sends the query and every document to the worker; results arrive one by one.
    pub fn rerank(&self) {
        if self.blocked().is_some() {
            return;
        }
        let state = self.state;
        let media = |id: u32, m: &MediaFile| Media {
            id,
            name: m.name.clone(),
            file: m.file.clone().into(),
        };
        let text = state.query_text.get_untracked();
        let query = Side {
            texts: if text.trim().is_empty() {
                Vec::new()
            } else {
                vec![text]
            },
            images: state
                .query_image
                .get_untracked()
                .map(|m| media(QUERY_MEDIA, &m))
                .into_iter()
                .collect(),
            videos: state
                .query_video
                .get_untracked()
                .map(|m| media(QUERY_MEDIA, &m))
                .into_iter()
                .collect(),
            // The query cannot be a PDF (the library's rule).
            pdf: None,
        };
        let docs = state.docs.get_untracked();
        let documents = docs
            .iter()
            .map(|d| {
                let mut side = Side::default();
                for (part, item) in d.parts.iter().enumerate() {
                    match item {
                        Item::Text { text, .. } => side.texts.push(text.clone()),
                        Item::Image(m) => side.images.push(media(media_id(d.id, part), m)),
                        Item::Video(m) => side.videos.push(media(media_id(d.id, part), m)),
                        Item::PdfPage { pdf, page } => {
                            side.pdf = Some(PdfPart {
                                media: Media {
                                    id: media_id(d.id, part),
                                    name: pdf.name.clone(),
                                    file: pdf.file.clone().into(),
                                },
                                page: page.as_ref().ok().copied(),
                            })
                        }
                    }
                }
                side
            })
            .collect();
        let job = state.run.with_untracked(|r| r.job) + 1;
        state.run.set(Run {
            job,
            docs: docs.iter().map(|d| d.id).collect(),
            running: true,
            started: js_sys::Date::now(),
            ..Run::default()
        });
        state.notice.set(None);
        state.interrupted.set(None);
        show_results_on_narrow_screens();
        let instruction = state.instruction.get_untracked();
        self.send(&ToWorker::Rerank(RerankJob {
            job,
            instruction: (!instruction.trim().is_empty()).then_some(instruction),
            query,
            documents,
            fps: state.fps.get_untracked(),
            max_frames: state.max_frames.get_untracked(),
        }));
    }
}

/// On a narrow screen the results come first once a run starts (the stylesheet moves them
/// up): scrolled to, once they have moved, so that they are seen as they arrive.
fn show_results_on_narrow_screens() {
    gloo_timers::callback::Timeout::new(0, || {
        let Some(window) = web_sys::window() else {
            return;
        };
        let narrow = window
            .match_media(NARROW)
            .ok()
            .flatten()
            .is_some_and(|m| m.matches());
        let results = window
            .document()
            .and_then(|d| d.get_element_by_id("results"));
        if let (true, Some(results)) = (narrow, results) {
            results.scroll_into_view();
        }
    })
    .forget();
}

/// The stylesheet's one-column layout.
const NARROW: &str = "(max-width: 860px)";
