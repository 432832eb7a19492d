//! The on-disk format of a 4-bit model directory:
//!
//! - `sift-q4.json`, the manifest: the files copied from the source model (`config.json`,
//!   `tokenizer.json`, ...) and the shards, each with its size and sha256, and for every tensor
//!   of the source checkpoint its shape, encoding and where its rows are;
//! - shards `q4-00001.safetensors`, ...: ordinary safetensors files of at most 256 MB, so a
//!   browser can fetch, check and upload them one at a time and never hold the whole model.
//!
//! A Q4 tensor `W` is stored as `W.q4` (U8, `[rows, cols / 2]`) and `W.scales` (F16,
//! `[rows, cols / 32]`); other tensors as F16 (2-D and up) or F32 (1-D). A tensor larger than
//! 128 MB (an embedding table) is split into parts by rows, so no part exceeds WebGPU's default
//! `maxStorageBufferBindingSize`. The head (`lm_head.weight`, untied models) keeps only the
//! "yes" and "no" rows the score reads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{QuantError, io};
use crate::q4::BLOCK;

/// The manifest's file name.
pub const MANIFEST: &str = "sift-q4.json";
/// The largest shard written.
pub const MAX_SHARD_BYTES: u64 = 256 * 1024 * 1024;
/// The largest part of one tensor: WebGPU's default `maxStorageBufferBindingSize`.
pub const MAX_PART_BYTES: u64 = 128 * 1024 * 1024;

pub(crate) const FORMAT: &str = "sift-q4";
pub(crate) const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always `sift-q4`.
    pub format: String,
    pub version: u32,
    /// Values per Q4 scale.
    pub block_size: usize,
    /// Files copied unchanged from the source directory.
    pub files: Vec<FileEntry>,
    pub shards: Vec<FileEntry>,
    /// Every tensor of the source checkpoint, by its checkpoint name.
    pub tensors: BTreeMap<String, TensorEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// 4-bit, one f16 scale per 32 values of a row.
    Q4B32,
    F16,
    F32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorEntry {
    /// The source shape; Q4 tensors are stored as `[shape[0], product of the rest]`.
    pub shape: Vec<usize>,
    pub encoding: Encoding,
    /// Rows of the source tensor that are stored (all of them unless listed): the head keeps
    /// only the rows the score reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_rows: Option<Vec<usize>>,
    pub parts: Vec<Part>,
}

/// Rows `rows[0]..rows[1]` of a tensor (of its kept rows), stored in shard `shard` under `key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Part {
    pub shard: usize,
    pub rows: [usize; 2],
    pub key: String,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A digest as lowercase hex, as manifests write it.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// Parses and checks a manifest (`sift-q4.json`); `path` names it in error messages (a file
    /// or a URL).
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self, QuantError> {
        let bad = |detail: String| QuantError::BadManifest {
            path: path.to_path_buf(),
            detail,
        };
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if manifest.format != FORMAT || manifest.version != VERSION {
            return Err(bad(format!(
                "format {} version {}, but this sift reads {FORMAT} version {VERSION}",
                manifest.format, manifest.version
            )));
        }
        manifest.check().map_err(bad)?;
        Ok(manifest)
    }

    /// What readers rely on: file names that stay inside the model directory, and tensors whose
    /// sizes neither overflow nor exceed the bytes of the shards (so nothing larger is
    /// allocated than the files hold), with parts inside their rows.
    fn check(&self) -> Result<(), String> {
        if self.block_size != BLOCK {
            return Err(format!(
                "block size {}, but this sift reads {BLOCK}",
                self.block_size
            ));
        }
        if let Some(entry) = self
            .files
            .iter()
            .chain(&self.shards)
            .find(|f| !is_plain_file_name(&f.file))
        {
            return Err(format!(
                "the file name {:?} is not a plain file name inside the model directory",
                entry.file
            ));
        }
        let shard_bytes = self
            .shards
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.bytes))
            .ok_or("the shards' sizes overflow")?;
        for (name, entry) in &self.tensors {
            entry
                .check(self.shards.len(), shard_bytes)
                .map_err(|detail| format!("tensor {name}: {detail}"))?;
        }
        Ok(())
    }

    /// The entry of a file copied from the source model (`config.json`, ...), if listed.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.file == name)
    }

    /// Bytes of all shards and copied files: what storing the model takes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().chain(&self.shards).map(|f| f.bytes).sum()
    }
}

/// A name without directories, so joining it to the model directory (or its URL) stays inside.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0', ':'])
}

impl TensorEntry {
    /// Checks the entry against a model of `shards` shards holding `shard_bytes` in all.
    fn check(&self, shards: usize, shard_bytes: u64) -> Result<(), String> {
        let shape = &self.shape;
        let values = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("its shape {shape:?} overflows"))?;
        if values == 0 {
            return Err(format!("its shape {shape:?} holds no values"));
        }
        let rows = self.stored_rows();
        let cols = self.row_len();
        let row_bytes = match self.encoding {
            // Packed values (half a byte each) and an f16 scale per block, rows padded to blocks.
            Encoding::Q4B32 => cols
                .checked_next_multiple_of(BLOCK)
                .map(|width| width / 2 + width / BLOCK * 2),
            Encoding::F16 => cols.checked_mul(2),
            Encoding::F32 => cols.checked_mul(4),
        };
        let bytes = row_bytes.and_then(|b| b.checked_mul(rows));
        if bytes.is_none_or(|b| b as u64 > shard_bytes) {
            return Err(format!(
                "its shape {shape:?} does not fit in the {shard_bytes} bytes of the shards"
            ));
        }
        if let Some(kept) = &self.kept_rows
            && let Some(row) = kept.iter().find(|&&r| shape.len() < 2 || r >= shape[0])
        {
            return Err(format!("it keeps row {row}, outside its shape {shape:?}"));
        }
        for part in &self.parts {
            let [start, end] = part.rows;
            if part.shard >= shards {
                return Err(format!("it names shard {} of {shards}", part.shard));
            }
            if start >= end || end > rows {
                return Err(format!(
                    "a part holds rows {start}..{end} of its {rows} stored rows"
                ));
            }
        }
        Ok(())
    }
}

impl FileEntry {
    /// Checks that `bytes` are this file's: its size, then its sha256.
    pub fn check(&self, bytes: &[u8]) -> Result<(), QuantError> {
        if bytes.len() as u64 != self.bytes {
            return Err(QuantError::SizeMismatch {
                file: self.file.clone(),
                expected: self.bytes,
                found: bytes.len() as u64,
            });
        }
        let digest = sha256_hex(bytes);
        if digest != self.sha256 {
            return Err(QuantError::ChecksumMismatch {
                file: self.file.clone(),
                expected: self.sha256.clone(),
                found: digest,
            });
        }
        Ok(())
    }
}

/// A quantized model directory whose manifest has been read. Shards are read and checked one
/// at a time with [`QuantizedModel::read_shard`].
#[derive(Debug, Clone)]
pub struct QuantizedModel {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl QuantizedModel {
    /// Reads and checks the manifest (not the shards).
    pub fn open(dir: &Path) -> Result<Self, QuantError> {
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Err(QuantError::NotQuantized {
                dir: dir.to_path_buf(),
            });
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: Manifest::from_json(&bytes, &path)?,
        })
    }

    /// The bytes of shard `index`, after checking its size and sha256 against the manifest.
    pub fn read_shard(&self, index: usize) -> Result<Vec<u8>, QuantError> {
        read_checked(&self.dir, &self.manifest.shards[index])
    }

    /// The bytes of a file copied from the source model (`config.json`, `tokenizer.json`, ...),
    /// checked like a shard.
    pub fn read_file(&self, name: &str) -> Result<Vec<u8>, QuantError> {
        let entry = self
            .manifest
            .file(name)
            .ok_or_else(|| QuantError::BadManifest {
                path: self.dir.join(MANIFEST),
                detail: format!("it lists no {name}"),
            })?;
        read_checked(&self.dir, entry)
    }

    /// Checks every shard and copied file without keeping them: for `sift quantize --check`
    /// style verification and tests.
    pub fn verify(&self) -> Result<(), QuantError> {
        for entry in self.manifest.files.iter().chain(&self.manifest.shards) {
            read_checked(&self.dir, entry)?;
        }
        Ok(())
    }
}

/// Reads a file named by the manifest, checking that it exists and its size before reading
/// and its sha256 after.
pub(crate) fn read_checked(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>, QuantError> {
    let path = dir.join(&entry.file);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(QuantError::MissingShard {
                file: entry.file.clone(),
            });
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let found = file.metadata().map_err(io(&path))?.len();
    if found != entry.bytes {
        return Err(QuantError::SizeMismatch {
            file: entry.file.clone(),
            expected: entry.bytes,
            found,
        });
    }
    let mut bytes = Vec::with_capacity(found as usize);
    file.read_to_end(&mut bytes).map_err(io(&path))?;
    entry.check(&bytes)?;
    Ok(bytes)
}
