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
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(QuantError::Source(format!(
                "tensor {name} is {other:?}; only F32, F16 and BF16 checkpoints can be quantized"
            )));
        }
    })
}

/// How a tensor is stored: Q4 for the matrices of linear and convolution layers, F16 for other
/// tables (embeddings, the vision position grid), F32 for 1-D tensors (norms, biases).
fn encoding_of(name: &str, shape: &[usize]) -> Encoding {
    let cols: usize = shape.iter().skip(1).product();
    if shape.len() < 2 || name == HEAD {
        Encoding::F32
    } else if name.contains("embed_tokens") || name.contains("pos_embed") {
        Encoding::F16
    } else if cols.is_multiple_of(BLOCK) {
        Encoding::Q4B32
    } else {
        Encoding::F16
    }
}

/// Bytes one row takes in an encoding.
fn row_bytes(encoding: Encoding, cols: usize) -> usize {
    match encoding {
        Encoding::Q4B32 => cols / 2 + cols / BLOCK * 2,
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

/// Collects tensors into shards of at most `MAX_SHARD_BYTES` and writes them.
struct ShardWriter {
    dir: PathBuf,
    pending: Vec<StoredTensor>,
    pending_bytes: u64,
    written: Vec<FileEntry>,
}

impl ShardWriter {
    /// The index the next tensors land in, flushing first if they would not fit.
    fn reserve(&mut self, bytes: u64) -> Result<usize, QuantError> {
        if !self.pending.is_empty() && self.pending_bytes + bytes > MAX_SHARD_BYTES {
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
    std::fs::create_dir_all(out).map_err(io(out))?;
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

    let mut writer = ShardWriter {
        dir: out.to_path_buf(),
        pending: Vec::new(),
        pending_bytes: 0,
        written: Vec::new(),
    };
    let mut tensors = BTreeMap::new();
    let mut q4_tensors = 0;
    let source_bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).map_err(io(f)))
        .sum::<Result<u64, _>>()?;
    for (name, file) in &names {
        let view = parsed[*file]
            .tensor(name)
            .map_err(|e| QuantError::Source(format!("{name}: {e}")))?;
        let shape = view.shape().to_vec();
        let encoding = encoding_of(name, &shape);
        let cols: usize = shape.iter().skip(1).product::<usize>().max(1);
        let mut values = to_f32(&view, name)?;
        let (rows, kept_rows) = if name == HEAD {
            let kept: Vec<usize> = head_rows.to_vec();
            if let Some(&bad) = kept.iter().find(|&&r| r >= shape[0]) {
                return Err(QuantError::Source(format!(
                    "token id {bad} is outside {name} ({} rows)",
                    shape[0]
                )));
            }
            values = kept
                .iter()
                .flat_map(|&r| values[r * cols..(r + 1) * cols].to_vec())
                .collect();
            (kept.len(), Some(kept))
        } else if shape.len() < 2 {
            // A 1-D tensor is one row.
            (1, None)
        } else {
            (shape[0], None)
        };
        let cols = values.len() / rows.max(1);
        let per_part = (MAX_PART_BYTES as usize / row_bytes(encoding, cols).max(1)).max(1);
        let mut parts = Vec::new();
        for start in (0..rows).step_by(per_part) {
            let end = (start + per_part).min(rows);
            let key = if per_part >= rows {
                name.clone()
            } else {
                format!("{name}@{start}")
            };
            let chunk = &values[start * cols..end * cols];
            let shard = writer.reserve((row_bytes(encoding, cols) * (end - start)) as u64)?;
            match encoding {
                Encoding::Q4B32 => {
                    let q = q4::quantize(chunk, end - start, cols);
                    writer.push(StoredTensor {
                        key: format!("{key}.q4"),
                        dtype: Dtype::U8,
                        shape: vec![end - start, cols / 2],
                        bytes: q.packed,
                    });
                    writer.push(StoredTensor {
                        key: format!("{key}.scales"),
                        dtype: Dtype::F16,
                        shape: vec![end - start, cols / BLOCK],
                        bytes: q.scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                    });
                }
                Encoding::F16 => writer.push(StoredTensor {
                    key: key.clone(),
                    dtype: Dtype::F16,
                    shape: vec![end - start, cols],
                    bytes: le_bytes_f16(chunk),
                }),
                Encoding::F32 => writer.push(StoredTensor {
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
        q4_tensors += usize::from(encoding == Encoding::Q4B32);
        tensors.insert(
            name.clone(),
            TensorEntry {
                shape,
                encoding,
                kept_rows,
                parts,
            },
        );
    }
    writer.flush()?;

    let mut copied = Vec::new();
    for name in COPIED {
        let from = source.join(name);
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
    let shard_bytes = writer.written.iter().map(|s| s.bytes).sum();
    let report = QuantizeReport {
        tensors: tensors.len(),
        q4_tensors,
        source_bytes,
        shard_bytes,
        shards: writer.written.len(),
    };
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        block_size: BLOCK,
        files: copied,
        shards: writer.written,
        tensors,
    };
    let path = out.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("the manifest serialises");
    std::fs::write(&path, json).map_err(io(&path))?;
    Ok(report)
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
    let mut values: BTreeMap<&str, Vec<f32>> = manifest
        .tensors
        .iter()
        .map(|(name, e)| (name.as_str(), vec![0f32; e.shape.iter().product()]))
        .collect();
    for shard in 0..manifest.shards.len() {
        let bytes = model.read_shard(shard)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| QuantError::BadManifest {
            path: quantized.join(&manifest.shards[shard].file),
            detail: e.to_string(),
        })?;
        let get = |key: &str| {
            st.tensor(key).map_err(|e| QuantError::BadManifest {
                path: quantized.join(&manifest.shards[shard].file),
                detail: format!("{key}: {e}"),
            })
        };
        for (name, entry) in &manifest.tensors {
            let cols: usize = entry.shape.iter().skip(1).product::<usize>().max(1);
            let cols = if entry.shape.len() < 2 {
                entry.shape[0]
            } else {
                cols
            };
            for part in entry.parts.iter().filter(|p| p.shard == shard) {
                let [start, end] = part.rows;
                let chunk = match entry.encoding {
                    Encoding::Q4B32 => {
                        let packed = get(&format!("{}.q4", part.key))?.data().to_vec();
                        let scales = get(&format!("{}.scales", part.key))?
                            .data()
                            .chunks_exact(2)
                            .map(|b| f16::from_le_bytes([b[0], b[1]]))
                            .collect();
                        q4::Q4Tensor {
                            rows: end - start,
                            cols,
                            packed,
                            scales,
                        }
                        .dequantize()
                    }
                    Encoding::F16 | Encoding::F32 => to_f32(&get(&part.key)?, name)?,
                };
                let target = values
                    .get_mut(name.as_str())
                    .expect("every tensor has a buffer");
                match &entry.kept_rows {
                    Some(kept) => {
                        for (i, row) in (start..end).enumerate() {
                            let r = kept[row];
                            target[r * cols..(r + 1) * cols]
                                .copy_from_slice(&chunk[i * cols..(i + 1) * cols]);
                        }
                    }
                    None => target[start * cols..end * cols].copy_from_slice(&chunk),
                }
            }
        }
    }
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
