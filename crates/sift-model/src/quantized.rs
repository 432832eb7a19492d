//! Weights from a sift 4-bit model (`sift quantize`, format in `sift-quant`), shard by shard
//! as they arrive: from a directory, a download or files a user picked.
//!
//! - Q4 matrices of the linear layers go to the device as burn Q4 tensors (blocks of 32 along
//!   `in`; f16 scales, or f32 on devices without f16 such as SwiftShader) and stay 4-bit there;
//!   [`Projection`](crate::Projection) dequantizes one per call.
//! - The token table stays on the host as f16, in one buffer; only a prompt's rows are
//!   uploaded.
//! - Everything else (norms, biases, the patch embedding, the position grid) is f32.
//!
//! Every buffer is checked against the device's binding limit before anything is allocated,
//! and each tensor goes to the device as soon as its shard has arrived.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::quantization::{QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn::tensor::{DType, Device, Tensor, TensorData};
use sift_quant::{Encoding, Manifest, StoredValues, TensorAssembler, TensorEntry, q4};

use crate::config::ModelConfig;
use crate::config_check::check_config_against;
use crate::error::ModelError;
use crate::host_table::HostTable;
use crate::network::{ModelParts, Qwen3VlModel};
use crate::projection;
use crate::score::ScoreTokens;
use crate::weights::{PREFIX, checkpoint_segment, expected_shapes, mismatch, shape_problems};

pub(crate) const TABLE: &str = "model.language_model.embed_tokens.weight";
pub(crate) const HEAD: &str = "lm_head.weight";

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

/// Bytes of the largest buffer a tensor needs on the device: the f32 blocks a Q4 matrix's
/// projection dequantizes where the device binds no more, other tensors' f32 values.
fn largest_buffer(entry: &TensorEntry) -> u64 {
    let (rows, cols) = (entry.stored_rows(), entry.row_len());
    match entry.encoding {
        Encoding::Q4B32 if entry.shape.len() == 2 => projection::dequantized_bytes(rows, cols),
        _ => (rows * cols) as u64 * 4,
    }
}

/// Bytes a tensor keeps on the device once loaded (f32 scales, as on devices without f16).
fn resident_bytes(entry: &TensorEntry) -> u64 {
    let (rows, cols) = (entry.stored_rows() as u64, entry.row_len() as u64);
    match entry.encoding {
        Encoding::Q4B32 if entry.shape.len() == 2 => {
            let padded = q4::padded_cols(cols as usize) as u64;
            rows * (padded / 2 + padded / q4::BLOCK as u64 * 4)
        }
        _ => rows * cols * 4,
    }
}

/// What a 4-bit model needs of a machine, from its manifest alone (before downloading it).
#[derive(Debug, Clone, PartialEq)]
pub struct Requirements {
    /// The largest single GPU buffer, and the tensor that needs it: a GPU whose
    /// `maxStorageBufferBindingSize` is smaller cannot run the model.
    pub largest_buffer: (String, u64),
    /// GPU memory the weights take once loaded.
    pub gpu_weight_bytes: u64,
    /// Host memory the token table takes (it stays on the host).
    pub host_table_bytes: u64,
    /// Bytes of the files to store: the shards and the copied files.
    pub storage_bytes: u64,
}

impl Requirements {
    pub fn of(manifest: &Manifest) -> Self {
        let on_device = manifest.tensors.iter().filter(|(n, _)| n.as_str() != TABLE);
        let largest_buffer = on_device
            .clone()
            .map(|(name, e)| (name.clone(), largest_buffer(e)))
            .max_by_key(|(_, bytes)| *bytes)
            .unwrap_or_default();
        let host_table_bytes = manifest
            .tensors
            .get(TABLE)
            .map_or(0, |e| (e.stored_rows() * e.row_len()) as u64 * 2);
        Self {
            largest_buffer,
            gpu_weight_bytes: on_device
                .filter(|(n, _)| n.as_str() != HEAD)
                .map(|(_, e)| resident_bytes(e))
                .sum(),
            host_table_bytes,
            storage_bytes: manifest.total_bytes(),
        }
    }

    /// Refuses the model before anything is allocated if one of its buffers exceeds `limit`.
    pub fn check_binding(&self, limit: u64) -> Result<(), ModelError> {
        let (name, bytes) = &self.largest_buffer;
        crate::device::check_binding(name, *bytes, limit, "use a smaller model")
    }
}

/// A 4-bit model being loaded, shard by shard (a directory, a download, files a user picked).
/// Give every shard with [`add_shard`](Self::add_shard), in any order, then make the model with
/// [`RerankerModel::from_loader`](crate::RerankerModel::from_loader).
pub struct QuantizedLoader {
    config: ModelConfig,
    tokens: ScoreTokens,
    device: Device,
    scales: ScaleDtype,
    assembler: TensorAssembler,
    on_device: BTreeMap<String, DeviceTensor>,
    table: Option<HostTable>,
    /// The head's entry and its kept rows in f32 (untied models).
    head: Option<(TensorEntry, Vec<f32>)>,
}

impl QuantizedLoader {
    /// Starts loading the model `manifest` describes (its `config.json` parsed as `config`),
    /// refusing it first if a buffer would exceed `max_binding` bytes. `source` names where
    /// the model comes from in messages.
    pub fn new(
        manifest: Manifest,
        source: &str,
        config: ModelConfig,
        tokens: ScoreTokens,
        device: &Device,
        max_binding: Option<u64>,
    ) -> Result<Self, ModelError> {
        check_shapes(&manifest, &config, device)?;
        tokens.check(&config)?;
        if let Some(limit) = max_binding {
            Requirements::of(&manifest).check_binding(limit)?;
        }
        Ok(Self {
            config,
            tokens,
            device: device.clone(),
            scales: q4_scale_dtype(device),
            assembler: TensorAssembler::new(manifest, source),
            on_device: BTreeMap::new(),
            table: None,
            head: None,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        self.assembler.manifest()
    }

    /// Checks shard `index` (size, sha256) and sends the tensors it completes to the device.
    pub fn add_shard(&mut self, index: usize, bytes: &[u8]) -> Result<(), ModelError> {
        let Self {
            assembler,
            on_device,
            table,
            head,
            device,
            scales,
            ..
        } = self;
        assembler.add_shard::<ModelError>(index, bytes, |name, entry, values| {
            match name {
                TABLE => {
                    let StoredValues::F16(rows) = values else {
                        return Err(bad_encoding(name, entry));
                    };
                    *table = Some(HostTable::f16(rows, entry.row_len()));
                }
                HEAD => *head = Some((entry.clone(), values.to_f32())),
                _ => {
                    let tensor = match values {
                        StoredValues::Q4(q) if entry.shape.len() == 2 => DeviceTensor::Q4(
                            upload(q4_tensor_data(&q, *scales), device),
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
        })
    }

    /// The model's parts, once every shard has been added.
    /// The model's parts, once every shard has been added: made a reranker by
    /// [`RerankerModel::from_loader`](crate::RerankerModel::from_loader).
    pub(crate) fn finish(self) -> Result<ModelParts, ModelError> {
        self.assembler.finish()?;
        let config = self.config;
        let table = self.table.ok_or_else(|| missing(TABLE))?;
        let tokens = [self.tokens.yes as usize, self.tokens.no as usize];
        // A tied model reads its table's rows, as transformers does even if a head was saved.
        let tied = config.tied_embeddings();
        let head_rows = match self.head.filter(|_| !tied) {
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
                                "{HEAD} keeps rows {kept:?}, not token {token} that the score \
                                 reads: quantize the model again with its own tokenizer.json"
                            ))
                        })
                };
                [row(tokens[0])?, row(tokens[1])?]
            }
            None if tied => [table.row(tokens[0]), table.row(tokens[1])],
            None => return Err(missing(HEAD)),
        };

        let net = Qwen3VlModel::new(&config, false, &self.device);
        let mut placer = Placer {
            path: Vec::new(),
            tensors: self.on_device,
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
                "the 4-bit model does not match its config.json: {}. Re-create it with `sift \
                 quantize` from the original model",
                placer.problems.join("; ")
            )));
        }
        Ok(ModelParts {
            config,
            net,
            host_table: Some(table),
            score_rows: head_rows,
            device: self.device,
        })
    }
}

/// Checks every tensor's shape against what `config.json` implies, before a shard is read: a
/// model whose files disagree with its config is refused by name instead of after a download.
pub(crate) fn check_shapes(
    manifest: &Manifest,
    config: &ModelConfig,
    device: &Device,
) -> Result<(), ModelError> {
    let found = manifest
        .tensors
        .iter()
        .map(|(name, entry)| (name.clone(), entry.shape.clone()))
        .collect();
    // Before the network is built: its sizes and counts must be the manifest's.
    check_config_against(config, &found, "the 4-bit model", QUANTIZED_FIX)?;
    let mut expected = expected_shapes(&Qwen3VlModel::new(config, false, device));
    let table = config.token_table_shape().to_vec();
    expected.insert(TABLE.into(), table.clone());
    let mut problems = shape_problems(&expected, &found, &[HEAD]);
    match manifest.tensors.get(HEAD) {
        Some(head) if head.shape != table => problems.push(format!(
            "tensor {HEAD} has shape {:?}, expected {table:?}",
            head.shape
        )),
        None if !config.tied_embeddings() => {
            problems.push(format!("missing tensor {HEAD} (expected shape {table:?})"))
        }
        _ => {}
    }
    mismatch("the 4-bit model", problems, QUANTIZED_FIX)
}

/// What to do about a 4-bit model that does not match its `config.json`.
const QUANTIZED_FIX: &str = "Re-create it with `sift quantize` from the original model.";

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
