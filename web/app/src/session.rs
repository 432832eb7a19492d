//! The user's query and documents survive a reload: their text and settings in `localStorage`,
//! their files in the Origin Private File System (private to this site, never uploaded). So do
//! the model used last (loaded again on the next visit) and a rerank that a reload cut short
//! (said after the reload, with an offer to run it again).

use std::collections::{HashMap, HashSet};

use gloo_storage::Storage;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File, FileSystemDirectoryHandle, FileSystemFileHandle};

use crate::kept_files::{QUERY_IMAGE, QUERY_VIDEO, folder, part_key, pdf_key};
use crate::state::{AppState, Doc, Item, LastModel, MediaFile, PdfFile};

const KEY: &str = "sift.session";
/// Present while a rerank runs: found at start-up, it means a reload interrupted one.
const RUN_KEY: &str = "sift.running";

#[derive(Serialize, Deserialize)]
struct RunMark {
    documents: usize,
}

#[derive(Serialize, Deserialize, Default)]
struct Saved {
    model_url: Option<String>,
    #[serde(default)]
    hub_repo: Option<String>,
    #[serde(default)]
    f16: bool,
    #[serde(default)]
    max_length: Option<usize>,
    #[serde(default)]
    last_model: Option<LastModel>,
    instruction: String,
    query_text: String,
    fps: f64,
    max_frames: usize,
    next_id: u32,
    query_image: Option<SavedFile>,
    query_video: Option<SavedFile>,
    docs: Vec<SavedDoc>,
}

#[derive(Serialize, Deserialize, Clone)]
struct SavedFile {
    name: String,
    mime: String,
}

#[derive(Serialize, Deserialize)]
enum SavedItem {
    Text {
        text: String,
        name: Option<String>,
    },
    Image(SavedFile),
    Video(SavedFile),
    /// A PDF's page (the file is kept once, under the PDF's id), or why it cannot be opened.
    PdfPage {
        file: SavedFile,
        pdf: u32,
        pages: u32,
        page: Result<u32, String>,
    },
}

#[derive(Serialize, Deserialize)]
struct SavedDoc {
    id: u32,
    /// A one-part document as sessions saved it before documents had parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    item: Option<SavedItem>,
    #[serde(default)]
    parts: Vec<SavedItem>,
}

fn saved_item(item: &Item) -> SavedItem {
    match item {
        Item::Text { text, name } => SavedItem::Text {
            text: text.clone(),
            name: name.clone(),
        },
        Item::Image(m) => SavedItem::Image(saved_file(m)),
        Item::Video(m) => SavedItem::Video(saved_file(m)),
        Item::PdfPage { pdf, page } => SavedItem::PdfPage {
            file: SavedFile {
                name: pdf.name.clone(),
                mime: pdf.file.type_(),
            },
            pdf: pdf.id,
            pages: pdf.pages,
            page: page.clone(),
        },
    }
}

fn saved_file(media: &MediaFile) -> SavedFile {
    SavedFile {
        name: media.name.clone(),
        mime: media.file.type_(),
    }
}

/// Restores the last session, then keeps saving it as it changes.
pub fn restore_and_save(state: AppState) {
    if let Ok(saved) = gloo_storage::LocalStorage::get::<Saved>(KEY) {
        if let Some(url) = saved.model_url {
            state.model_url.set(url);
        }
        if let Some(repo) = saved.hub_repo {
            state.hub_repo.set(repo);
        }
        state.f16.set(saved.f16);
        state.max_length.set(saved.max_length);
        state.last_model.set(saved.last_model);
        state.instruction.set(saved.instruction);
        state.query_text.set(saved.query_text);
        if saved.fps > 0.0 {
            state.fps.set(saved.fps);
        }
        if saved.max_frames > 0 {
            state.max_frames.set(saved.max_frames);
        }
        state.next_id.set(saved.next_id.max(1));
        spawn_local(restore_files(
            state,
            saved.docs,
            saved.query_image,
            saved.query_video,
        ));
    }
    if let Ok(run) = gloo_storage::LocalStorage::get::<RunMark>(RUN_KEY) {
        state.interrupted.set(Some(run.documents));
    }
    Effect::new(move |_| {
        let (running, documents) = state.run.with(|r| (r.running, r.live().count()));
        if running {
            let _ = gloo_storage::LocalStorage::set(RUN_KEY, RunMark { documents });
        } else {
            gloo_storage::LocalStorage::delete(RUN_KEY);
        }
    });
    Effect::new(move |_| {
        let saved = Saved {
            model_url: Some(state.model_url.get()),
            hub_repo: Some(state.hub_repo.get()),
            f16: state.f16.get(),
            max_length: state.max_length.get(),
            last_model: state.last_model.get(),
            instruction: state.instruction.get(),
            query_text: state.query_text.get(),
            fps: state.fps.get(),
            max_frames: state.max_frames.get(),
            next_id: state.next_id.get(),
            query_image: state.query_image.with(|m| m.as_ref().map(saved_file)),
            query_video: state.query_video.with(|m| m.as_ref().map(saved_file)),
            docs: state.docs.with(|docs| {
                docs.iter()
                    .map(|d| SavedDoc {
                        id: d.id,
                        item: None,
                        parts: d.parts.iter().map(saved_item).collect(),
                    })
                    .collect()
            }),
        };
        if gloo_storage::LocalStorage::set(KEY, &saved).is_err() {
            state.notice.set(Some(
                "This browser would not save the page's inputs (storage full or blocked); they \
                 stay until the page is closed."
                    .into(),
            ));
        }
    });
}

async fn restore_files(
    state: AppState,
    docs: Vec<SavedDoc>,
    query_image: Option<SavedFile>,
    query_video: Option<SavedFile>,
) {
    let Ok(folder) = folder().await else { return };
    let mut missing = 0;
    let mut restored = Vec::new();
    let mut keep = HashSet::new();
    // A PDF is read once for all its pages.
    let mut pdfs: HashMap<u32, Option<File>> = HashMap::new();
    for doc in docs {
        let mut parts = Vec::new();
        for (part, item) in doc.item.into_iter().chain(doc.parts).enumerate() {
            let key = part_key(doc.id, part);
            let item = match item {
                SavedItem::Text { text, name } => Some(Item::Text { text, name }),
                SavedItem::Image(f) => read(&folder, &key, &f)
                    .await
                    .map(|file| Item::Image(MediaFile::new(file))),
                SavedItem::Video(f) => read(&folder, &key, &f)
                    .await
                    .map(|file| Item::Video(MediaFile::new(file))),
                SavedItem::PdfPage {
                    file,
                    pdf,
                    pages,
                    page,
                } => {
                    let stored = match pdfs.get(&pdf) {
                        Some(stored) => stored.clone(),
                        None => {
                            let stored = read(&folder, &pdf_key(pdf), &file).await;
                            pdfs.insert(pdf, stored.clone());
                            stored
                        }
                    };
                    stored.map(|stored| Item::PdfPage {
                        pdf: PdfFile {
                            id: pdf,
                            name: file.name,
                            file: stored,
                            pages,
                        },
                        page,
                    })
                }
            };
            match item {
                Some(item) => {
                    keep.insert(match item.pdf() {
                        Some(pdf) => pdf_key(pdf.id),
                        None => key,
                    });
                    parts.push(item);
                }
                None => missing += 1,
            }
        }
        if !parts.is_empty() {
            restored.push(Doc { id: doc.id, parts });
        }
    }
    if let Some(f) = &query_image
        && let Some(file) = read(&folder, QUERY_IMAGE, f).await
    {
        keep.insert(QUERY_IMAGE.to_string());
        state.query_image.set(Some(MediaFile::new(file)));
    }
    if let Some(f) = &query_video
        && let Some(file) = read(&folder, QUERY_VIDEO, f).await
    {
        keep.insert(QUERY_VIDEO.to_string());
        state.query_video.set(Some(MediaFile::new(file)));
    }
    // Documents added while restoring go after the restored ones.
    state.docs.update(|docs| {
        let added = std::mem::take(docs);
        *docs = restored;
        docs.extend(added);
    });
    if missing > 0 {
        state.notice.set(Some(format!(
            "{missing} file(s) of your last session could not be found in this browser's \
             storage; add them again."
        )));
    }
    remove_unused(&folder, &keep, &state).await;
}

/// Deletes stored files no document or query uses (left by a removal during a write).
async fn remove_unused(
    folder: &FileSystemDirectoryHandle,
    keep: &HashSet<String>,
    state: &AppState,
) {
    let in_use: HashSet<String> = state.docs.with_untracked(|docs| {
        docs.iter()
            .flat_map(|d| {
                d.parts
                    .iter()
                    .enumerate()
                    .map(|(part, item)| match item.pdf() {
                        Some(pdf) => pdf_key(pdf.id),
                        None => part_key(d.id, part),
                    })
            })
            .collect()
    });
    let keys = folder.keys();
    let mut names = Vec::new();
    loop {
        let Ok(promise) = keys.next() else { break };
        let Ok(next) = JsFuture::from(promise).await else {
            break;
        };
        let next: js_sys::IteratorNext = next.unchecked_into();
        if next.done() {
            break;
        }
        if let Some(name) = next.value().as_string() {
            names.push(name);
        }
    }
    for name in names {
        if !keep.contains(&name) && !in_use.contains(&name) {
            let _ = JsFuture::from(folder.remove_entry(&name)).await;
        }
    }
}

async fn read(folder: &FileSystemDirectoryHandle, key: &str, saved: &SavedFile) -> Option<File> {
    let handle: FileSystemFileHandle = JsFuture::from(folder.get_file_handle(key))
        .await
        .ok()?
        .unchecked_into();
    let stored: Blob = JsFuture::from(handle.get_file())
        .await
        .ok()?
        .unchecked_into();
    // The stored file under its own name and type again.
    let options = web_sys::FilePropertyBag::new();
    options.set_type(&saved.mime);
    File::new_with_blob_sequence_and_options(&js_sys::Array::of1(&stored), &saved.name, &options)
        .ok()
}
