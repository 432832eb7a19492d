//! A Hugging Face model directory converted to the 4-bit format and written to disk (through
//! the streaming conversion of `convert`), and a 4-bit model written back as f32 (for measuring
//! what quantization changes, and for loading a 4-bit model where no Q4 kernel runs).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use sha2::{Digest, Sha256};

use crate::convert::{
    CHECKPOINT_INDEX, COPIED_FILES, Conversion, HeaderReader, ShardOutput, SourcePlan,
    SourceTensor, SourceWriter, checkpoint_shards,
};
use crate::error::{QuantError, io};
use crate::manifest::{
    Encoding, FileEntry, MANIFEST, Manifest, QuantizedModel, hex, read_checked, sha256_hex,
};

/// Bytes read from a file per call.
const READ_STEP: usize = 8 << 20;

/// What `quantize_model` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeReport {
    pub tensors: usize,
    pub q4_tensors: usize,
    pub source_bytes: u64,
    pub shard_bytes: u64,
    pub shards: usize,
}

/// The safetensors files of a Hugging Face model directory.
fn source_files(dir: &Path) -> Result<Vec<PathBuf>, QuantError> {
    let index = dir.join(CHECKPOINT_INDEX);
    if index.is_file() {
        let bytes = std::fs::read(&index).map_err(io(&index))?;
        let files = checkpoint_shards(&bytes)
            .map_err(|e| QuantError::Source(format!("{}: {e}", dir.display())))?;
        return Ok(files.iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(QuantError::Source(format!(
        "{} has neither model.safetensors nor {CHECKPOINT_INDEX}; pass a downloaded Hugging \
         Face model directory",
        dir.display()
    )))
}

fn le_bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Output shards as files of a directory, written at offsets.
struct DirOutput {
    files: Vec<(PathBuf, File)>,
}

impl DirOutput {
    /// Creates (or empties) the files of `plan`'s shards in `dir`.
    fn create(dir: &Path, plan: &SourcePlan) -> Result<Self, QuantError> {
        let files = plan
            .shards
            .iter()
            .map(|shard| {
                let path = dir.join(&shard.file);
                File::create(&path)
                    .map(|f| (path.clone(), f))
                    .map_err(io(&path))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { files })
    }
}

impl ShardOutput for DirOutput {
    fn write_at(&mut self, shard: usize, offset: u64, bytes: &[u8]) -> Result<(), QuantError> {
        let (path, file) = &mut self.files[shard];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.write_all(bytes))
            .map_err(io(path))
    }
}

/// A written file's size and sha256, read back in steps.
fn file_entry(dir: &Path, name: &str) -> Result<FileEntry, QuantError> {
    let path = dir.join(name);
    let mut file = File::open(&path).map_err(io(&path))?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; READ_STEP];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io(&path))?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok(FileEntry {
        file: name.to_string(),
        bytes,
        sha256: hex(&hash.finalize()),
    })
}

/// Converts the source file at `path` (read front to back once) into its shards in `out`.
fn convert_file(conversion: &mut Conversion, path: &Path, out: &Path) -> Result<(), QuantError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut chunk = vec![0u8; READ_STEP];
    let mut read = |chunk: &mut [u8]| file.read(chunk).map_err(io(path));
    let mut header = HeaderReader::default();
    let (plan, used, n) = loop {
        let n = read(&mut chunk)?;
        if n == 0 {
            return Err(QuantError::Source(format!(
                "{} ends inside its header: it is not a whole safetensors file",
                path.display()
            )));
        }
        if let Some((tensors, used)) = header.push(&chunk[..n])? {
            let plan = conversion
                .plan(tensors)
                .map_err(|e| QuantError::Source(format!("{}: {e}", path.display())))?;
            break (plan, used, n);
        }
    };
    let mut output = DirOutput::create(out, &plan)?;
    let mut writer = plan.into_writer();
    writer.feed(&chunk[used..n], &mut output)?;
    loop {
        let n = read(&mut chunk)?;
        if n == 0 {
            break;
        }
        writer.feed(&chunk[..n], &mut output)?;
    }
    let plan = writer
        .finish(&mut output)
        .map_err(|e| QuantError::Source(format!("{}: {e}", path.display())))?;
    drop(output);
    let written = plan
        .shards
        .iter()
        .map(|s| file_entry(out, &s.file))
        .collect::<Result<_, _>>()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    conversion.record(&name, &plan, written)
}

/// Copies the model's other files (config, tokenizer, ...) from `files_from` where present,
/// writes the manifest, and says what was written.
fn finish(
    conversion: &Conversion,
    files_from: &Path,
    out: &Path,
) -> Result<QuantizeReport, QuantError> {
    let mut copied = Vec::new();
    for name in COPIED_FILES {
        let from = files_from.join(name);
        if from.is_file() {
            let bytes = std::fs::read(&from).map_err(io(&from))?;
            let to = out.join(name);
            std::fs::write(&to, &bytes).map_err(io(&to))?;
            copied.push(FileEntry {
                file: name.to_string(),
                bytes: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            });
        }
    }
    let manifest = conversion.manifest(copied);
    let path = out.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("the manifest serialises");
    std::fs::write(&path, json).map_err(io(&path))?;
    Ok(QuantizeReport {
        tensors: manifest.tensors.len(),
        q4_tensors: manifest
            .tensors
            .values()
            .filter(|t| t.encoding == Encoding::Q4B32)
            .count(),
        source_bytes: conversion.source_bytes,
        shard_bytes: manifest.shards.iter().map(|s| s.bytes).sum(),
        shards: manifest.shards.len(),
    })
}

/// Converts the Hugging Face model in `source` to the 4-bit format in `out` (created if
/// missing). `head_rows` are the token ids whose head rows the score reads ("yes", "no").
/// Each source file is read once, front to back, and converted as it is read (as the browser
/// converts a download), so memory stays small whatever the files' size; the output is the
/// same bytes on every run and platform.
pub fn quantize_model(
    source: &Path,
    out: &Path,
    head_rows: &[usize],
) -> Result<QuantizeReport, QuantError> {
    let files = source_files(source)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut conversion = Conversion::new(head_rows);
    for path in &files {
        convert_file(&mut conversion, path, out)?;
    }
    finish(&conversion, source, out)
}

/// Output shards held in memory, each sized as planned.
struct MemoryOutput {
    shards: Vec<Vec<u8>>,
}

impl ShardOutput for MemoryOutput {
    fn write_at(&mut self, shard: usize, offset: u64, bytes: &[u8]) -> Result<(), QuantError> {
        let offset = offset as usize;
        self.shards[shard][offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
}

/// Where a [`QuantizedWriter`] puts the shards.
enum WriterOutput {
    Dir(PathBuf, DirOutput),
    Memory(MemoryOutput),
}

impl ShardOutput for WriterOutput {
    fn write_at(&mut self, shard: usize, offset: u64, bytes: &[u8]) -> Result<(), QuantError> {
        match self {
            Self::Dir(_, out) => out.write_at(shard, offset, bytes),
            Self::Memory(out) => out.write_at(shard, offset, bytes),
        }
    }
}

/// A 4-bit model made in memory ([`QuantizedWriter::in_memory`]): its manifest, its other
/// files and its shards, as a download of the directory would give them.
pub struct InMemoryModel {
    pub manifest: Manifest,
    /// The copied files (config, tokenizer) by name.
    pub files: Vec<(String, Vec<u8>)>,
    /// The shards, in the manifest's order.
    pub shards: Vec<Vec<u8>>,
}

/// Writes a 4-bit model from weights made in memory, one tensor at a time, to a directory or
/// into memory: they go through the same conversion as a checkpoint's, as one source file of
/// f32 tensors.
pub struct QuantizedWriter {
    conversion: Conversion,
    writer: SourceWriter,
    output: WriterOutput,
    /// Index of the next tensor, in name order.
    next: usize,
    names: Vec<String>,
}

impl QuantizedWriter {
    /// Starts writing into `out` (created if missing) the tensors `tensors` (names and shapes)
    /// lists; `conversion` says which head rows to keep and the shard and part sizes.
    pub fn create(
        out: &Path,
        conversion: Conversion,
        tensors: &[(String, Vec<usize>)],
    ) -> Result<Self, QuantError> {
        std::fs::create_dir_all(out).map_err(io(out))?;
        Self::start(conversion, tensors, |plan| {
            Ok(WriterOutput::Dir(
                out.to_path_buf(),
                DirOutput::create(out, plan)?,
            ))
        })
    }

    /// Like [`create`](Self::create), keeping the shards in memory (where nothing can be
    /// written, as in a browser): [`finish_in_memory`](Self::finish_in_memory) returns them.
    pub fn in_memory(
        conversion: Conversion,
        tensors: &[(String, Vec<usize>)],
    ) -> Result<Self, QuantError> {
        Self::start(conversion, tensors, |plan| {
            Ok(WriterOutput::Memory(MemoryOutput {
                shards: plan
                    .shards
                    .iter()
                    .map(|s| vec![0; s.bytes as usize])
                    .collect(),
            }))
        })
    }

    fn start(
        conversion: Conversion,
        tensors: &[(String, Vec<usize>)],
        output: impl FnOnce(&SourcePlan) -> Result<WriterOutput, QuantError>,
    ) -> Result<Self, QuantError> {
        let listed = SourceTensor::laid_out(tensors, Dtype::F32);
        let names = listed.iter().map(|t| t.name.clone()).collect();
        let plan = conversion.plan(listed)?;
        let output = output(&plan)?;
        Ok(Self {
            conversion,
            writer: plan.into_writer(),
            output,
            next: 0,
            names,
        })
    }

    /// Quantizes and stores tensor `name`, its values row-major (taken a few at a time, so a
    /// generator needs no buffer of its own). Tensors come in name order, as listed.
    pub fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        values: impl IntoIterator<Item = f32>,
    ) -> Result<(), QuantError> {
        let expected = self
            .names
            .get(self.next)
            .map_or("no more tensors", String::as_str);
        if expected != name {
            return Err(QuantError::Source(format!(
                "tensor {name} was given where {expected} comes next; tensors are added in \
                 name order, as listed when the writer was created"
            )));
        }
        let needed = shape.iter().product::<usize>();
        let mut given = 0;
        let mut values = values.into_iter();
        loop {
            let bytes: Vec<u8> = values
                .by_ref()
                .take(1 << 18)
                .flat_map(f32::to_le_bytes)
                .collect();
            if bytes.is_empty() {
                break;
            }
            given += bytes.len() / 4;
            if given > needed {
                break;
            }
            self.writer.feed(&bytes, &mut self.output)?;
        }
        if given != needed {
            let given = if given > needed {
                format!("more than {needed}")
            } else {
                given.to_string()
            };
            return Err(QuantError::Source(format!(
                "tensor {name} was given {given} values; its shape {shape:?} needs {needed}"
            )));
        }
        self.next += 1;
        Ok(())
    }

    /// Writes the manifest, with the model's other files (config, tokenizer, ...) copied from
    /// `files_from` where present. `source_bytes` in the report is the f32 size of the tensors.
    ///
    /// # Panics
    /// If the writer was made [`in_memory`](Self::in_memory).
    pub fn finish(mut self, files_from: &Path) -> Result<QuantizeReport, QuantError> {
        let plan = self.writer.finish(&mut self.output)?;
        let WriterOutput::Dir(out, output) = self.output else {
            panic!("QuantizedWriter::finish is for a writer made by create");
        };
        drop(output);
        let written = plan
            .shards
            .iter()
            .map(|s| file_entry(&out, &s.file))
            .collect::<Result<_, _>>()?;
        self.conversion
            .record("tensors made in memory", &plan, written)?;
        finish(&self.conversion, files_from, &out)
    }

    /// The model made by a writer from [`in_memory`](Self::in_memory), with `files` (name and
    /// bytes: the config and tokenizer) listed in its manifest.
    ///
    /// # Panics
    /// If the writer was made by [`create`](Self::create).
    pub fn finish_in_memory(
        mut self,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<InMemoryModel, QuantError> {
        let plan = self.writer.finish(&mut self.output)?;
        let WriterOutput::Memory(MemoryOutput { shards }) = self.output else {
            panic!("QuantizedWriter::finish_in_memory is for a writer made by in_memory");
        };
        let entry = |file: &str, bytes: &[u8]| FileEntry {
            file: file.to_string(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        };
        let written = plan
            .shards
            .iter()
            .zip(&shards)
            .map(|(s, bytes)| entry(&s.file, bytes))
            .collect();
        self.conversion
            .record("tensors made in memory", &plan, written)?;
        let manifest = self.conversion.manifest(
            files
                .iter()
                .map(|(name, bytes)| entry(name, bytes))
                .collect(),
        );
        Ok(InMemoryModel {
            manifest,
            files,
            shards,
        })
    }
}

/// Writes the f32 weights a 4-bit model stands for, as a Hugging Face directory
/// (`model.safetensors` and the copied files) that any f32 loader reads. Every shard is checked
/// first. Holds the whole f32 model in memory: meant for measuring quantization, not for the
/// 8B model on a small machine. Head rows that were not kept are zero (the score never reads them).
pub fn dequantize_model(quantized: &Path, out: &Path) -> Result<(), QuantError> {
    let model = QuantizedModel::open(quantized)?;
    let manifest = &model.manifest;
    std::fs::create_dir_all(out).map_err(io(out))?;
    for entry in &manifest.files {
        let bytes = read_checked(quantized, entry)?;
        let to = out.join(&entry.file);
        std::fs::write(&to, bytes).map_err(io(&to))?;
    }
    let mut values: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    model.read_tensors::<QuantError>(|name, entry, stored| {
        let stored = stored.to_f32();
        let full = match &entry.kept_rows {
            // Rows that were not kept stay zero.
            Some(kept) => {
                let cols = entry.row_len();
                let mut full = vec![0f32; entry.shape.iter().product()];
                for (i, &row) in kept.iter().enumerate() {
                    full[row * cols..(row + 1) * cols]
                        .copy_from_slice(&stored[i * cols..(i + 1) * cols]);
                }
                full
            }
            None => stored,
        };
        let (name, _) = manifest
            .tensors
            .get_key_value(name)
            .expect("read_tensors names manifest tensors");
        values.insert(name.as_str(), full);
        Ok(())
    })?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = manifest
        .tensors
        .iter()
        .map(|(name, e)| {
            (
                name.clone(),
                e.shape.clone(),
                le_bytes_f32(&values[name.as_str()]),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| QuantError::Source(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let path = out.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path)
        .map_err(|e| QuantError::Source(format!("{}: {e}", path.display())))?;
    Ok(())
}
