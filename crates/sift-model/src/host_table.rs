//! The token table kept on the host (4-bit models, and tables over the GPU's binding limit):
//! only a prompt's rows go to the device.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use half::f16;

/// The token table, kept on the host: `[vocab, width]` rows, looked up per request.
pub(crate) struct HostTable {
    rows: TableRows,
    width: usize,
}

enum TableRows {
    /// A 4-bit directory's table, in f16.
    F16(Vec<f16>),
    /// A checkpoint's table as stored (f32, f16 or bf16, little-endian): exact, and no larger
    /// in memory than on disk.
    Stored(Vec<u8>, safetensors::Dtype),
}

impl HostTable {
    /// A 4-bit directory's table from its f16 rows.
    pub(crate) fn f16(rows: Vec<f16>, width: usize) -> Self {
        Self {
            rows: TableRows::F16(rows),
            width,
        }
    }

    /// A checkpoint's table from its stored bytes (f32, f16 or bf16: `Checkpoint::check`
    /// refuses others).
    pub(crate) fn stored(bytes: Vec<u8>, dtype: safetensors::Dtype, width: usize) -> Self {
        Self {
            rows: TableRows::Stored(bytes, dtype),
            width,
        }
    }

    /// The rows of `ids` as an f32 `[ids.len(), width]` tensor on `device`.
    ///
    /// Each distinct id's row is sent once and gathered on the device: an image's hundreds of
    /// pad tokens (and a pass's repeated text) share one row, so a pass of 16 images sends a
    /// few hundred rows instead of 13,600 (111 MB in f32).
    pub(crate) fn lookup(&self, ids: &[u32], device: &Device) -> Tensor<2> {
        let mut slots = HashMap::new();
        let mut distinct = Vec::new();
        let places: Vec<i64> = ids
            .iter()
            .map(|&id| {
                *slots.entry(id).or_insert_with(|| {
                    distinct.push(id);
                    distinct.len() as i64 - 1
                })
            })
            .collect();
        let values: Vec<f32> = distinct
            .iter()
            .flat_map(|&id| self.row(id as usize))
            .collect();
        let rows = Tensor::from_data(
            TensorData::new(values, [distinct.len(), self.width]),
            device,
        );
        if distinct.len() == ids.len() {
            return rows;
        }
        let places = Tensor::<1, Int>::from_data(TensorData::new(places, [ids.len()]), device);
        rows.select(0, places)
    }

    /// Row `id` in f32.
    pub(crate) fn row(&self, id: usize) -> Vec<f32> {
        let width = self.width;
        match &self.rows {
            TableRows::F16(rows) => rows[id * width..(id + 1) * width]
                .iter()
                .map(|x| x.to_f32())
                .collect(),
            TableRows::Stored(bytes, dtype) => {
                let size = dtype.bitsize() / 8;
                let row = &bytes[id * width * size..(id + 1) * width * size];
                sift_quant::decode_f32(row, *dtype).expect("a dtype the checkpoint check accepts")
            }
        }
    }
}
