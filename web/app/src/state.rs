//! What the page holds: the user's query and documents (never lost, whatever the worker does),
//! the model's state, and the results of the last rerank.

use std::collections::{HashMap, HashSet};

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use sift_web_protocol::{
    Fit, GpuInfo, ModelSource, ModelSummary, Stage, StorageInfo, StoredModel, ToWorker, VideoSample,
};
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

/// A PDF the user added, shared by the documents of its pages (and kept once for the next
/// visit, under its id).
#[derive(Clone, Debug, PartialEq)]
pub struct PdfFile {
    pub id: u32,
    pub name: String,
    pub file: File,
    /// Pages in the file.
    pub pages: u32,
}

/// A part of a document (or of the query): a text, an image, a video or a PDF's page.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// Typed or pasted text, or a text file's contents (`name` is the file's).
    Text {
        text: String,
        name: Option<String>,
    },
    Image(MediaFile),
    Video(MediaFile),
    /// A page of a PDF (1-based), the whole of its document; or why the PDF cannot be opened.
    PdfPage {
        pdf: PdfFile,
        page: Result<u32, String>,
    },
}

impl Item {
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Text { .. } => "text",
            Item::Image(_) => "image",
            Item::Video(_) => "video",
            Item::PdfPage { .. } => "pdf",
        }
    }

    /// A short name for lists: the file name (and a PDF's page), or the text's first words.
    pub fn label(&self) -> String {
        match self {
            Item::Text {
                name: Some(name), ..
            } => name.clone(),
            Item::Text { text, .. } => excerpt(text, 60),
            Item::Image(m) | Item::Video(m) => m.name.clone(),
            Item::PdfPage {
                pdf,
                page: Ok(page),
            } => format!("{} · page {page}", pdf.name),
            Item::PdfPage { pdf, .. } => pdf.name.clone(),
        }
    }

    /// An image or video file (a PDF is kept once for all its pages, by its own key).
    pub fn media(&self) -> Option<&MediaFile> {
        match self {
            Item::Text { .. } | Item::PdfPage { .. } => None,
            Item::Image(m) | Item::Video(m) => Some(m),
        }
    }

    pub fn pdf(&self) -> Option<&PdfFile> {
        match self {
            Item::PdfPage { pdf, .. } => Some(pdf),
            _ => None,
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

/// The media id of the query's video in frame requests and sampling notes.
pub const QUERY_MEDIA: u32 = 0;

/// The media id of part `part` of document `doc` (documents' ids start at 1, so none is the
/// query's). A document holds at most `MAX_PARTS` parts.
pub fn media_id(doc: u32, part: usize) -> u32 {
    (doc << 8) | part as u32
}

/// The document and part of a media id.
pub fn media_part(id: u32) -> (u32, usize) {
    (id >> 8, (id & 0xff) as usize)
}

/// Most parts of one document: the library's default limit of images and videos on one side
/// (64), and a text.
pub const MAX_PARTS: usize = 65;

/// A document: an id the page gives it, and its parts (a text, images, videos, in any mix).
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    pub id: u32,
    pub parts: Vec<Item>,
}

impl Doc {
    /// Its part's kind, or "mixed".
    pub fn kind(&self) -> &'static str {
        match self.parts.as_slice() {
            [one] => one.kind(),
            _ => "mixed",
        }
    }

    pub fn label(&self) -> String {
        let first = self.parts.first().map(Item::label).unwrap_or_default();
        match self.parts.len() {
            0 | 1 => first,
            n => format!("{first} and {} more", n - 1),
        }
    }
}

/// A video's poster frame, once the page has started to capture one.
#[derive(Clone, Debug, PartialEq)]
pub enum Poster {
    Capturing,
    /// The frame, as a `data:` URL.
    Frame(String),
    /// The browser cannot play the file.
    Unplayable,
}

/// The result of one document in the last rerank.
#[derive(Clone, Debug, PartialEq)]
pub struct DocResult {
    pub score: Result<f32, String>,
    /// How its own videos were sampled.
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

impl Progress {
    /// A worker's progress message as a step of `previous`: the same stage keeps its start
    /// (for the rate and the time left), a new one starts now.
    pub fn after(
        previous: Option<&Progress>,
        stage: Stage,
        done: u64,
        total: u64,
        detail: String,
    ) -> Self {
        let started = match previous {
            Some(p) if p.stage == stage => p.started,
            _ => (done, js_sys::Date::now()),
        };
        Self {
            stage,
            done,
            total,
            detail,
            started,
        }
    }
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
    /// Documents removed from the page since the job was sent: left out of its ranking, its
    /// counts and its export (the worker may still score them).
    pub removed: HashSet<u32>,
    pub results: HashMap<u32, DocResult>,
    /// Page ids, best first, of the documents scored so far.
    pub order: Vec<u32>,
    pub running: bool,
    /// The CLI-shaped JSON of a finished run, as the worker wrote it.
    pub export: Option<String>,
    /// Why the query could not be read, said once.
    pub query_error: Option<String>,
    /// How the query's videos were sampled.
    pub query_videos: Vec<VideoSample>,
    /// When it was sent and when it finished (ms since the epoch).
    pub started: f64,
    pub finished: Option<f64>,
}

impl Run {
    /// The job's documents still on the page, in request order.
    pub fn live(&self) -> impl Iterator<Item = u32> + '_ {
        self.docs
            .iter()
            .copied()
            .filter(|id| !self.removed.contains(id))
    }

    /// The results of the documents still on the page that have one.
    pub fn live_results(&self) -> impl Iterator<Item = &DocResult> + '_ {
        self.live().filter_map(|id| self.results.get(&id))
    }

    /// The finished run's export without the documents removed since: what the CLI prints for
    /// the documents left (indices among them, in the same order, as removing a document
    /// changes no other's rank).
    pub fn export_json(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(self.export.as_ref()?).ok()?;
        let index_of: HashMap<usize, usize> = self
            .docs
            .iter()
            .enumerate()
            .filter(|(_, id)| !self.removed.contains(id))
            .enumerate()
            .map(|(new, (old, _))| (old, new))
            .collect();
        let results: Vec<serde_json::Value> = json["results"]
            .as_array()?
            .iter()
            .filter_map(|result| {
                let old = result["index"].as_u64()? as usize;
                let mut result = result.clone();
                result["index"] = (*index_of.get(&old)?).into();
                Some(result)
            })
            .collect();
        Some(serde_json::json!({ "results": results }).to_string())
    }
}

/// Where the last model used came from, to load it again on the next visit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastModel {
    /// Its storage key.
    pub key: String,
    pub source: LastSource,
}

/// How to load it again: by its URL or repository when it has one (so that a damaged file
/// can be fetched again), else from storage alone (a folder picked on this computer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LastSource {
    Url(String),
    Hub { url: String, name: String },
    Stored,
}

impl LastModel {
    /// The last model from the source the worker was asked to load.
    pub fn new(key: String, source: &ModelSource) -> Self {
        let source = match source {
            ModelSource::Url(url) => LastSource::Url(url.clone()),
            ModelSource::Hub { url, name } => LastSource::Hub {
                url: url.clone(),
                name: name.clone(),
            },
            ModelSource::Files(_) | ModelSource::Stored(_) => LastSource::Stored,
        };
        Self { key, source }
    }

    pub fn source(&self) -> ModelSource {
        match &self.source {
            LastSource::Url(url) => ModelSource::Url(url.clone()),
            LastSource::Hub { url, name } => ModelSource::Hub {
                url: url.clone(),
                name: name.clone(),
            },
            LastSource::Stored => ModelSource::Stored(self.key.clone()),
        }
    }
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
    /// Tokens of a prompt kept before its suffix (longer document text is cut), `None` for
    /// the model's default; changing it loads the model again.
    pub max_length: RwSignal<Option<usize>>,
    /// The library's default `max_length`, as the worker reports it.
    pub default_max_length: RwSignal<usize>,
    /// What the page did with a setting it could not use, shown by the settings.
    pub settings_note: RwSignal<Option<String>>,
    pub docs: RwSignal<Vec<Doc>, LocalStorage>,
    pub next_id: RwSignal<u32>,
    pub run: RwSignal<Run>,
    /// The documents of a rerank that a reload (or a closed tab) interrupted.
    pub interrupted: RwSignal<Option<usize>>,
    /// The model used last, loaded again on the next visit.
    pub last_model: RwSignal<Option<LastModel>>,
    /// Poster frames of videos, by the video's object URL.
    pub posters: RwSignal<HashMap<String, Poster>>,
    /// PDF pages as the renderer drew them for the model (PNG object URLs), by document id.
    pub renders: RwSignal<HashMap<u32, String>>,
    /// What the PDF renderer is doing ("rendering report.pdf, page 3 of 12"), if anything.
    pub pdf_activity: RwSignal<Option<String>>,
    /// A drawn PDF page shown large over the page: its URL and its label.
    pub viewing: RwSignal<Option<(String, String)>>,
    /// A problem to show at the top of the page: the worker stopped, a file was refused.
    pub notice: RwSignal<Option<String>>,
    /// The speed measurement (*Measure speed*), running or last done.
    pub speed: RwSignal<crate::speed::SpeedState>,
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
            max_length: RwSignal::new(None),
            default_max_length: RwSignal::new(0),
            settings_note: RwSignal::new(None),
            docs: RwSignal::new_local(Vec::new()),
            next_id: RwSignal::new(1),
            run: RwSignal::new(Run::default()),
            interrupted: RwSignal::new(None),
            last_model: RwSignal::new(None),
            posters: RwSignal::new(HashMap::new()),
            renders: RwSignal::new(HashMap::new()),
            pdf_activity: RwSignal::new(None),
            viewing: RwSignal::new(None),
            notice: RwSignal::new(None),
            speed: RwSignal::new(Default::default()),
        }
    }

    /// Adds a document at the end (its files kept for the next visit).
    pub fn add(&self, parts: Vec<Item>) {
        let id = self.next_id.get_untracked();
        self.next_id.set(id + 1);
        for (part, item) in parts.iter().enumerate() {
            if let Some(m) = item.media() {
                kept_files::store(kept_files::part_key(id, part), m.file.clone());
            }
        }
        self.docs.update(|docs| docs.push(Doc { id, parts }));
    }

    /// Removes a document, and its result from the run (during a run too: the ranking, the
    /// counts and the export go on without it). A PDF's file is forgotten with its last page.
    pub fn remove(&self, id: u32) {
        self.docs.update(|docs| {
            if let Some(i) = docs.iter().position(|d| d.id == id) {
                let doc = docs.remove(i);
                for (part, item) in doc.parts.iter().enumerate() {
                    if let Some(m) = item.media() {
                        let _ = web_sys::Url::revoke_object_url(&m.url);
                        kept_files::forget(kept_files::part_key(id, part));
                    }
                    if let Some(pdf) = item.pdf() {
                        let used = docs
                            .iter()
                            .flat_map(|d| &d.parts)
                            .any(|p| p.pdf().is_some_and(|other| other.id == pdf.id));
                        if !used {
                            kept_files::forget(kept_files::pdf_key(pdf.id));
                        }
                    }
                }
            }
        });
        if let Some(url) = self.renders.try_update(|r| r.remove(&id)).flatten() {
            let _ = web_sys::Url::revoke_object_url(&url);
        }
        self.run.update(|run| {
            if run.docs.contains(&id) {
                run.removed.insert(id);
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

    /// The message that loads `source` with the page's settings.
    pub fn load_message(&self, source: ModelSource) -> ToWorker {
        ToWorker::Load {
            source,
            f16: self.f16.get_untracked(),
            max_length: self.max_length.get_untracked(),
        }
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
