//! Where a model's files come from: a URL (one plain GET per file, the body streamed) or files
//! the user picked (read as streams too). Either way a file goes straight into storage in
//! chunks, hashed on the way, never whole in memory.

use std::collections::BTreeMap;

use futures::StreamExt;
use js_sys::Uint8Array;
use sift_web_protocol::ModelSource;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_streams::ReadableStream;
use web_sys::{File, Response, WorkerGlobalScope};

use crate::js::js_error;
use crate::storage::FileWriter;

pub enum Source {
    /// The folder URL, ending in `/`.
    Url(String),
    /// Picked or dropped files by name, and what to call them.
    Picked(BTreeMap<String, File>, String),
    /// Only what storage holds, under this key.
    Stored(String),
    /// A Hugging Face checkpoint's folder URL (ending in `/`) and its name, converted on arrival.
    Hub(String, String),
}

impl Source {
    pub fn new(source: ModelSource) -> Result<Self, String> {
        match source {
            ModelSource::Url(url) => {
                let url = url.trim();
                if url.is_empty() {
                    return Err(
                        "give the URL of a 4-bit model folder (the folder that holds \
                                sift-q4.json)"
                            .into(),
                    );
                }
                let url = url.strip_suffix(sift::MANIFEST).unwrap_or(url);
                Ok(Self::Url(if url.ends_with('/') {
                    url.to_string()
                } else {
                    format!("{url}/")
                }))
            }
            ModelSource::Files(files) => {
                let files: BTreeMap<String, File> = files
                    .iter()
                    .filter_map(|f| f.dyn_into::<File>().ok())
                    .map(|f| (f.name(), f))
                    .collect();
                // A picked folder's files carry it in `webkitRelativePath` ("folder/file").
                let folder = files.values().find_map(|f| {
                    js_sys::Reflect::get(f, &"webkitRelativePath".into())
                        .ok()?
                        .as_string()?
                        .split_once('/')
                        .map(|(folder, _)| folder.to_string())
                });
                let label = match folder {
                    Some(folder) => format!("the folder {folder} on this computer"),
                    None => "files from this computer".to_string(),
                };
                Ok(Self::Picked(files, label))
            }
            ModelSource::Stored(key) => Ok(Self::Stored(key)),
            ModelSource::Hub { url, name } => {
                let url = url.trim();
                if url.is_empty() {
                    return Err("give a Hugging Face repository, such as \
                                Qwen/Qwen3-VL-Reranker-2B"
                        .into());
                }
                let url = if url.ends_with('/') {
                    url.to_string()
                } else {
                    format!("{url}/")
                };
                Ok(Self::Hub(url, name))
            }
        }
    }

    /// How messages name it.
    pub fn label(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::Picked(_, label) => label.clone(),
            Self::Stored(_) => "the stored model".into(),
            Self::Hub(_, name) => sift_web_protocol::hub_label(name),
        }
    }

    /// The body of file `name`, or `None` if the server has no such file (HTTP 404).
    async fn fetch(&self, base: &str, name: &str) -> Result<Option<ReadableStream>, String> {
        let url = format!("{base}{name}");
        let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
        let response: Response = JsFuture::from(scope.fetch_with_str(&url))
            .await
            .map_err(|e| {
                format!(
                    "could not fetch {url} ({}): check the address and the connection; \
                     the server must allow this page's origin (CORS)",
                    js_error(&e)
                )
            })?
            .unchecked_into();
        if response.status() == 404 {
            return Ok(None);
        }
        if !response.ok() {
            let hint = match self {
                Self::Hub(..) => "check the repository name; a gated or private repository \
                                  cannot be fetched by this page"
                    .to_string(),
                _ => format!(
                    "check that the URL is the folder holding {} and the files it lists",
                    sift::MANIFEST
                ),
            };
            return Err(format!(
                "{url} answered HTTP {} {}: {hint}",
                response.status(),
                response.status_text(),
            ));
        }
        let body = response
            .body()
            .ok_or_else(|| format!("{url} answered with no body"))?;
        Ok(Some(ReadableStream::from_raw(body)))
    }

    /// A small file whole, or `None` if the source has no such file.
    pub async fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let stream = match self {
            Self::Url(base) | Self::Hub(base, _) => self.fetch(base, name).await?,
            _ => Some(self.open(name).await?),
        };
        let Some(stream) = stream else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        let mut chunks = stream.into_stream();
        while let Some(chunk) = chunks.next().await {
            bytes.extend(chunk_bytes(chunk, name)?);
        }
        Ok(Some(bytes))
    }

    /// The body of file `name`, as a stream of chunks.
    pub async fn open(&self, name: &str) -> Result<ReadableStream, String> {
        match self {
            Self::Url(base) | Self::Hub(base, _) => {
                self.fetch(base, name).await?.ok_or_else(|| match self {
                    Self::Hub(..) => {
                        format!("{base}{name} does not exist (HTTP 404): check the repository name")
                    }
                    _ => format!(
                        "{base}{name} does not exist (HTTP 404): check that the URL is the \
                         folder holding {} and the files it lists",
                        sift::MANIFEST
                    ),
                })
            }
            Self::Picked(files, _) => {
                let file = files.get(name).ok_or_else(|| {
                    format!(
                        "the picked files have no {name}: pick the whole model folder (it holds \
                         {} and the files it lists)",
                        sift::MANIFEST
                    )
                })?;
                Ok(ReadableStream::from_raw(file.stream()))
            }
            Self::Stored(_) => Err(format!(
                "the stored copy of the model lacks {name} or it is damaged: load the model \
                 again from its URL or folder"
            )),
        }
    }

    /// A small file whole (the manifest).
    pub async fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        let mut chunks = self.open(name).await?.into_stream();
        while let Some(chunk) = chunks.next().await {
            bytes.extend(chunk_bytes(chunk, name)?);
        }
        Ok(bytes)
    }

    /// Streams file `name` into `writer`, calling `progress` with each chunk's size.
    pub async fn copy(
        &self,
        name: &str,
        writer: &mut FileWriter,
        mut progress: impl FnMut(u64),
    ) -> Result<(), String> {
        let mut chunks = self.open(name).await?.into_stream();
        while let Some(chunk) = chunks.next().await {
            let bytes = chunk_bytes(chunk, name)?;
            writer.write(&bytes)?;
            progress(bytes.len() as u64);
        }
        Ok(())
    }
}

pub fn chunk_bytes(chunk: Result<JsValue, JsValue>, name: &str) -> Result<Vec<u8>, String> {
    let chunk = chunk.map_err(|e| {
        format!(
            "the transfer of {name} broke off ({}): try again; what was already stored is kept",
            js_error(&e)
        )
    })?;
    Ok(chunk.unchecked_into::<Uint8Array>().to_vec())
}
