//! Reading a quantized model back, tensor by tensor, from shards that arrive one at a time
//! (read from a directory, downloaded, or picked by a user in a browser): each shard is checked
//! against the manifest, and each tensor is handed over as soon as its last part has arrived.
//! A tensor split across shards is appended into one buffer sized once, so the host holds one
//! shard plus the tensors in progress, never the whole model and never two copies of a tensor
//! (the token table is most of a model's host memory).

use std::collections::BTreeMap;
use std::path::PathBuf;

use half::f16;
use safetensors::{Dtype, SafeTensors};

use crate::error::QuantError;
use crate::manifest::{Encoding, Manifest, QuantizedModel, TensorEntry};
use crate::q4::{BLOCK, Q4Tensor, padded_cols};

/// A tensor's stored rows (only the kept rows of the head), as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredValues {
    /// `[rows, cols]` in Q4, `cols` the product of the source shape past its first axis.
    Q4(Q4Tensor),
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl StoredValues {
    /// The values as f32, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Self::Q4(q) => q.dequantize(),
            Self::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Self::F32(v) => v.clone(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Q4(q) => q.rows * q.cols,
            Self::F16(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    /// Makes room for `rows` more rows of `cols` values, so appending them never reallocates.
    fn reserve_rows(&mut self, rows: usize, cols: usize) {
        match self {
            Self::Q4(q) => {
                q.packed.reserve_exact(rows * padded_cols(cols) / 2);
                q.scales.reserve_exact(rows * padded_cols(cols) / BLOCK);
            }
            Self::F16(v) => v.reserve_exact(rows * cols),
            Self::F32(v) => v.reserve_exact(rows * cols),
        }
    }

    /// Appends the rows of `next` (same encoding and width).
    fn append(&mut self, next: StoredValues) {
        match (self, next) {
            (Self::Q4(a), Self::Q4(b)) => {
                a.rows += b.rows;
                a.packed.extend(b.packed);
                a.scales.extend(b.scales);
            }
            (Self::F16(a), Self::F16(b)) => a.extend(b),
            (Self::F32(a), Self::F32(b)) => a.extend(b),
            _ => unreachable!("the parts of one tensor share its encoding"),
        }
    }
}

impl TensorEntry {
    /// Rows stored: the kept rows, or the first axis (a 1-D tensor is one row).
    pub fn stored_rows(&self) -> usize {
        match (&self.kept_rows, self.shape.len()) {
            (Some(kept), _) => kept.len(),
            (None, 0 | 1) => 1,
            (None, _) => self.shape[0],
        }
    }

    /// Values per row: the product of the shape past its first axis (a 1-D tensor's length).
    pub fn row_len(&self) -> usize {
        match self.shape.len() {
            0 => 1,
            1 => self.shape[0],
            _ => self.shape[1..].iter().product(),
        }
    }
}

/// A tensor whose parts span shards: the rows joined so far, and parts that arrived before
/// the rows above them.
#[derive(Default)]
struct Joining {
    joined: Option<StoredValues>,
    rows: usize,
    ahead: BTreeMap<usize, StoredValues>,
}

/// Tensors of a quantized model assembled from its shards, added one at a time in any order.
pub struct TensorAssembler {
    manifest: Manifest,
    /// Where the manifest came from, for messages.
    source: PathBuf,
    joining: BTreeMap<String, Joining>,
    added: Vec<bool>,
}

impl TensorAssembler {
    /// Starts assembling the tensors `manifest` lists; `source` names where the model comes
    /// from in error messages (a directory, a URL).
    pub fn new(manifest: Manifest, source: impl Into<PathBuf>) -> Self {
        let added = vec![false; manifest.shards.len()];
        Self {
            manifest,
            source: source.into(),
            joining: BTreeMap::new(),
            added,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Indices of the shards not added yet.
    pub fn missing_shards(&self) -> Vec<usize> {
        (0..self.added.len()).filter(|&i| !self.added[i]).collect()
    }

    /// Checks `bytes` against shard `index` of the manifest (size and sha256), then calls
    /// `visit` with the name, entry and whole stored values of every tensor whose last part
    /// it holds.
    pub fn add_shard<E: From<QuantError>>(
        &mut self,
        index: usize,
        bytes: &[u8],
        mut visit: impl FnMut(&str, &TensorEntry, StoredValues) -> Result<(), E>,
    ) -> Result<(), E> {
        let manifest = &self.manifest;
        let Some(entry) = manifest.shards.get(index) else {
            return Err(self
                .bad(format!(
                    "there is no shard {index}: it lists {}",
                    manifest.shards.len()
                ))
                .into());
        };
        if self.added[index] {
            return Err(self
                .bad(format!("shard {} was given twice", entry.file))
                .into());
        }
        entry.check(bytes)?;
        let shard_path = self.source.join(&entry.file);
        let bad = |detail: String| QuantError::BadManifest {
            path: shard_path.clone(),
            detail,
        };
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        for (name, entry) in &manifest.tensors {
            let mut parts = entry.parts.iter().filter(|p| p.shard == index).peekable();
            if parts.peek().is_none() {
                continue;
            }
            let joining = self.joining.entry(name.clone()).or_default();
            for part in parts {
                let [start, end] = part.rows;
                let values = read_part(&st, &part.key, entry, end.saturating_sub(start))
                    .map_err(|detail| bad(format!("tensor {name}: {detail}")))?;
                joining.ahead.insert(start, values);
            }
            joining
                .join_ready(entry)
                .map_err(|detail| bad(format!("tensor {name}: {detail}")))?;
            if joining.rows == entry.stored_rows() {
                let done = self.joining.remove(name).expect("just inserted");
                let values = done
                    .joined
                    .ok_or_else(|| bad(format!("tensor {name} is empty")))?;
                visit(name, entry, values)?;
            }
        }
        self.added[index] = true;
        Ok(())
    }

    /// Ends assembly: every shard must have been added and every tensor completed.
    pub fn finish(self) -> Result<(), QuantError> {
        let missing: Vec<&str> = self
            .missing_shards()
            .into_iter()
            .map(|i| self.manifest.shards[i].file.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(QuantError::MissingShard {
                file: missing.join(", "),
            });
        }
        if let Some(name) = self.joining.keys().next() {
            return Err(self.bad(format!("the parts of tensor {name} do not cover its rows")));
        }
        Ok(())
    }

    fn bad(&self, detail: String) -> QuantError {
        QuantError::BadManifest {
            path: self.source.join(crate::MANIFEST),
            detail,
        }
    }
}

impl Joining {
    /// Appends the parts that continue the joined rows, reserving the whole tensor once.
    fn join_ready(&mut self, entry: &TensorEntry) -> Result<(), String> {
        let total = entry.stored_rows();
        let cols = entry.row_len();
        while let Some(values) = self.ahead.remove(&self.rows) {
            let rows = values.len() / cols.max(1);
            if rows == 0 || self.rows + rows > total {
                return Err(format!(
                    "a part of {rows} rows at row {} overflows its {total} rows",
                    self.rows
                ));
            }
            match &mut self.joined {
                None => {
                    let mut first = values;
                    first.reserve_rows(total - rows, cols);
                    self.joined = Some(first);
                }
                Some(joined) => joined.append(values),
            }
            self.rows += rows;
        }
        if let Some(&start) = self.ahead.keys().find(|&&s| s < self.rows) {
            return Err(format!("two parts start at or before row {start}"));
        }
        Ok(())
    }
}

impl QuantizedModel {
    /// Calls `visit` once per tensor, in shard order, with its name, manifest entry and whole
    /// stored values. Every shard's size and sha256 are checked before its tensors are used.
    pub fn read_tensors<E: From<QuantError>>(
        &self,
        mut visit: impl FnMut(&str, &TensorEntry, StoredValues) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut assembler = TensorAssembler::new(self.manifest.clone(), &self.dir);
        for shard in 0..self.manifest.shards.len() {
            let bytes = self.read_shard(shard)?;
            assembler.add_shard(shard, &bytes, &mut visit)?;
        }
        Ok(assembler.finish()?)
    }
}

/// Decodes one part: `rows` rows of the tensor, stored under `key` (Q4: `key.q4` and
/// `key.scales`), straight from the shard's bytes.
fn read_part(
    st: &SafeTensors,
    key: &str,
    entry: &TensorEntry,
    rows: usize,
) -> Result<StoredValues, String> {
    let cols = entry.row_len();
    let get = |key: &str, dtype: Dtype, len: Option<usize>| {
        let view = st.tensor(key).map_err(|e| format!("{key}: {e}"))?;
        let len = len.ok_or_else(|| format!("{key}: its size overflows"))?;
        if view.dtype() != dtype || view.data().len() != len {
            return Err(format!(
                "{key} is {:?} of {} bytes, expected {dtype:?} of {len}",
                view.dtype(),
                view.data().len()
            ));
        }
        Ok(view.data())
    };
    let halves = |bytes: &[u8]| {
        bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect::<Vec<_>>()
    };
    Ok(match entry.encoding {
        Encoding::Q4B32 => {
            let width = padded_cols(cols);
            let packed = get(&format!("{key}.q4"), Dtype::U8, rows.checked_mul(width / 2))?;
            let scales = get(
                &format!("{key}.scales"),
                Dtype::F16,
                rows.checked_mul(width / BLOCK * 2),
            )?;
            StoredValues::Q4(Q4Tensor {
                rows,
                cols,
                packed: packed.to_vec(),
                scales: halves(scales),
            })
        }
        Encoding::F16 => StoredValues::F16(halves(get(
            key,
            Dtype::F16,
            rows.checked_mul(cols).and_then(|n| n.checked_mul(2)),
        )?)),
        Encoding::F32 => StoredValues::F32(
            get(
                key,
                Dtype::F32,
                rows.checked_mul(cols).and_then(|n| n.checked_mul(4)),
            )?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        ),
    })
}
