//! What the page holds: the user's query and documents (never lost, whatever the worker does),
//! the model's state, and the results of the last rerank.

use std::collections::HashMap;

use leptos::prelude::*;
use sift_web_protocol::{Fit, GpuInfo, ModelSummary, Stage, StorageInfo, StoredModel, VideoSample};
use web_sys::File;

use crate::kept_files;

/// An image or video the user added, with an object URL for showing it.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaFile {
    pub name: String,
    pub file: File,
    pub url: String,
}

impl MediaFile {
    pub fn new(file: File) -> Self {
        let url = web_sys::Url::create_object_url_with_blob(&file).unwrap_or_default();
        Self {
            name: file.name(),
            file,
            url,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// Typed or pasted text, or a text file's contents (`name` is the file's).
    Text {
        text: String,
        name: Option<String>,
    },
    Image(MediaFile),
    Video(MediaFile),
}

impl Item {
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Text { .. } => "text",
            Item::Image(_) => "image",
            Item::Video(_) => "video",
        }
    }

    /// A short name for lists: the file name, or the text's first words.
    pub fn label(&self) -> String {
        match self {
            Item::Text {
                name: Some(name), ..
            } => name.clone(),
            Item::Text { text, .. } => excerpt(text, 60),
            Item::Image(m) | Item::Video(m) => m.name.clone(),
        }
    }
}

/// The first `chars` characters of `text` on one line, with an ellipsis if cut.
pub fn excerpt(text: &str, chars: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = line.chars().take(chars).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    cut
}

/// The media id of the query's video in frame requests (documents use their own ids, from 1).
pub const QUERY_MEDIA: u32 = 0;

/// A document: an id the page gives it, and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    pub id: u32,
    pub item: Item,
}

/// The result of one document in the last rerank.
#[derive(Clone, Debug, PartialEq)]
pub struct DocResult {
    pub score: Result<f32, String>,
    pub videos: Vec<VideoSample>,
}

/// Where a long step is, and when it started (for the rate and the time left).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
    pub detail: String,
    /// `done` and the clock (ms) when this stage started.
    pub started: (u64, f64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ModelState {
    /// The worker is starting or looking at the GPU.
    Starting,
    /// No model loaded yet.
    Idle,
    Working(Progress),
    Ready(ModelSummary),
    Failed(String),
}

/// The rerank in progress or last done.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub job: u32,
    /// The documents of the job, in request order: by their page id.
    pub docs: Vec<u32>,
    pub results: HashMap<u32, DocResult>,
    /// Page ids, best first, of the documents scored so far.
    pub order: Vec<u32>,
    pub running: bool,
    /// The CLI-shaped JSON of a finished run.
    pub export: Option<String>,
}

/// All the page's state, as signals; `Copy`, so every component and callback takes it.
#[derive(Clone, Copy)]
pub struct AppState {
    pub gpu: RwSignal<Option<Result<GpuInfo, String>>>,
    pub storage: RwSignal<StorageInfo>,
    pub stored: RwSignal<Vec<StoredModel>>,
    pub persisted: RwSignal<Option<bool>>,
    pub model: RwSignal<ModelState>,
    pub fit: RwSignal<Option<Fit>>,
    pub model_url: RwSignal<String>,
    /// The Hugging Face repository (or hub-style folder URL) in the box.
    pub hub_repo: RwSignal<String>,
    /// Whether the model is to compute its linear layers in f16 where the GPU has it: faster,
    /// scores slightly off full precision, so the user's choice (off at first).
    pub f16: RwSignal<bool>,
    /// The instruction typed; empty means the model's default, shown as its placeholder.
    pub instruction: RwSignal<String>,
    /// The library's default instruction, as the worker reports it.
    pub default_instruction: RwSignal<String>,
    pub query_text: RwSignal<String>,
    pub query_image: RwSignal<Option<MediaFile>, LocalStorage>,
    pub query_video: RwSignal<Option<MediaFile>, LocalStorage>,
    pub fps: RwSignal<f64>,
    pub max_frames: RwSignal<usize>,
    pub docs: RwSignal<Vec<Doc>, LocalStorage>,
    pub next_id: RwSignal<u32>,
    pub run: RwSignal<Run>,
    /// A problem to show at the top of the page: the worker stopped, a file was refused.
    pub notice: RwSignal<Option<String>>,
}

impl AppState {
    pub fn new() -> Self {
        Self {
            gpu: RwSignal::new(None),
            storage: RwSignal::new(StorageInfo::default()),
            stored: RwSignal::new(Vec::new()),
            persisted: RwSignal::new(None),
            model: RwSignal::new(ModelState::Starting),
            fit: RwSignal::new(None),
            model_url: RwSignal::new(crate::config::default_model_url()),
            hub_repo: RwSignal::new(crate::config::default_hub_repo()),
            f16: RwSignal::new(false),
            instruction: RwSignal::new(String::new()),
            default_instruction: RwSignal::new(String::new()),
            query_text: RwSignal::new(String::new()),
            query_image: RwSignal::new_local(None),
            query_video: RwSignal::new_local(None),
            fps: RwSignal::new(1.0),
            max_frames: RwSignal::new(64),
            docs: RwSignal::new_local(Vec::new()),
            next_id: RwSignal::new(1),
            run: RwSignal::new(Run::default()),
            notice: RwSignal::new(None),
        }
    }

    /// Adds a document at the end (its file kept for the next visit).
    pub fn add(&self, item: Item) {
        let id = self.next_id.get_untracked();
        self.next_id.set(id + 1);
        if let Item::Image(m) | Item::Video(m) = &item {
            kept_files::store(kept_files::doc_key(id), m.file.clone());
        }
        self.docs.update(|docs| docs.push(Doc { id, item }));
    }

    pub fn remove(&self, id: u32) {
        self.docs.update(|docs| {
            if let Some(i) = docs.iter().position(|d| d.id == id) {
                let doc = docs.remove(i);
                if let Item::Image(m) | Item::Video(m) = doc.item {
                    let _ = web_sys::Url::revoke_object_url(&m.url);
                    kept_files::forget(kept_files::doc_key(id));
                }
            }
        });
    }

    /// Sets or clears the query's image or video (`key`: which), keeping it for the next visit.
    pub fn set_query_media(&self, key: &'static str, file: Option<File>) {
        let signal = if key == kept_files::QUERY_IMAGE {
            self.query_image
        } else {
            self.query_video
        };
        if let Some(old) = signal.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&old.url);
        }
        match &file {
            Some(file) => kept_files::store(key.to_string(), file.clone()),
            None => kept_files::forget(key.to_string()),
        }
        signal.set(file.map(MediaFile::new));
    }

    pub fn model_ready(&self) -> bool {
        matches!(self.model.get(), ModelState::Ready(_))
    }

    /// Whether the worker is starting or a model is being fetched, converted or loaded: the
    /// model's controls wait.
    pub fn model_busy(&self) -> bool {
        matches!(
            self.model.get(),
            ModelState::Working(_) | ModelState::Starting
        )
    }
}
