//! The user's files kept for the next visit in the Origin Private File System (private to this
//! site, never uploaded), each under a key: a document's, a PDF's (shared by its pages' documents),
//! or the query's image or video.

use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{File, FileSystemDirectoryHandle, FileSystemFileHandle};

const FOLDER: &str = "sift-session";

/// The stored name of a document's file (part `part` of it; the first part's name is the one
/// a one-file document always had), and of the query's.
pub fn part_key(id: u32, part: usize) -> String {
    match part {
        0 => format!("doc-{id}"),
        _ => format!("doc-{id}-{part}"),
    }
}
/// The stored name of a PDF, kept once for all the documents of its pages.
pub fn pdf_key(pdf: u32) -> String {
    format!("pdf-{pdf}")
}
pub const QUERY_IMAGE: &str = "query-image";
pub const QUERY_VIDEO: &str = "query-video";

/// The folder the files are kept in, made on first use.
pub async fn folder() -> Result<FileSystemDirectoryHandle, JsValue> {
    let storage = web_sys::window()
        .ok_or(JsValue::NULL)?
        .navigator()
        .storage();
    let root: FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
        .await?
        .unchecked_into();
    let options = web_sys::FileSystemGetDirectoryOptions::new();
    options.set_create(true);
    Ok(
        JsFuture::from(root.get_directory_handle_with_options(FOLDER, &options))
            .await?
            .unchecked_into(),
    )
}

/// Stores a file for the next visit (in the background: the page does not wait).
pub fn store(key: String, file: File) {
    spawn_local(async move {
        let Ok(folder) = folder().await else { return };
        let options = web_sys::FileSystemGetFileOptions::new();
        options.set_create(true);
        let Ok(handle) = JsFuture::from(folder.get_file_handle_with_options(&key, &options)).await
        else {
            return;
        };
        let handle: FileSystemFileHandle = handle.unchecked_into();
        let Ok(writable) = JsFuture::from(handle.create_writable()).await else {
            return;
        };
        let writable: web_sys::FileSystemWritableFileStream = writable.unchecked_into();
        if let Ok(promise) = writable.write_with_blob(&file) {
            let _ = JsFuture::from(promise).await;
        }
        let _ = JsFuture::from(writable.close()).await;
    });
}

/// Forgets a stored file.
pub fn forget(key: String) {
    spawn_local(async move {
        if let Ok(folder) = folder().await {
            let _ = JsFuture::from(folder.remove_entry(&key)).await;
        }
    });
}
