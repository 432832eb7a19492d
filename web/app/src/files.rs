//! Files the user picks or drops (many at once, whole folders too), sorted into images,
//! videos and text documents; anything else is named in a notice, never silently dropped.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DragEvent, File, FileList, FileSystemDirectoryEntry, FileSystemEntry};

use crate::state::{AppState, Item, MediaFile};

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
}

pub fn kind_of(file: &File) -> Option<Kind> {
    let mime = file.type_();
    let name = file.name().to_lowercase();
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if mime.starts_with("image/") || IMAGE_EXTENSIONS.contains(&extension) {
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

/// Adds each file as a document of its own, in name order; says which files were skipped and
/// why.
pub async fn add_documents(state: AppState, mut files: Vec<File>) {
    files.sort_by_key(|f| f.name());
    let mut skipped = Vec::new();
    for file in files {
        match kind_of(&file) {
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
        state.notice.set(Some(format!(
            "Not added: {}. Add images (PNG, JPEG, WebP, GIF, BMP, TIFF), videos (MP4, WebM, \
             MOV) or UTF-8 text files.",
            skipped.join(", ")
        )));
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
