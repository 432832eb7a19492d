//! Models in the Origin Private File System: one folder per model under `sift-models/`, its
//! files as the manifest names them, and `state.json` recording which files were checked
//! against their sha256 when written, so a later visit trusts them without the network.

use std::collections::BTreeMap;

use js_sys::{AsyncIterator, IteratorNext};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sift::FileEntry;
use sift::quantize::{Conversion, QuantError, ShardOutput, hex};
use sift_web_protocol::{StorageInfo, StoredModel};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemReadWriteOptions, FileSystemRemoveOptions,
    FileSystemSyncAccessHandle, StorageManager, WorkerGlobalScope,
};

use crate::js::js_error;

const ROOT: &str = "sift-models";
const STATE: &str = "state.json";
/// Bytes moved between wasm memory and a file per call: a browser copies each call's buffer,
/// so large files go in steps of this size.
const STEP: usize = 8 << 20;

/// What is known of a stored model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The URL or folder it came from.
    pub source: String,
    /// Files written and checked: name to sha256.
    pub verified: BTreeMap<String, String>,
    /// Bytes of all its files, once the manifest is known.
    pub bytes: u64,
    /// Every file the manifest lists is verified.
    pub complete: bool,
    /// A checkpoint being converted: the source files done and what they became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
}

fn storage() -> StorageManager {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    scope.navigator().storage()
}

async fn root() -> Result<FileSystemDirectoryHandle, String> {
    let opfs: FileSystemDirectoryHandle = JsFuture::from(storage().get_directory())
        .await
        .map_err(|e| {
            format!(
                "this browser gives the page no private storage ({}); sift keeps models there. \
                 Leave private browsing, or allow site data for this page",
                js_error(&e)
            )
        })?
        .unchecked_into();
    sub_dir(&opfs, ROOT, true).await
}

async fn sub_dir(
    parent: &FileSystemDirectoryHandle,
    name: &str,
    create: bool,
) -> Result<FileSystemDirectoryHandle, String> {
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(create);
    JsFuture::from(parent.get_directory_handle_with_options(name, &options))
        .await
        .map(JsCast::unchecked_into)
        .map_err(|e| format!("storage folder {name}: {}", js_error(&e)))
}

/// The space the origin uses and may use.
pub async fn estimate() -> StorageInfo {
    let Ok(promise) = storage().estimate() else {
        return StorageInfo::default();
    };
    match JsFuture::from(promise).await {
        Ok(estimate) => {
            let estimate: web_sys::StorageEstimate = estimate.unchecked_into();
            StorageInfo {
                used: estimate.get_usage().unwrap_or(0.0) as u64,
                quota: estimate.get_quota().unwrap_or(0.0) as u64,
            }
        }
        Err(_) => StorageInfo::default(),
    }
}

/// The names in a folder.
async fn names(dir: &FileSystemDirectoryHandle) -> Result<Vec<String>, String> {
    let keys: AsyncIterator = dir.keys();
    let mut names = Vec::new();
    loop {
        let next: IteratorNext = JsFuture::from(
            keys.next()
                .map_err(|e| format!("listing storage: {}", js_error(&e)))?,
        )
        .await
        .map_err(|e| format!("listing storage: {}", js_error(&e)))?
        .unchecked_into();
        if next.done() {
            return Ok(names);
        }
        if let Some(name) = next.value().as_string() {
            names.push(name);
        }
    }
}

/// Every stored model.
pub async fn models() -> Result<Vec<StoredModel>, String> {
    let root = root().await?;
    let mut models = Vec::new();
    for key in names(&root).await? {
        let dir = ModelDir {
            key: key.clone(),
            dir: sub_dir(&root, &key, false).await?,
        };
        let state = dir.state().await;
        models.push(StoredModel {
            key,
            source: state.source,
            bytes: dir.bytes().await,
            complete: state.complete,
        });
    }
    Ok(models)
}

/// Deletes a stored model and everything in it.
pub async fn remove(key: &str) -> Result<(), String> {
    let options = FileSystemRemoveOptions::new();
    options.set_recursive(true);
    JsFuture::from(root().await?.remove_entry_with_options(key, &options))
        .await
        .map(drop)
        .map_err(|e| format!("could not delete the stored model: {}", js_error(&e)))
}

/// A stored model's folder.
pub struct ModelDir {
    pub key: String,
    dir: FileSystemDirectoryHandle,
}

/// A file open for synchronous reads and writes (workers only); closed when dropped, since a
/// file has one such handle at a time.
struct Handle(FileSystemSyncAccessHandle);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn at(offset: u64) -> FileSystemReadWriteOptions {
    let options = FileSystemReadWriteOptions::new();
    options.set_at(offset as f64);
    options
}

impl ModelDir {
    /// The folder of the model stored under `key`, created if missing.
    pub async fn open(key: &str) -> Result<Self, String> {
        Ok(Self {
            key: key.to_string(),
            dir: sub_dir(&root().await?, key, true).await?,
        })
    }

    async fn handle(&self, name: &str, create: bool) -> Result<Handle, String> {
        let options = FileSystemGetFileOptions::new();
        options.set_create(create);
        let file: FileSystemFileHandle =
            JsFuture::from(self.dir.get_file_handle_with_options(name, &options))
                .await
                .map_err(|e| format!("stored file {name}: {}", js_error(&e)))?
                .unchecked_into();
        JsFuture::from(file.create_sync_access_handle())
            .await
            .map(|h| Handle(h.unchecked_into()))
            .map_err(|e| format!("stored file {name} is busy or unreadable: {}", js_error(&e)))
    }

    /// What the folder's files take, measured: the origin's `estimate()` can lag far behind
    /// what was written (2 kB with a 15 MB model stored).
    async fn bytes(&self) -> u64 {
        let mut total = 0;
        for name in names(&self.dir).await.unwrap_or_default() {
            let Ok(handle) = JsFuture::from(self.dir.get_file_handle(&name)).await else {
                continue;
            };
            let handle: FileSystemFileHandle = handle.unchecked_into();
            if let Ok(file) = JsFuture::from(handle.get_file()).await {
                total += file.unchecked_into::<web_sys::File>().size() as u64;
            }
        }
        total
    }

    /// The model's state; empty if it has none or it is unreadable.
    pub async fn state(&self) -> State {
        match self.read(STATE).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => State::default(),
        }
    }

    pub async fn save_state(&self, state: &State) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(state).expect("the state serialises");
        self.write(STATE, &json).await.map(drop)
    }

    /// Replaces file `name` with `bytes`: its size and sha256 (hex).
    pub async fn write(&self, name: &str, bytes: &[u8]) -> Result<(u64, String), String> {
        let mut writer = self.writer(name).await?;
        writer.write(bytes)?;
        writer.finish()
    }

    /// The whole file, read in steps.
    pub async fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        let handle = self.handle(name, false).await?;
        let fail = |e: JsValue| format!("reading stored file {name}: {}", js_error(&e));
        let size = handle.0.get_size().map_err(fail)? as usize;
        let mut bytes = vec![0u8; size];
        let mut offset = 0;
        while offset < size {
            let end = (offset + STEP).min(size);
            let read = handle
                .0
                .read_with_u8_array_and_options(&mut bytes[offset..end], &at(offset as u64))
                .map_err(fail)? as usize;
            if read == 0 {
                return Err(format!("stored file {name} ended early"));
            }
            offset += read;
        }
        Ok(bytes)
    }

    /// A writer that replaces the file's contents, hashing them as they go.
    pub async fn writer(&self, name: &str) -> Result<FileWriter, String> {
        let handle = self.handle(name, true).await?;
        handle
            .0
            .truncate_with_f64(0.0)
            .map_err(|e| format!("writing stored file {name}: {}", js_error(&e)))?;
        Ok(FileWriter {
            name: name.to_string(),
            handle,
            offset: 0,
            hash: Sha256::new(),
        })
    }
}

impl ModelDir {
    /// The files `names`, emptied, for a converter to write at offsets.
    pub async fn shards(&self, names: &[String]) -> Result<Shards, String> {
        let mut files = Vec::new();
        for name in names {
            let handle = self.handle(name, true).await?;
            handle
                .0
                .truncate_with_f64(0.0)
                .map_err(|e| format!("writing stored file {name}: {}", js_error(&e)))?;
            files.push((name.clone(), handle));
        }
        Ok(Shards(files))
    }

    /// A stored file's size and sha256, read back in steps.
    pub async fn entry(&self, name: &str) -> Result<FileEntry, String> {
        let handle = self.handle(name, false).await?;
        let fail = |e: JsValue| format!("reading stored file {name}: {}", js_error(&e));
        let size = handle.0.get_size().map_err(fail)? as u64;
        let mut hash = Sha256::new();
        let mut buffer = vec![0u8; STEP];
        let mut offset = 0;
        while offset < size {
            let n = (size - offset).min(STEP as u64) as usize;
            let read = handle
                .0
                .read_with_u8_array_and_options(&mut buffer[..n], &at(offset))
                .map_err(fail)? as usize;
            if read == 0 {
                return Err(format!("stored file {name} ended early"));
            }
            hash.update(&buffer[..read]);
            offset += read as u64;
        }
        Ok(FileEntry {
            file: name.to_string(),
            bytes: size,
            sha256: hex(&hash.finalize()),
        })
    }
}

/// Shards being converted into: files open for writes at any offset.
pub struct Shards(Vec<(String, Handle)>);

impl ShardOutput for Shards {
    fn write_at(&mut self, shard: usize, offset: u64, mut bytes: &[u8]) -> Result<(), QuantError> {
        let (name, handle) = &self.0[shard];
        let mut at_offset = offset;
        while !bytes.is_empty() {
            let step = &bytes[..bytes.len().min(STEP)];
            let written = handle
                .0
                .write_with_u8_array_and_options(step, &at(at_offset))
                .map_err(|e| QuantError::Source(write_error(name, &e)))?
                as usize;
            if written == 0 {
                return Err(QuantError::Source(format!(
                    "writing stored file {name}: nothing was written"
                )));
            }
            at_offset += written as u64;
            bytes = &bytes[written..];
        }
        Ok(())
    }
}

impl Shards {
    /// Flushes every file to storage (they close when dropped).
    pub fn flush(&self) -> Result<(), String> {
        for (name, handle) in &self.0 {
            handle
                .0
                .flush()
                .map_err(|e| format!("writing stored file {name}: {}", js_error(&e)))?;
        }
        Ok(())
    }
}

/// What a failed write says: the cause, and the fix when storage is full.
fn write_error(name: &str, e: &JsValue) -> String {
    let detail = js_error(e);
    if detail.contains("Quota") {
        format!(
            "the browser's storage for this page is full while writing {name}: free space by \
             removing stored models, or allow this site more storage"
        )
    } else {
        format!("writing stored file {name}: {detail}")
    }
}

/// Writes a file in chunks, computing its sha256.
pub struct FileWriter {
    name: String,
    handle: Handle,
    offset: u64,
    hash: Sha256,
}

impl FileWriter {
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        self.hash.update(bytes);
        while !bytes.is_empty() {
            let step = &bytes[..bytes.len().min(STEP)];
            let written = self
                .handle
                .0
                .write_with_u8_array_and_options(step, &at(self.offset))
                .map_err(|e| self.write_error(&e))? as usize;
            if written == 0 {
                return Err(self.write_error(&JsValue::from_str("nothing was written")));
            }
            self.offset += written as u64;
            bytes = &bytes[written..];
        }
        Ok(())
    }

    fn write_error(&self, e: &JsValue) -> String {
        write_error(&self.name, e)
    }

    /// Flushes and closes the file: its size and sha256 (hex).
    pub fn finish(self) -> Result<(u64, String), String> {
        self.handle
            .0
            .flush()
            .map_err(|e| format!("writing stored file {}: {}", self.name, js_error(&e)))?;
        let digest = self
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((self.offset, digest))
    }
}
