//! Files the user picks or drops (many at once, whole folders too), sorted into images,
//! videos, text documents and PDFs (one document per page, opened by the renderer); anything
//! else is named in a notice, never silently dropped.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DragEvent, File, FileList, FileSystemDirectoryEntry, FileSystemEntry};

use crate::kept_files;
use crate::renderer::Renderer;
use crate::state::{AppState, Item, MediaFile, PdfFile};

const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "md", "markdown", "csv", "tsv", "json", "jsonl", "html", "htm", "xml", "rst", "log",
    "tex", "yaml", "yml", "srt", "vtt",
];
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"];
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "webm", "mkv"];

/// What a file will be, from its type or, failing that, its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Video,
    Text,
    Pdf,
}

pub fn kind_of(file: &File) -> Option<Kind> {
    let mime = file.type_();
    let name = file.name().to_lowercase();
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if mime == "application/pdf" || extension == "pdf" {
        Some(Kind::Pdf)
    } else if mime.starts_with("image/") || IMAGE_EXTENSIONS.contains(&extension) {
        Some(Kind::Image)
    } else if mime.starts_with("video/") || VIDEO_EXTENSIONS.contains(&extension) {
        Some(Kind::Video)
    } else if mime.starts_with("text/") || TEXT_EXTENSIONS.contains(&extension) {
        Some(Kind::Text)
    } else {
        None
    }
}

/// The files of a `FileList` (a file input's).
pub fn list(files: Option<FileList>) -> Vec<File> {
    let Some(files) = files else {
        return Vec::new();
    };
    (0..files.length()).filter_map(|i| files.get(i)).collect()
}

/// Adds each file as a document of its own (a PDF as one per page), in name order; says which
/// files were skipped and why, and which pages of a PDF were left out.
pub async fn add_documents(state: AppState, renderer: Renderer, mut files: Vec<File>) {
    files.sort_by_key(|f| f.name());
    let mut skipped = Vec::new();
    let mut notes = Vec::new();
    for file in files {
        match kind_of(&file) {
            Some(Kind::Pdf) => {
                if let Some(note) = add_pdf(state, &renderer, file).await {
                    notes.push(note);
                }
            }
            Some(Kind::Image) => {
                state.add(vec![Item::Image(MediaFile::new(file))]);
            }
            Some(Kind::Video) => {
                state.add(vec![Item::Video(MediaFile::new(file))]);
            }
            Some(Kind::Text) => match read_text(&file).await {
                Ok(text) => {
                    state.add(vec![Item::Text {
                        text,
                        name: Some(file.name()),
                    }]);
                }
                Err(why) => skipped.push(format!("{} ({why})", file.name())),
            },
            None => skipped.push(format!(
                "{} (not an image, a video or a text file)",
                file.name()
            )),
        }
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "Not added: {}. Add images (PNG, JPEG, WebP, GIF, BMP, TIFF), videos (MP4, WebM, \
             MOV), PDFs or UTF-8 text files.",
            skipped.join(", ")
        ));
    }
    if !notes.is_empty() {
        state.notice.set(Some(notes.join(" ")));
    }
}

/// Adds a PDF as one document per page, up to the library's limits (pages of one PDF, PDF
/// pages of one rerank); one that cannot be opened is one document holding why. Says which
/// pages were left out, if any.
async fn add_pdf(state: AppState, renderer: &Renderer, file: File) -> Option<String> {
    let id = state.next_id.get_untracked();
    state.next_id.set(id + 1);
    let opened = renderer.open(&file).await;
    let name = file.name();
    let pdf = |pages| PdfFile {
        id,
        name: name.clone(),
        file: file.clone(),
        pages,
    };
    let info = match opened {
        Ok(info) => info,
        Err(why) => {
            kept_files::store(kept_files::pdf_key(id), file.clone());
            state.add(vec![Item::PdfPage {
                pdf: pdf(0),
                page: Err(why),
            }]);
            return None;
        }
    };
    let pages_so_far = state.docs.with_untracked(|docs| {
        docs.iter()
            .flat_map(|d| &d.parts)
            .filter(|p| matches!(p, Item::PdfPage { page: Ok(_), .. }))
            .count() as u32
    });
    let room = info.max_run_pages.saturating_sub(pages_so_far);
    let taken = info.pages.min(info.max_pages).min(room);
    if taken > 0 {
        kept_files::store(kept_files::pdf_key(id), file.clone());
    }
    for page in 1..=taken {
        state.add(vec![Item::PdfPage {
            pdf: pdf(info.pages),
            page: Ok(page),
        }]);
    }
    let pages = |n: u32| match n {
        1 => "1 page".to_string(),
        n => format!("{n} pages"),
    };
    if taken == info.pages {
        None
    } else if taken == 0 {
        Some(format!(
            "{name} was not added: a rerank takes at most {} PDF pages, and the documents \
             already hold {pages_so_far}. Remove some pages to make room.",
            info.max_run_pages
        ))
    } else if taken < info.max_pages.min(info.pages) {
        Some(format!(
            "{name} has {}; only pages 1–{taken} were added, as a rerank takes at most {} PDF \
             pages. Remove some pages to make room for more.",
            pages(info.pages),
            info.max_run_pages
        ))
    } else {
        Some(format!(
            "{name} has {}; pages 1–{taken} were added, as at most {} pages of one PDF are \
             ranked. To rank the others, split it into smaller PDFs in a PDF editor and add them.",
            pages(info.pages),
            info.max_pages
        ))
    }
}

/// A text file's contents, which must be UTF-8.
pub async fn read_text(file: &File) -> Result<String, String> {
    let bytes = gloo_file::futures::read_as_bytes(&gloo_file::Blob::from(file.clone()))
        .await
        .map_err(|e| format!("unreadable: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text at byte {}; save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The files dropped on the page, folders walked. The entries are taken before the handler
/// returns: the browser empties the drop's data afterwards.
pub fn dropped(event: &DragEvent) -> impl std::future::Future<Output = Vec<File>> + use<> {
    let mut roots = Vec::new();
    let mut plain = Vec::new();
    if let Some(transfer) = event.data_transfer() {
        let items = transfer.items();
        for i in 0..items.length() {
            let Some(item) = items.get(i) else { continue };
            match item.webkit_get_as_entry() {
                Ok(Some(entry)) => roots.push(entry),
                _ => {
                    if let Ok(Some(file)) = item.get_as_file() {
                        plain.push(file);
                    }
                }
            }
        }
    }
    async move {
        let mut files = plain;
        files.extend(walk(roots).await);
        files
    }
}

/// The files under dropped entries; unreadable entries are left out.
async fn walk(roots: Vec<FileSystemEntry>) -> Vec<File> {
    let mut files = Vec::new();
    let mut stack = roots;
    while let Some(entry) = stack.pop() {
        if entry.is_directory() {
            let reader = entry
                .unchecked_into::<FileSystemDirectoryEntry>()
                .create_reader();
            // Each call gives at most 100 entries; an empty batch ends the folder.
            loop {
                let batch = callback_promise(|resolve, reject| {
                    let _ = reader.read_entries_with_callback_and_callback(resolve, reject);
                })
                .await;
                let Ok(batch) = batch else { break };
                let batch: js_sys::Array = batch.unchecked_into();
                if batch.length() == 0 {
                    break;
                }
                stack.extend(batch.iter().map(JsCast::unchecked_into::<FileSystemEntry>));
            }
        } else if entry.is_file() {
            let entry: web_sys::FileSystemFileEntry = entry.unchecked_into();
            if let Ok(file) = callback_promise(|resolve, reject| {
                entry.file_with_callback_and_callback(resolve, reject)
            })
            .await
            {
                files.push(file.unchecked_into());
            }
        }
    }
    files
}

/// A callback-style browser call as a future.
fn callback_promise(call: impl FnOnce(&js_sys::Function, &js_sys::Function)) -> JsFuture {
    let mut call = Some(call);
    JsFuture::from(js_sys::Promise::new(&mut |resolve, reject| {
        if let Some(call) = call.take() {
            call(&resolve, &reject);
        }
    }))
}
