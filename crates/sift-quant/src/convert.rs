//! Conversion as the bytes arrive: a source safetensors file is read front to back once (a
//! download's body, a file on disk), and every tensor is quantized row group by row group as
//! its bytes come, into output shards written at offsets planned from the file's header alone.
//! So the host holds one row group at a time, never a whole tensor or a whole source file, and
//! the browser and the CLI write the same bytes through the same code.
//!
//! Each source file becomes its own output shards (tensors in name order, a new shard when one
//! is full), numbered after the shards of the files before it: a conversion stopped between
//! source files resumes from its [`Conversion`] record without the earlier files.

use std::collections::BTreeMap;

use half::f16;
use safetensors::Dtype;
#[cfg(test)]
use safetensors::serialize;
use safetensors::tensor::{Metadata, TensorInfo};
use serde::{Deserialize, Serialize};

use crate::encoding::{HEAD, decode_f32, encoding_of, row_bytes};
use crate::error::QuantError;
use crate::manifest::{
    Encoding, FORMAT, FileEntry, MAX_PART_BYTES, MAX_SHARD_BYTES, Manifest, Part, TensorEntry,
    VERSION,
};
use crate::q4::{self, BLOCK};

/// The largest header accepted (safetensors' own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Source bytes gathered before a group of rows is converted: few calls to the output, little
/// memory.
const ROW_GROUP_BYTES: usize = 1 << 20;

/// Files copied unchanged from the source directory when present.
pub const COPIED_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "chat_template.json",
];

/// The index of a sharded Hugging Face checkpoint.
pub const CHECKPOINT_INDEX: &str = "model.safetensors.index.json";

/// The shard files a checkpoint index (`model.safetensors.index.json`) lists, sorted, once
/// each: the order every converter takes them in.
pub fn checkpoint_shards(index_json: &[u8]) -> Result<Vec<String>, QuantError> {
    let json: serde_json::Value = serde_json::from_slice(index_json)
        .map_err(|e| QuantError::Source(format!("{CHECKPOINT_INDEX}: {e}")))?;
    let map = json["weight_map"]
        .as_object()
        .ok_or_else(|| QuantError::Source(format!("{CHECKPOINT_INDEX} has no weight_map")))?;
    let mut files = Vec::new();
    for file in map.values() {
        let file = file
            .as_str()
            .filter(|f| crate::manifest::is_plain_file_name(f));
        let file = file.ok_or_else(|| {
            QuantError::Source(format!(
                "{CHECKPOINT_INDEX} names a shard {file:?} that is not a plain file name"
            ))
        })?;
        files.push(file.to_string());
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// A tensor as a source file's header lists it; `start..end` within the data section.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub start: u64,
    pub end: u64,
}

impl SourceTensor {
    /// Tensors of `dtype` laid out one after another in name order, as one source file would
    /// hold them: for weights made in memory, or a model planned from its shapes alone.
    pub fn laid_out(tensors: &[(String, Vec<usize>)], dtype: Dtype) -> Vec<SourceTensor> {
        let mut sorted = tensors.to_vec();
        sorted.sort();
        let mut start = 0u64;
        sorted
            .into_iter()
            .map(|(name, shape)| {
                let end = start + (shape.iter().product::<usize>() * dtype.bitsize() / 8) as u64;
                let tensor = SourceTensor {
                    name,
                    dtype,
                    shape,
                    start,
                    end,
                };
                start = end;
                tensor
            })
            .collect()
    }
}

/// Reads the front of a safetensors file, chunk by chunk, until its header is whole.
#[derive(Default)]
pub struct HeaderReader {
    bytes: Vec<u8>,
}

impl HeaderReader {
    /// Takes the next bytes of the file. Once the header is whole: its tensors in data order,
    /// and how many bytes of `chunk` it used (the rest is the start of the data).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Option<(Vec<SourceTensor>, usize)>, QuantError> {
        let before = self.bytes.len();
        let wanted = if before < 8 {
            8 - before
        } else {
            self.header_len()? + 8 - before
        };
        let take = wanted.min(chunk.len());
        self.bytes.extend_from_slice(&chunk[..take]);
        if self.bytes.len() == 8 && take < chunk.len() {
            // The length is known now: take the header from the rest of the chunk.
            let (more, used) = match self.push(&chunk[take..])? {
                Some((tensors, used)) => (Some(tensors), used),
                None => (None, chunk.len() - take),
            };
            return Ok(more.map(|t| (t, take + used)));
        }
        if self.bytes.len() >= 8 && self.bytes.len() == self.header_len()? + 8 {
            return Ok(Some((parse_header(&self.bytes[8..])?, take)));
        }
        Ok(None)
    }

    fn header_len(&self) -> Result<usize, QuantError> {
        let n = u64::from_le_bytes(self.bytes[..8].try_into().expect("8 bytes"));
        if n > MAX_HEADER_BYTES {
            return Err(QuantError::Source(format!(
                "a safetensors header of {n} bytes (the limit is {MAX_HEADER_BYTES}): this is \
                 not a safetensors file, or it is damaged"
            )));
        }
        Ok(n as usize)
    }
}

/// A header entry, in u64: a source file of several GB has offsets past wasm32's `usize`,
/// which `safetensors`' own `TensorInfo` and its size checks overflow.
#[derive(Deserialize)]
struct HeaderEntry {
    dtype: Dtype,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The tensors a safetensors header (its JSON) lists, in data order, checked: offsets that
/// tile the data section, sizes that match shapes.
pub fn parse_header(json: &[u8]) -> Result<Vec<SourceTensor>, QuantError> {
    let bad = |e: String| QuantError::Source(format!("a safetensors header: {e}"));
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let mut entries = map
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, value)| {
            serde_json::from_value::<HeaderEntry>(value)
                .map(|entry| (name.clone(), entry))
                .map_err(|e| bad(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|(_, entry)| entry.data_offsets);
    let mut end = 0u64;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        let (start, stop) = entry.data_offsets;
        let bits = entry
            .shape
            .iter()
            .try_fold(entry.dtype.bitsize() as u64, |n, &d| n.checked_mul(d));
        let size = bits.filter(|b| b % 8 == 0).map(|b| b / 8);
        if start != end || Some(stop.wrapping_sub(start)) != size || stop < start {
            return Err(bad(format!(
                "tensor {name}'s bytes {start}..{stop} do not follow the previous tensor's (which \
                 end at {end}) or do not match its shape {:?}",
                entry.shape
            )));
        }
        let shape = entry
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad(format!("tensor {name} is too large"))))
            .collect::<Result<_, _>>()?;
        tensors.push(SourceTensor {
            name,
            dtype: entry.dtype,
            shape,
            start,
            end: stop,
        });
        end = stop;
    }
    Ok(tensors)
}

/// Bytes of one value, for the dtypes a checkpoint's floats come in.
fn value_bytes(tensor: &SourceTensor) -> Result<usize, QuantError> {
    match tensor.dtype {
        Dtype::F32 => Ok(4),
        Dtype::F16 | Dtype::BF16 => Ok(2),
        other => Err(QuantError::Source(format!(
            "tensor {} is {other:?}; only F32, F16 and BF16 checkpoints can be quantized",
            tensor.name
        ))),
    }
}

/// A whole model's conversion so far: the source files done, the shards they became and the
/// tensors in them. Saved between source files, it is all a stopped conversion needs to go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    /// Head rows kept (the score's "yes" and "no" token ids).
    pub head_rows: Vec<usize>,
    pub shard_bytes: u64,
    pub part_bytes: u64,
    /// Source files converted, in the order they were.
    pub sources: Vec<String>,
    pub shards: Vec<FileEntry>,
    pub tensors: BTreeMap<String, TensorEntry>,
    /// Bytes of the source files converted.
    pub source_bytes: u64,
}

impl Conversion {
    /// A conversion that keeps the head rows `head_rows`, with the default shard and part sizes.
    pub fn new(head_rows: &[usize]) -> Self {
        Self {
            head_rows: head_rows.to_vec(),
            shard_bytes: MAX_SHARD_BYTES,
            part_bytes: MAX_PART_BYTES,
            sources: Vec::new(),
            shards: Vec::new(),
            tensors: BTreeMap::new(),
            source_bytes: 0,
        }
    }

    /// Starts a new shard once one reaches `bytes`: smaller files for hosts that limit them,
    /// and many shards from a small model in tests.
    pub fn with_shard_bytes(mut self, bytes: u64) -> Self {
        self.shard_bytes = bytes;
        self
    }

    /// Splits tensors into parts of at most `bytes`, so that a reader holds less at a time.
    pub fn with_part_bytes(mut self, bytes: u64) -> Self {
        self.part_bytes = bytes;
        self
    }

    /// Plans the output of the source file whose header lists `tensors`: its shards (after
    /// those already written), their headers, and where every stored row goes.
    pub fn plan(&self, tensors: Vec<SourceTensor>) -> Result<SourcePlan, QuantError> {
        let data_len = tensors.last().map_or(0, |t| t.end);
        let mut by_name: Vec<usize> = (0..tensors.len()).collect();
        by_name.sort_by(|&a, &b| tensors[a].name.cmp(&tensors[b].name));
        let mut packing = Packing {
            max_bytes: self.shard_bytes,
            shards: Vec::new(),
            pending_bytes: 0,
        };
        let mut planned: Vec<Option<PlannedTensor>> = vec![None; tensors.len()];
        for index in by_name {
            let source = &tensors[index];
            if self.tensors.contains_key(&source.name) {
                return Err(QuantError::Source(format!(
                    "tensor {} is in two source files; the checkpoint is inconsistent",
                    source.name
                )));
            }
            planned[index] = Some(self.plan_tensor(source, &mut packing)?);
        }
        let first_shard = self.shards.len();
        let shards = packing
            .shards
            .iter()
            .enumerate()
            .map(|(i, stored)| {
                plan_shard(format!("q4-{:05}.safetensors", first_shard + i + 1), stored)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut tensors: Vec<PlannedTensor> =
            planned.into_iter().map(|t| t.expect("planned")).collect();
        // Each piece's offset within its shard, now that the shard's layout is known.
        for tensor in &mut tensors {
            for part in &mut tensor.parts {
                for piece in &mut part.pieces {
                    piece.offset = shards[piece.shard].offsets[&piece.key];
                }
            }
        }
        Ok(SourcePlan {
            shards,
            tensors,
            data_len,
        })
    }

    fn plan_tensor(
        &self,
        source: &SourceTensor,
        packing: &mut Packing,
    ) -> Result<PlannedTensor, QuantError> {
        let name = &source.name;
        let shape = &source.shape;
        let value_bytes = value_bytes(source)?;
        let encoding = encoding_of(name, shape);
        let (source_rows, cols) = match shape.len() {
            0 => (1, 1),
            1 => (1, shape[0]),
            _ => (shape[0], shape[1..].iter().product()),
        };
        let kept = if name == HEAD {
            if let Some(&bad) = self.head_rows.iter().find(|&&r| r >= source_rows) {
                return Err(QuantError::Source(format!(
                    "token id {bad} is outside {name} ({source_rows} rows)"
                )));
            }
            Some(self.head_rows.clone())
        } else {
            None
        };
        let stored_rows = kept.as_ref().map_or(source_rows, Vec::len);
        let row = row_bytes(encoding, cols);
        let per_part = (self.part_bytes as usize / row.max(1)).max(1);
        let mut parts = Vec::new();
        for start in (0..stored_rows).step_by(per_part) {
            let end = (start + per_part).min(stored_rows);
            let key = if per_part >= stored_rows {
                name.clone()
            } else {
                format!("{name}@{start}")
            };
            let shard = packing.reserve((row * (end - start)) as u64);
            let rows = end - start;
            let pieces = match encoding {
                Encoding::Q4B32 => {
                    let width = q4::padded_cols(cols);
                    vec![
                        packing.add(shard, format!("{key}.q4"), Dtype::U8, vec![rows, width / 2]),
                        packing.add(
                            shard,
                            format!("{key}.scales"),
                            Dtype::F16,
                            vec![rows, width / BLOCK],
                        ),
                    ]
                }
                Encoding::F16 => {
                    vec![packing.add(shard, key.clone(), Dtype::F16, vec![rows, cols])]
                }
                Encoding::F32 => {
                    vec![packing.add(shard, key.clone(), Dtype::F32, vec![rows, cols])]
                }
            };
            parts.push(PlannedPart {
                rows: [start, end],
                pieces,
                part: Part {
                    shard: self.shards.len() + shard,
                    rows: [start, end],
                    key,
                },
            });
        }
        Ok(PlannedTensor {
            source: source.clone(),
            value_bytes,
            encoding,
            cols,
            kept,
            parts,
        })
    }

    /// Records source file `name`, converted by `plan` into the shards `written` (their sizes
    /// and sha256, read back once written).
    pub fn record(
        &mut self,
        name: &str,
        plan: &SourcePlan,
        written: Vec<FileEntry>,
    ) -> Result<(), QuantError> {
        for (planned, entry) in plan.shards.iter().zip(&written) {
            if planned.file != entry.file || planned.bytes != entry.bytes {
                return Err(QuantError::Source(format!(
                    "{} holds {} bytes, {} were planned: the output was changed while it was \
                     written",
                    entry.file, entry.bytes, planned.bytes
                )));
            }
        }
        if written.len() != plan.shards.len() {
            return Err(QuantError::Source(format!(
                "{} shards written of {} planned",
                written.len(),
                plan.shards.len()
            )));
        }
        self.sources.push(name.to_string());
        self.shards.extend(written);
        self.source_bytes += plan.data_len;
        for tensor in &plan.tensors {
            self.tensors.insert(
                tensor.source.name.clone(),
                TensorEntry {
                    shape: tensor.source.shape.clone(),
                    encoding: tensor.encoding,
                    kept_rows: tensor.kept.clone(),
                    parts: tensor.parts.iter().map(|p| p.part.clone()).collect(),
                },
            );
        }
        Ok(())
    }

    /// The manifest of the finished model, with the copied `files`.
    pub fn manifest(&self, files: Vec<FileEntry>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            block_size: BLOCK,
            files,
            shards: self.shards.clone(),
            tensors: self.tensors.clone(),
        }
    }
}

/// Tensors packed into shards in name order: a new shard once the next would overflow one.
struct Packing {
    max_bytes: u64,
    shards: Vec<Vec<(String, Dtype, Vec<usize>)>>,
    pending_bytes: u64,
}

impl Packing {
    /// The shard the next `bytes` land in.
    fn reserve(&mut self, bytes: u64) -> usize {
        let full = self.pending_bytes > 0 && self.pending_bytes + bytes > self.max_bytes;
        if self.shards.is_empty() || full {
            self.shards.push(Vec::new());
            self.pending_bytes = 0;
        }
        self.pending_bytes += bytes;
        self.shards.len() - 1
    }

    fn add(&mut self, shard: usize, key: String, dtype: Dtype, shape: Vec<usize>) -> Piece {
        let row_bytes = shape[1] * dtype.bitsize() / 8;
        self.shards[shard].push((key.clone(), dtype, shape));
        Piece {
            shard,
            key,
            offset: 0,
            row_bytes,
        }
    }
}

/// A shard's header, byte for byte as `safetensors::serialize` writes it (tensors by descending
/// dtype, then name; the JSON padded with spaces to 8 bytes), and each key's offset in the
/// file. Written here because `serialize` reserves room for all the data, which the plan has not.
fn plan_shard(
    file: String,
    stored: &[(String, Dtype, Vec<usize>)],
) -> Result<PlannedShard, QuantError> {
    let mut sorted: Vec<&(String, Dtype, Vec<usize>)> = stored.iter().collect();
    sorted.sort_by(|(a, a_dtype, _), (b, b_dtype, _)| b_dtype.cmp(a_dtype).then(a.cmp(b)));
    let mut offset = 0;
    let infos: Vec<(String, TensorInfo)> = sorted
        .iter()
        .map(|(key, dtype, shape)| {
            let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
            offset += len;
            let info = TensorInfo {
                dtype: *dtype,
                shape: shape.clone(),
                data_offsets: (offset - len, offset),
            };
            (key.clone(), info)
        })
        .collect();
    let fail = |e: String| QuantError::Source(format!("planning {file}: {e}"));
    let metadata = Metadata::new(None, infos.clone()).map_err(|e| fail(e.to_string()))?;
    let mut json = serde_json::to_vec(&metadata).map_err(|e| fail(e.to_string()))?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut header = (json.len() as u64).to_le_bytes().to_vec();
    header.extend(json);
    let offsets = infos
        .into_iter()
        .map(|(key, info)| (key, header.len() as u64 + info.data_offsets.0 as u64))
        .collect();
    Ok(PlannedShard {
        bytes: header.len() as u64 + offset as u64,
        file,
        header,
        offsets,
    })
}

/// An output shard of a source file: its name, size and header.
#[derive(Debug, Clone)]
pub struct PlannedShard {
    pub file: String,
    pub bytes: u64,
    header: Vec<u8>,
    offsets: BTreeMap<String, u64>,
}

/// One stored array of a part (a Q4 part has two: nibbles and scales).
#[derive(Debug, Clone)]
struct Piece {
    /// Index among the source file's shards.
    shard: usize,
    key: String,
    offset: u64,
    row_bytes: usize,
}

#[derive(Debug, Clone)]
struct PlannedPart {
    rows: [usize; 2],
    pieces: Vec<Piece>,
    part: Part,
}

#[derive(Debug, Clone)]
struct PlannedTensor {
    source: SourceTensor,
    value_bytes: usize,
    encoding: Encoding,
    cols: usize,
    kept: Option<Vec<usize>>,
    parts: Vec<PlannedPart>,
}

impl PlannedTensor {
    /// Writes stored rows `first..` (consecutive, all in one part) from `values`.
    fn write_rows(
        &self,
        first: usize,
        values: &[f32],
        out: &mut impl ShardOutput,
    ) -> Result<(), QuantError> {
        let rows = values.len() / self.cols.max(1);
        let part = self
            .parts
            .iter()
            .find(|p| p.rows[0] <= first && first < p.rows[1])
            .expect("stored rows lie in a part");
        let arrays: Vec<Vec<u8>> = match self.encoding {
            Encoding::Q4B32 => {
                let q = q4::quantize(values, rows, self.cols);
                let scales = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
                vec![q.packed, scales]
            }
            Encoding::F16 => vec![
                values
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                    .collect(),
            ],
            Encoding::F32 => vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()],
        };
        for (piece, bytes) in part.pieces.iter().zip(arrays) {
            let at = piece.offset + ((first - part.rows[0]) * piece.row_bytes) as u64;
            out.write_at(piece.shard, at, &bytes)?;
        }
        Ok(())
    }

    /// Converts source rows `first..` (whole rows of `values`) into their stored rows.
    fn convert(
        &self,
        first: usize,
        values: &[f32],
        out: &mut impl ShardOutput,
    ) -> Result<(), QuantError> {
        let cols = self.cols.max(1);
        let rows = values.len() / cols;
        if let Some(kept) = &self.kept {
            for (stored, &row) in kept.iter().enumerate() {
                if (first..first + rows).contains(&row) {
                    let at = (row - first) * cols;
                    self.write_rows(stored, &values[at..at + cols], out)?;
                }
            }
            return Ok(());
        }
        // Consecutive rows, split where parts end.
        let mut row = first;
        while row < first + rows {
            let part = self
                .parts
                .iter()
                .find(|p| p.rows[0] <= row && row < p.rows[1])
                .expect("every row lies in a part");
            let end = part.rows[1].min(first + rows);
            self.write_rows(
                row,
                &values[(row - first) * cols..(end - first) * cols],
                out,
            )?;
            row = end;
        }
        Ok(())
    }
}

/// The output of one source file, planned from its header.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub shards: Vec<PlannedShard>,
    /// In data order.
    tensors: Vec<PlannedTensor>,
    /// Bytes of the data section.
    pub data_len: u64,
}

impl SourcePlan {
    /// A writer taking the source file's data section, front to back.
    pub fn into_writer(self) -> SourceWriter {
        SourceWriter {
            plan: self,
            position: 0,
            tensor: 0,
            row: 0,
            buffer: Vec::new(),
            headers_written: false,
        }
    }

    /// The tensor whose bytes come at `position` of the data section (for progress).
    pub fn tensor_at(&self, position: u64) -> Option<&str> {
        self.tensors
            .iter()
            .find(|t| t.source.start <= position && position < t.source.end)
            .map(|t| t.source.name.as_str())
    }
}

/// Where converted bytes go: shard `shard` (an index into [`SourcePlan::shards`]) at `offset`.
pub trait ShardOutput {
    fn write_at(&mut self, shard: usize, offset: u64, bytes: &[u8]) -> Result<(), QuantError>;
}

/// Converts a source file's data section as it arrives.
pub struct SourceWriter {
    plan: SourcePlan,
    /// Bytes of the data section taken.
    position: u64,
    /// The tensor being taken, in data order.
    tensor: usize,
    /// Its next source row.
    row: usize,
    /// Bytes of rows not converted yet.
    buffer: Vec<u8>,
    headers_written: bool,
}

impl SourceWriter {
    pub fn plan(&self) -> &SourcePlan {
        &self.plan
    }

    /// Bytes of the data section taken so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Takes the next bytes of the data section.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut impl ShardOutput) -> Result<(), QuantError> {
        self.write_headers(out)?;
        self.skip_empty();
        while !bytes.is_empty() {
            let Some(tensor) = self.plan.tensors.get(self.tensor) else {
                return Err(QuantError::Source(format!(
                    "the file goes on past the {} bytes of data its header lists: it is damaged",
                    self.plan.data_len
                )));
            };
            let row_bytes = tensor.cols.max(1) * tensor.value_bytes;
            let group = ROW_GROUP_BYTES.max(row_bytes);
            let take = bytes
                .len()
                .min((tensor.source.end - self.position) as usize)
                .min(group - self.buffer.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            self.position += take as u64;
            bytes = &bytes[take..];
            let done = self.position == tensor.source.end;
            if done || self.buffer.len() >= group {
                let rows = self.buffer.len() / row_bytes;
                let values = decode_f32(&self.buffer[..rows * row_bytes], tensor.source.dtype)
                    .expect("the dtype was checked when planning");
                tensor.convert(self.row, &values, out)?;
                self.row += rows;
                self.buffer.drain(..rows * row_bytes);
            }
            if done {
                self.tensor += 1;
                self.row = 0;
                self.skip_empty();
            }
        }
        Ok(())
    }

    fn write_headers(&mut self, out: &mut impl ShardOutput) -> Result<(), QuantError> {
        if !self.headers_written {
            for (index, shard) in self.plan.shards.iter().enumerate() {
                out.write_at(index, 0, &shard.header)?;
            }
            self.headers_written = true;
        }
        Ok(())
    }

    /// Passes tensors with no data: they have no rows to write.
    fn skip_empty(&mut self) {
        while let Some(t) = self.plan.tensors.get(self.tensor)
            && t.source.start == t.source.end
        {
            self.tensor += 1;
        }
    }

    /// Checks that the whole data section came; the plan, for [`Conversion::record`].
    pub fn finish(mut self, out: &mut impl ShardOutput) -> Result<SourcePlan, QuantError> {
        self.write_headers(out)?;
        if self.position != self.plan.data_len {
            return Err(QuantError::Source(format!(
                "the file ended after {} of the {} bytes of data its header lists: the \
                 transfer was cut short; try again",
                self.position, self.plan.data_len
            )));
        }
        Ok(self.plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The planned header is the one `safetensors::serialize` writes with the data.
    #[test]
    fn planned_headers_are_what_safetensors_writes() {
        let stored = vec![
            ("b.q4".to_string(), Dtype::U8, vec![3, 16]),
            ("a.scales".to_string(), Dtype::F16, vec![3, 1]),
            ("c".to_string(), Dtype::F32, vec![1, 5]),
            ("a.q4".to_string(), Dtype::U8, vec![2, 16]),
        ];
        let data: Vec<Vec<u8>> = stored
            .iter()
            .map(|(_, d, s)| vec![7; s.iter().product::<usize>() * d.bitsize() / 8])
            .collect();
        let views = stored.iter().zip(&data).map(|((k, d, s), bytes)| {
            let view = safetensors::tensor::TensorView::new(*d, s.clone(), bytes).unwrap();
            (k.clone(), view)
        });
        let written = serialize(views, None).unwrap();
        let planned = plan_shard("x".into(), &stored).unwrap();
        assert_eq!(planned.header, written[..planned.header.len()]);
        assert_eq!(planned.bytes, written.len() as u64);
        let parsed = safetensors::SafeTensors::deserialize(&written).unwrap();
        for (key, at) in &planned.offsets {
            let view = parsed.tensor(key).unwrap();
            let start = view.data().as_ptr() as usize - written.as_ptr() as usize;
            assert_eq!(start as u64, *at, "{key}");
        }
    }
}
