//! Reading a quantized model back, tensor by tensor: shards are read and checked one at a time,
//! and each tensor is handed over as soon as its last part has been read, so the host holds one
//! shard plus the few tensors that span shards, never the whole model.

use std::collections::BTreeMap;

use half::f16;
use safetensors::{Dtype, SafeTensors};

use crate::error::QuantError;
use crate::manifest::{Encoding, QuantizedModel, TensorEntry};
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

impl QuantizedModel {
    /// Calls `visit` once per tensor, in shard order, with its name, manifest entry and whole
    /// stored values. Every shard's size and sha256 are checked before its tensors are used.
    pub fn read_tensors<E: From<QuantError>>(
        &self,
        mut visit: impl FnMut(&str, &TensorEntry, StoredValues) -> Result<(), E>,
    ) -> Result<(), E> {
        let manifest = &self.manifest;
        // Parts read so far of tensors that span shards, by row start.
        let mut partial: BTreeMap<&str, BTreeMap<usize, StoredValues>> = BTreeMap::new();
        for shard in 0..manifest.shards.len() {
            let path = self.dir.join(&manifest.shards[shard].file);
            let bad = |detail: String| QuantError::BadManifest {
                path: path.clone(),
                detail,
            };
            let bytes = self.read_shard(shard)?;
            let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
            for (name, entry) in &manifest.tensors {
                for part in entry.parts.iter().filter(|p| p.shard == shard) {
                    let [start, end] = part.rows;
                    let values = read_part(&st, &part.key, entry, end.saturating_sub(start))
                        .map_err(|detail| bad(format!("tensor {name}: {detail}")))?;
                    partial.entry(name).or_default().insert(start, values);
                }
                let complete = partial
                    .get(name.as_str())
                    .is_some_and(|parts| parts.len() == entry.parts.len());
                if complete {
                    let parts = partial.remove(name.as_str()).expect("just checked");
                    let values = join_parts(parts, entry)
                        .map_err(|detail| bad(format!("tensor {name}: {detail}")))?;
                    visit(name, entry, values)?;
                }
            }
        }
        if let Some(name) = partial.keys().next() {
            return Err(QuantError::BadManifest {
                path: self.dir.join(crate::MANIFEST),
                detail: format!("the parts of tensor {name} are not all listed in shards"),
            }
            .into());
        }
        Ok(())
    }
}

/// Decodes one part: `rows` rows of the tensor, stored under `key` (Q4: `key.q4` and
/// `key.scales`).
fn read_part(
    st: &SafeTensors,
    key: &str,
    entry: &TensorEntry,
    rows: usize,
) -> Result<StoredValues, String> {
    let cols = entry.row_len();
    let get = |key: &str, dtype: Dtype, len: usize| {
        let view = st.tensor(key).map_err(|e| format!("{key}: {e}"))?;
        if view.dtype() != dtype || view.data().len() != len {
            return Err(format!(
                "{key} is {:?} of {} bytes, expected {dtype:?} of {len}",
                view.dtype(),
                view.data().len()
            ));
        }
        Ok(view.data().to_vec())
    };
    Ok(match entry.encoding {
        Encoding::Q4B32 => {
            let width = padded_cols(cols);
            let packed = get(&format!("{key}.q4"), Dtype::U8, rows * width / 2)?;
            let scales = get(
                &format!("{key}.scales"),
                Dtype::F16,
                rows * width / BLOCK * 2,
            )?
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect();
            StoredValues::Q4(Q4Tensor {
                rows,
                cols,
                packed,
                scales,
            })
        }
        Encoding::F16 => StoredValues::F16(
            get(key, Dtype::F16, rows * cols * 2)?
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        Encoding::F32 => StoredValues::F32(
            get(key, Dtype::F32, rows * cols * 4)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    })
}

/// Joins parts keyed by their first row, checking that they cover the stored rows exactly.
fn join_parts(
    parts: BTreeMap<usize, StoredValues>,
    entry: &TensorEntry,
) -> Result<StoredValues, String> {
    let mut joined: Option<StoredValues> = None;
    for (start, values) in parts {
        let have = joined.as_ref().map_or(0, |j| j.len() / entry.row_len());
        if start != have {
            return Err(format!("its parts leave rows {have}..{start} out"));
        }
        match &mut joined {
            None => joined = Some(values),
            Some(j) => j.append(values),
        }
    }
    let joined = joined.ok_or("it has no parts")?;
    if joined.len() != entry.stored_rows() * entry.row_len() {
        return Err(format!(
            "its parts hold {} values, its shape {:?} needs {}",
            joined.len(),
            entry.shape,
            entry.stored_rows() * entry.row_len()
        ));
    }
    Ok(joined)
}
