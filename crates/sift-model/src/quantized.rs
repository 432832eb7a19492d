//! Weights from a sift 4-bit model directory (`sift quantize`, format in `sift-quant`).
//!
//! - Q4 matrices of the linear layers go to the device as burn Q4 tensors (blocks of 32 along
//!   `in`; f16 scales, or f32 on devices without f16 such as SwiftShader) and stay 4-bit there;
//!   [`Projection`](crate::Projection) dequantizes one per call.
//! - The token table stays on the host as f16; only a prompt's rows are uploaded.
//! - Everything else (norms, biases, the patch embedding, the position grid) is f32.
//!
//! Shards are read and checked one at a time, and every buffer is checked against the device's
//! binding limit before it is allocated.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::quantization::{QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn::tensor::{DType, Device, Tensor, TensorData};
use half::f16;
use sift_quant::{Encoding, QuantError, QuantizedModel, StoredValues, TensorEntry, q4};

use crate::weights::{PREFIX, checkpoint_segment};
use crate::{ModelError, projection};

const TABLE: &str = "model.language_model.embed_tokens.weight";
const HEAD: &str = "lm_head.weight";

impl From<QuantError> for ModelError {
    fn from(e: QuantError) -> Self {
        ModelError::Weights(e.to_string())
    }
}

/// The token table, kept on the host: `[vocab, width]` in f16.
pub(crate) struct HostTable {
    rows: Vec<f16>,
    width: usize,
}

impl HostTable {
    /// The rows of `ids` as an f32 `[ids.len(), width]` tensor on `device`.
    pub(crate) fn lookup(&self, ids: &[u32], device: &Device) -> Tensor<2> {
        let values: Vec<f32> = ids.iter().flat_map(|&id| self.row(id as usize)).collect();
        Tensor::from_data(TensorData::new(values, [ids.len(), self.width]), device)
    }

    fn row(&self, id: usize) -> Vec<f32> {
        self.rows[id * self.width..(id + 1) * self.width]
            .iter()
            .map(|x| x.to_f32())
            .collect()
    }
}

/// A tensor read from the shards, already on the device.
enum DeviceTensor {
    /// `[out, in]` in Q4, stored with rows padded to whole blocks.
    Q4(Tensor<2>, [usize; 2]),
    /// f32, flattened; reshaped to the parameter's rank when it is placed.
    Float(Tensor<1>, Vec<usize>),
}

impl DeviceTensor {
    /// The checkpoint shape it stands for.
    fn shape(&self) -> Vec<usize> {
        match self {
            Self::Q4(_, shape) => shape.to_vec(),
            Self::Float(_, shape) => shape.clone(),
        }
    }
}

/// What a 4-bit directory holds besides the network's parameters.
pub(crate) struct QuantizedExtras {
    pub table: HostTable,
    /// Rows `yes` and `no` of the head (the token table's, for tied models).
    pub head_rows: [Vec<f32>; 2],
}

/// The burn scheme the Q4 weights are uploaded in: symmetric, values −7..7 packed eight to a
/// `u32`, one scale per 32 values of a row, in `scales`.
fn q4_scheme(scales: ScaleDtype) -> QuantScheme {
    QuantScheme::default()
        .with_value(QuantValue::Q4S)
        .with_store(QuantStore::PackedU32(0))
        .per_block([q4::BLOCK as u8], scales)
}

/// The scale type Q4 weights get on `device`: sift's own f16 where the device computes in f16
/// (4.5 bits per weight), else f32 (5 bits; WebGPU without `shader-f16`, such as SwiftShader).
pub fn q4_scale_dtype(device: &Device) -> ScaleDtype {
    if device.supports_dtype(DType::F16) {
        ScaleDtype::F16
    } else {
        ScaleDtype::F32
    }
}

/// The burn Q4 tensor data of a sift Q4 matrix, with `scales` as f16 or f32 (others panic).
/// sift stores `q + 8` in each nibble (even value low), burn a two's-complement nibble in the
/// same order within little-endian `u32`s, so each byte only needs its nibbles' top bits
/// flipped.
pub fn q4_tensor_data(q: &q4::Q4Tensor, scales: ScaleDtype) -> TensorData {
    let mut bytes: Vec<u8> = q.packed.iter().map(|b| b ^ 0x88).collect();
    match scales {
        ScaleDtype::F16 => bytes.extend(q.scales.iter().flat_map(|s| s.to_le_bytes())),
        ScaleDtype::F32 => bytes.extend(q.scales.iter().flat_map(|s| s.to_f32().to_le_bytes())),
        other => panic!("sift's Q4 scales are f16, stored as f16 or f32, not {other:?}"),
    }
    let shape = [q.rows, q4::padded_cols(q.cols)];
    TensorData::from_bytes_vec(bytes, shape, DType::QFloat(q4_scheme(scales)))
}

/// Bytes of the largest buffer a tensor needs on the device: the f32 copy a Q4 matrix's
/// projection makes, other tensors' f32 values.
fn device_bytes(entry: &TensorEntry) -> u64 {
    let (rows, cols) = (entry.stored_rows(), entry.row_len());
    match entry.encoding {
        Encoding::Q4B32 if entry.shape.len() == 2 => projection::dequantized_bytes(rows, cols),
        _ => (rows * cols) as u64 * 4,
    }
}

/// Reads every tensor of `model` onto `device`, checking `max_binding` (bytes) first. `tied`:
/// whether the score reads the token table's rows rather than the head's.
pub(crate) fn load<M: Module>(
    model: &QuantizedModel,
    net: M,
    tokens: [usize; 2],
    tied: bool,
    device: &Device,
    max_binding: Option<u64>,
) -> Result<(M, QuantizedExtras), ModelError> {
    let tensors = &model.manifest.tensors;
    if let Some(limit) = max_binding
        && let Some((name, entry)) = tensors
            .iter()
            .filter(|(name, _)| name.as_str() != TABLE)
            .max_by_key(|(_, e)| device_bytes(e))
    {
        crate::check_binding(name, device_bytes(entry), limit, "use a smaller model")?;
    }

    let scales = q4_scale_dtype(device);
    let mut on_device = BTreeMap::new();
    let mut table = None;
    let mut head = None;
    model.read_tensors::<ModelError>(|name, entry, values| {
        match name {
            TABLE => {
                let StoredValues::F16(rows) = values else {
                    return Err(bad_encoding(name, entry));
                };
                table = Some(HostTable {
                    rows,
                    width: entry.row_len(),
                });
            }
            HEAD => head = Some((entry.clone(), values.to_f32())),
            _ => {
                let tensor = match values {
                    StoredValues::Q4(q) if entry.shape.len() == 2 => DeviceTensor::Q4(
                        upload(q4_tensor_data(&q, scales), device),
                        [q.rows, q.cols],
                    ),
                    // The patch embedding (5-D) is small: it is used in f32.
                    other => {
                        let values = other.to_f32();
                        let len = values.len();
                        DeviceTensor::Float(
                            upload(TensorData::new(values, [len]), device),
                            entry.shape.clone(),
                        )
                    }
                };
                on_device.insert(name.to_string(), tensor);
            }
        }
        Ok(())
    })?;

    let table = table.ok_or_else(|| missing(TABLE))?;
    // A tied model reads its table's rows, as transformers does even if a head was saved.
    let head_rows = match head.filter(|_| !tied) {
        // Untied: the head's kept rows must include the score's two tokens.
        Some((entry, values)) => {
            let cols = entry.row_len();
            let kept = entry.kept_rows.unwrap_or_default();
            let row = |token: usize| {
                kept.iter()
                    .position(|&r| r == token)
                    .map(|i| values[i * cols..(i + 1) * cols].to_vec())
                    .ok_or_else(|| {
                        ModelError::Weights(format!(
                            "{HEAD} keeps rows {kept:?}, not token {token} that the score reads: \
                             quantize the model again with its own tokenizer.json"
                        ))
                    })
            };
            [row(tokens[0])?, row(tokens[1])?]
        }
        None if tied => [table.row(tokens[0]), table.row(tokens[1])],
        None => return Err(missing(HEAD)),
    };

    let mut placer = Placer {
        path: Vec::new(),
        tensors: on_device,
        problems: Vec::new(),
    };
    let net = net.map(&mut placer);
    placer.problems.extend(
        placer
            .tensors
            .keys()
            .map(|n| format!("unexpected tensor {n}")),
    );
    if !placer.problems.is_empty() {
        return Err(ModelError::Weights(format!(
            "the 4-bit model does not match its config.json: {}. Re-create it with `sift quantize` \
             from the original model",
            placer.problems.join("; ")
        )));
    }
    Ok((net, QuantizedExtras { table, head_rows }))
}

/// Uploads a weight into the device's persistent pool: exact-fit buffers for data that lives
/// as long as the model, instead of pages sized for activations.
fn upload<const D: usize>(data: TensorData, device: &Device) -> Tensor<D> {
    device.memory_persistent_allocations(data, |data| Tensor::from_data(data, device))
}

fn missing(name: &str) -> ModelError {
    ModelError::Weights(format!(
        "the 4-bit model has no {name}: re-create it with `sift quantize`"
    ))
}

fn bad_encoding(name: &str, entry: &TensorEntry) -> ModelError {
    ModelError::Weights(format!(
        "{name} is stored as {:?}, which this sift does not read there: re-create the model with \
         `sift quantize`",
        entry.encoding
    ))
}

/// Puts each tensor read from the shards into the parameter with its checkpoint name.
struct Placer {
    path: Vec<String>,
    tensors: BTreeMap<String, DeviceTensor>,
    problems: Vec<String>,
}

impl ModuleMapper for Placer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(checkpoint_segment(name, container_type));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = format!("{PREFIX}{}", self.path.join("."));
        // `lazy_shape`: `shape()` would allocate the placeholder's zeros, only to drop them
        // (the pools then keep those pages: 515 MB on the 8B).
        let expected = param.lazy_shape().to_vec();
        let Some(tensor) = self.tensors.remove(&name) else {
            self.problems.push(format!("missing tensor {name}"));
            return param;
        };
        let found = tensor.shape();
        if found != expected {
            self.problems.push(format!(
                "tensor {name} has shape {found:?}, expected {expected:?}"
            ));
            return param;
        }
        let tensor = match tensor {
            // Projection knows its weight's rows may be padded.
            DeviceTensor::Q4(t, _) => {
                let stored = t.shape();
                t.reshape(stored)
            }
            DeviceTensor::Float(t, _) => t.reshape(param.lazy_shape()),
        };
        Param::initialized(param.id, tensor)
    }
}

/// Whether `dir` holds a sift 4-bit model.
pub fn is_quantized(dir: &std::path::Path) -> bool {
    dir.join(sift_quant::MANIFEST).is_file()
}
