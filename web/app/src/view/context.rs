//! What every component of the page needs: the state and the worker, and the actions that use
//! both.

use leptos::prelude::*;
use leptos::task::spawn_local;
use sift_quant::MANIFEST;
use sift_web_protocol::{Media, ModelSource, RerankJob, Side, ToWorker};

use crate::files::add_documents;
use crate::messages::load;
use crate::state::{AppState, Item, MediaFile, QUERY_MEDIA, Run};
use crate::worker::ModelWorker;

/// What every component needs: the state and the worker.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub state: AppState,
    pub worker: StoredValue<ModelWorker, LocalStorage>,
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
            spawn_local(add_documents(state, files));
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
        };
        let docs = state.docs.get_untracked();
        let documents = docs
            .iter()
            .map(|d| match &d.item {
                Item::Text { text, .. } => Side {
                    texts: vec![text.clone()],
                    ..Side::default()
                },
                Item::Image(m) => Side {
                    images: vec![media(d.id, m)],
                    ..Side::default()
                },
                Item::Video(m) => Side {
                    videos: vec![media(d.id, m)],
                    ..Side::default()
                },
            })
            .collect();
        let job = state.run.with_untracked(|r| r.job) + 1;
        state.run.set(Run {
            job,
            docs: docs.iter().map(|d| d.id).collect(),
            running: true,
            ..Run::default()
        });
        state.notice.set(None);
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
