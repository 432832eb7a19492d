//! Conversion of a Hugging Face model directory to the 4-bit format, and back to f32 (for
//! measuring what quantization changes, and for loading a 4-bit model where no Q4 kernel runs).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{QuantError, io};
use crate::manifest::{
    Encoding, FORMAT, FileEntry, MANIFEST, MAX_PART_BYTES, MAX_SHARD_BYTES, Manifest, Part,
    QuantizedModel, TensorEntry, VERSION, read_checked, sha256_hex,
};
use crate::q4::{self, BLOCK};

/// Files copied unchanged from the source directory when present.
const COPIED: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "chat_template.json",
];

/// The untied head: only its "yes" and "no" rows are kept.
const HEAD: &str = "lm_head.weight";

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
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| QuantError::Source(format!("{}: {e}", index.display())))?;
        let map = json["weight_map"]
            .as_object()
            .ok_or_else(|| QuantError::Source(format!("{} has no weight_map", index.display())))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|v| v.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(QuantError::Source(format!(
        "{} has neither model.safetensors nor model.safetensors.index.json; pass a downloaded \
         Hugging Face model directory",
        dir.display()
    )))
}

fn to_f32(view: &TensorView, name: &str) -> Result<Vec<f32>, QuantError> {
    decode_f32(view.data(), view.dtype()).ok_or_else(|| {
        QuantError::Source(format!(
            "tensor {name} is {:?}; only F32, F16 and BF16 checkpoints can be quantized",
            view.dtype()
        ))
    })
}

/// Little-endian F32, F16 or BF16 values as f32 (`None` for other dtypes): how checkpoints
/// ship their floats.
pub fn decode_f32(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// How a tensor is stored: Q4 for the matrices of linear and convolution layers, F16 for other
/// tables (embeddings, the vision position grid), F32 for 1-D tensors (norms, biases).
fn encoding_of(name: &str, shape: &[usize]) -> Encoding {
    if shape.len() < 2 || name == HEAD {
        Encoding::F32
    } else if name.contains("embed_tokens") || name.contains("pos_embed") {
        Encoding::F16
    } else {
        Encoding::Q4B32
    }
}

/// Bytes one row takes in an encoding.
fn row_bytes(encoding: Encoding, cols: usize) -> usize {
    match encoding {
        Encoding::Q4B32 => q4::padded_cols(cols) / 2 + q4::padded_cols(cols) / BLOCK * 2,
        Encoding::F16 => cols * 2,
        Encoding::F32 => cols * 4,
    }
}

struct StoredTensor {
    key: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Collects tensors into shards of at most `max_bytes` and writes them.
struct ShardWriter {
    dir: PathBuf,
    max_bytes: u64,
    pending: Vec<StoredTensor>,
    pending_bytes: u64,
    written: Vec<FileEntry>,
}

impl ShardWriter {
    /// The index the next tensors land in, flushing first if they would not fit.
    fn reserve(&mut self, bytes: u64) -> Result<usize, QuantError> {
        if !self.pending.is_empty() && self.pending_bytes + bytes > self.max_bytes {
            self.flush()?;
        }
        self.pending_bytes += bytes;
        Ok(self.written.len())
    }

    fn push(&mut self, tensor: StoredTensor) {
        self.pending.push(tensor);
    }

    fn flush(&mut self) -> Result<(), QuantError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let views = self
            .pending
            .iter()
            .map(|t| {
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                    .map(|v| (t.key.clone(), v))
                    .map_err(|e| QuantError::Source(format!("{}: {e}", t.key)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = safetensors::serialize(views, None)
            .map_err(|e| QuantError::Source(format!("writing a shard: {e}")))?;
        let file = format!("q4-{:05}.safetensors", self.written.len() + 1);
        let path = self.dir.join(&file);
        std::fs::write(&path, &bytes).map_err(io(&path))?;
        self.written.push(FileEntry {
            file,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

fn le_bytes_f16(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect()
}

fn le_bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Converts the Hugging Face model in `source` to the 4-bit format in `out` (created if
/// missing). `head_rows` are the token ids whose head rows the score reads ("yes", "no").
/// Tensors are converted one at a time, in name order, so the output is the same bytes on
/// every run and platform.
pub fn quantize_model(
    source: &Path,
    out: &Path,
    head_rows: &[usize],
) -> Result<QuantizeReport, QuantError> {
    let files = source_files(source)?;
    // Map every source file and list its tensors, so tensors can be taken in name order.
    let maps = files
        .iter()
        .map(|path| {
            let file = File::open(path).map_err(io(path))?;
            // SAFETY: the file is only read, and a checkpoint is not modified while converting.
            unsafe { memmap2::Mmap::map(&file) }.map_err(io(path))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let parsed = maps
        .iter()
        .zip(&files)
        .map(|(map, path)| {
            SafeTensors::deserialize(map)
                .map_err(|e| QuantError::Source(format!("{}: {e}", path.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut names: Vec<(String, usize)> = parsed
        .iter()
        .enumerate()
        .flat_map(|(i, st)| st.names().into_iter().map(move |n| (n.to_string(), i)))
        .collect();
    names.sort();

    let mut writer = QuantizedWriter::create(out, head_rows)?;
    for (name, file) in &names {
        let view = parsed[*file]
            .tensor(name)
            .map_err(|e| QuantError::Source(format!("{name}: {e}")))?;
        writer.add(name, view.shape(), to_f32(&view, name)?)?;
    }
    let mut report = writer.finish(source)?;
    report.source_bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).map_err(io(f)))
        .sum::<Result<u64, _>>()?;
    Ok(report)
}

/// Writes a 4-bit model directory one tensor at a time, from any source of f32 tensors: a
/// checkpoint ([`quantize_model`]), or weights made in memory.
pub struct QuantizedWriter {
    out: PathBuf,
    head_rows: Vec<usize>,
    shards: ShardWriter,
    tensors: BTreeMap<String, TensorEntry>,
    q4_tensors: usize,
    f32_bytes: u64,
    part_bytes: u64,
}

impl QuantizedWriter {
    /// Starts writing into `out` (created if missing). `head_rows` are the head rows to keep.
    pub fn create(out: &Path, head_rows: &[usize]) -> Result<Self, QuantError> {
        std::fs::create_dir_all(out).map_err(io(out))?;
        Ok(Self {
            out: out.to_path_buf(),
            head_rows: head_rows.to_vec(),
            shards: ShardWriter {
                dir: out.to_path_buf(),
                max_bytes: MAX_SHARD_BYTES,
                pending: Vec::new(),
                pending_bytes: 0,
                written: Vec::new(),
            },
            tensors: BTreeMap::new(),
            q4_tensors: 0,
            f32_bytes: 0,
            part_bytes: MAX_PART_BYTES,
        })
    }

    /// Splits tensors into parts of at most `bytes` (default [`MAX_PART_BYTES`]), so that a
    /// reader streaming the model holds less at a time.
    pub fn with_part_bytes(mut self, bytes: u64) -> Self {
        self.part_bytes = bytes;
        self
    }

    /// Starts a new shard once one reaches `bytes` (default [`MAX_SHARD_BYTES`]): smaller
    /// files for hosts that limit them, and many shards from a small model in tests.
    pub fn with_shard_bytes(mut self, bytes: u64) -> Self {
        self.shards.max_bytes = bytes;
        self
    }

    /// Quantizes and stores the checkpoint tensor `name`. Names must come in ascending order,
    /// which makes the shards the same bytes whatever order the source lists them in.
    pub fn add(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> Result<(), QuantError> {
        if let Some((last, _)) = self.tensors.last_key_value()
            && last.as_str() >= name
        {
            return Err(QuantError::Source(format!(
                "tensor {name} comes after {last}; tensors must be added in name order"
            )));
        }
        if values.len() != shape.iter().product::<usize>() {
            return Err(QuantError::Source(format!(
                "tensor {name} has {} values, its shape {shape:?} needs {}",
                values.len(),
                shape.iter().product::<usize>()
            )));
        }
        self.f32_bytes += values.len() as u64 * 4;
        let encoding = encoding_of(name, shape);
        let cols: usize = shape.iter().skip(1).product::<usize>().max(1);
        let (values, rows, kept_rows) = if name == HEAD {
            let kept = self.head_rows.clone();
            if let Some(&bad) = kept.iter().find(|&&r| r >= shape[0]) {
                return Err(QuantError::Source(format!(
                    "token id {bad} is outside {name} ({} rows)",
                    shape[0]
                )));
            }
            let rows: Vec<f32> = kept
                .iter()
                .flat_map(|&r| values[r * cols..(r + 1) * cols].to_vec())
                .collect();
            (rows, kept.len(), Some(kept))
        } else if shape.len() < 2 {
            // A 1-D tensor is one row.
            (values, 1, None)
        } else {
            (values, shape[0], None)
        };
        let cols = values.len() / rows.max(1);
        let per_part = (self.part_bytes as usize / row_bytes(encoding, cols).max(1)).max(1);
        let mut parts = Vec::new();
        for start in (0..rows).step_by(per_part) {
            let end = (start + per_part).min(rows);
            let key = if per_part >= rows {
                name.to_string()
            } else {
                format!("{name}@{start}")
            };
            let chunk = &values[start * cols..end * cols];
            let shard = self
                .shards
                .reserve((row_bytes(encoding, cols) * (end - start)) as u64)?;
            match encoding {
                Encoding::Q4B32 => {
                    let q = q4::quantize(chunk, end - start, cols);
                    self.shards.push(StoredTensor {
                        key: format!("{key}.q4"),
                        dtype: Dtype::U8,
                        shape: vec![end - start, q4::padded_cols(cols) / 2],
                        bytes: q.packed,
                    });
                    self.shards.push(StoredTensor {
                        key: format!("{key}.scales"),
                        dtype: Dtype::F16,
                        shape: vec![end - start, q4::padded_cols(cols) / BLOCK],
                        bytes: q.scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                    });
                }
                Encoding::F16 => self.shards.push(StoredTensor {
                    key: key.clone(),
                    dtype: Dtype::F16,
                    shape: vec![end - start, cols],
                    bytes: le_bytes_f16(chunk),
                }),
                Encoding::F32 => self.shards.push(StoredTensor {
                    key: key.clone(),
                    dtype: Dtype::F32,
                    shape: vec![end - start, cols],
                    bytes: le_bytes_f32(chunk),
                }),
            }
            parts.push(Part {
                shard,
                rows: [start, end],
                key,
            });
        }
        self.q4_tensors += usize::from(encoding == Encoding::Q4B32);
        self.tensors.insert(
            name.to_string(),
            TensorEntry {
                shape: shape.to_vec(),
                encoding,
                kept_rows,
                parts,
            },
        );
        Ok(())
    }

    /// Writes the last shard, copies the model's other files (config, tokenizer, ...) from
    /// `files_from` where present, and writes the manifest. `source_bytes` in the report is the
    /// f32 size of the tensors added.
    pub fn finish(mut self, files_from: &Path) -> Result<QuantizeReport, QuantError> {
        self.shards.flush()?;
        let mut copied = Vec::new();
        for name in COPIED {
            let from = files_from.join(name);
            if from.is_file() {
                let bytes = std::fs::read(&from).map_err(io(&from))?;
                let to = self.out.join(name);
                std::fs::write(&to, &bytes).map_err(io(&to))?;
                copied.push(FileEntry {
                    file: name.to_string(),
                    bytes: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                });
            }
        }
        let shard_bytes = self.shards.written.iter().map(|s| s.bytes).sum();
        let report = QuantizeReport {
            tensors: self.tensors.len(),
            q4_tensors: self.q4_tensors,
            source_bytes: self.f32_bytes,
            shard_bytes,
            shards: self.shards.written.len(),
        };
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            block_size: BLOCK,
            files: copied,
            shards: self.shards.written,
            tensors: self.tensors,
        };
        let path = self.out.join(MANIFEST);
        let json = serde_json::to_string_pretty(&manifest).expect("the manifest serialises");
        std::fs::write(&path, json).map_err(io(&path))?;
        Ok(report)
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
