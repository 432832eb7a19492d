//! Weights from a Hugging Face model directory: `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`; bf16, f16 or f32 on disk, computed in f32.
//!
//! Every shard's header is read and checked against the network's expected tensors before any
//! data is loaded, so a missing, extra, mis-shaped or truncated tensor is reported by its
//! checkpoint name, with both shapes, instead of failing somewhere inside the loader.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::{
    FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::{DType, Device, Tensor};
use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorInfo};

use crate::error::ModelError;

/// What to do about a checkpoint that does not match its `config.json`.
pub(crate) const CHECKPOINT_FIX: &str =
    "Check that config.json and the safetensors files come from the same model.";

/// Checkpoint names carry this prefix; the network's module paths do not.
pub(crate) const PREFIX: &str = "model.";

struct Shard {
    path: PathBuf,
    data_start: u64,
    metadata: Metadata,
}

/// The tensors of a checkpoint, by name, with where their bytes are.
pub(crate) struct Checkpoint {
    shards: Vec<Shard>,
}

fn io_error(path: &Path, e: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn bad_file(path: &Path, what: impl std::fmt::Display) -> ModelError {
    ModelError::Weights(format!(
        "{}: {what}. The file is damaged or incomplete: download it again.",
        path.display()
    ))
}

impl Shard {
    fn open(path: PathBuf) -> Result<Self, ModelError> {
        let mut file = File::open(&path).map_err(|e| io_error(&path, e))?;
        let file_len = file.metadata().map_err(|e| io_error(&path, e))?.len();
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes)
            .map_err(|_| bad_file(&path, "too short to be a safetensors file"))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > 100_000_000 || 8 + header_len > file_len {
            return Err(bad_file(
                &path,
                "its safetensors header length is impossible",
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| io_error(&path, e))?;
        let metadata: Metadata = serde_json::from_slice(&header)
            .map_err(|e| bad_file(&path, format!("its safetensors header is invalid ({e})")))?;
        let data_start = 8 + header_len;
        let expected_len = data_start + metadata.data_len() as u64;
        if file_len != expected_len {
            return Err(bad_file(
                &path,
                format!("it is {file_len} bytes long but its header describes {expected_len}"),
            ));
        }
        Ok(Self {
            path,
            data_start,
            metadata,
        })
    }
}

/// The checkpoint name and shape of every parameter of `net`, read without allocating the
/// parameters (burn-store's `collect` initialises each one to read it).
pub(crate) fn expected_shapes<M: Module>(net: &M) -> BTreeMap<String, Vec<usize>> {
    let mut shapes = ShapeCollector::default();
    net.visit(&mut shapes);
    shapes.shapes
}

/// One line per difference between the shapes a model expects and those found;
/// `also_allowed` names tensors that may be found beyond the expected ones.
pub(crate) fn shape_problems(
    expected: &BTreeMap<String, Vec<usize>>,
    found: &BTreeMap<String, Vec<usize>>,
    also_allowed: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, shape) in expected {
        match found.get(name) {
            None => problems.push(format!("missing tensor {name} (expected shape {shape:?})")),
            Some(s) if s != shape => {
                problems.push(format!("tensor {name} has shape {s:?}, expected {shape:?}"))
            }
            Some(_) => {}
        }
    }
    for (name, shape) in found {
        if !expected.contains_key(name) && !also_allowed.contains(&name.as_str()) {
            problems.push(format!("unexpected tensor {name} (shape {shape:?})"));
        }
    }
    problems
}

/// `Ok` without problems, else an error that lists them (the first 12) under `what`.
pub(crate) fn mismatch(what: &str, problems: Vec<String>, fix: &str) -> Result<(), ModelError> {
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems.len().min(12);
    let more = problems.len() - shown;
    Err(ModelError::Weights(format!(
        "{what} does not match its config.json ({} problem{}):\n  {}{}\n{fix}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems[..shown].join("\n  "),
        if more > 0 {
            format!("\n  … and {more} more")
        } else {
            String::new()
        }
    )))
}

/// A path segment as the checkpoint names it: norms call their parameters `gamma` and `beta`,
/// checkpoints `weight` and `bias`.
pub(crate) fn checkpoint_segment(name: &str, container_type: &str) -> String {
    PyTorchToBurnAdapter
        .get_alternative_param_name(name, container_type)
        .unwrap_or_else(|| name.to_string())
}

#[derive(Default)]
struct ShapeCollector {
    path: Vec<String>,
    shapes: BTreeMap<String, Vec<usize>>,
}

impl ModuleVisitor for ShapeCollector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(checkpoint_segment(name, container_type));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = format!("{PREFIX}{}", self.path.join("."));
        self.shapes.insert(name, param.lazy_shape().to_vec());
    }
}

impl Checkpoint {
    pub(crate) fn open(dir: &Path) -> Result<Self, ModelError> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let paths: Vec<PathBuf> = if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| io_error(&index, e))?;
            let parsed: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| bad_file(&index, format!("it is not valid JSON ({e})")))?;
            let map = parsed
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| bad_file(&index, "it has no \"weight_map\" object"))?;
            let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
            let roots = shard_roots(dir);
            files
                .into_iter()
                .map(|file| shard_path(dir, &index, file, &roots))
                .collect::<Result<_, _>>()?
        } else if single.exists() {
            vec![single]
        } else {
            return Err(ModelError::Weights(format!(
                "{} has neither model.safetensors nor model.safetensors.index.json. Point --model at \
                 the directory of a downloaded Hugging Face checkpoint (for example \
                 `hf download Qwen/Qwen3-VL-Reranker-2B --local-dir DIR`).",
                dir.display()
            )));
        };
        let shards = paths
            .into_iter()
            .map(|path| {
                if path.exists() {
                    Shard::open(path)
                } else {
                    Err(ModelError::Weights(format!(
                        "{} names the shard {}, which is missing: download the model again.",
                        index.display(),
                        path.display()
                    )))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { shards })
    }

    /// Every tensor of the checkpoint with its shape, by name.
    pub(crate) fn tensor_shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.shards
            .iter()
            .flat_map(|s| s.metadata.tensors())
            .map(|(name, info)| (name, info.shape.clone()))
            .collect()
    }

    fn find(&self, name: &str) -> Option<(&Shard, &TensorInfo)> {
        self.shards
            .iter()
            .find_map(|s| s.metadata.info(name).map(|info| (s, info)))
    }

    /// Every tensor of the checkpoint with its dtype.
    fn dtypes(&self) -> BTreeMap<String, Dtype> {
        self.shards
            .iter()
            .flat_map(|s| s.metadata.tensors())
            .map(|(name, info)| (name, info.dtype))
            .collect()
    }

    /// Checks names, shapes and dtypes against those `expected`; `also_allowed` names tensors
    /// the checkpoint may hold beyond those (ignored, as the reference does).
    pub(crate) fn check(
        &self,
        expected: &BTreeMap<String, Vec<usize>>,
        also_allowed: &[&str],
    ) -> Result<(), ModelError> {
        let mut problems = shape_problems(expected, &self.tensor_shapes(), also_allowed);
        for (name, dtype) in &self.dtypes() {
            if expected.contains_key(name)
                && !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
            {
                problems.push(format!(
                    "tensor {name} is stored as {dtype:?}; only F32, F16 and BF16 are supported"
                ));
            }
        }
        mismatch("the checkpoint", problems, CHECKPOINT_FIX)
    }

    /// Loads every tensor `net` expects, converted to f32, into `device`'s persistent pool
    /// (exact-fit buffers; the activation pool's pages nearly doubled the 2B's 8.5 GB). Call
    /// [`Checkpoint::check`] first.
    pub(crate) fn load_into<M: Module>(
        &self,
        net: &mut M,
        device: &Device,
    ) -> Result<(), ModelError> {
        for shard in &self.shards {
            let mut store = SafetensorsStore::from_file(&shard.path)
                .remap(
                    KeyRemapper::new()
                        .add_pattern("^model\\.", "")
                        .map_err(|e| ModelError::Weights(format!("key remapping: {e}")))?,
                )
                .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
                .allow_partial(true);
            let result = device
                .memory_persistent_allocations((&mut *net, &mut store), |(net, store)| {
                    net.load_from(store)
                })
                .map_err(|e| ModelError::Weights(format!("{}: {e}", shard.path.display())))?;
            if let Some(error) = result.errors.first() {
                return Err(ModelError::Weights(format!(
                    "{}: {error}",
                    shard.path.display()
                )));
            }
        }
        Ok(())
    }

    /// The shard holding the tensor `name`, and where in it.
    fn tensor(&self, name: &str) -> Result<(&Shard, &TensorInfo), ModelError> {
        self.find(name)
            .ok_or_else(|| ModelError::Weights(format!("missing tensor {name}")))
    }

    /// The tensor `name` as stored: its bytes and dtype.
    pub(crate) fn read_stored(&self, name: &str) -> Result<(Vec<u8>, Dtype), ModelError> {
        let (shard, info) = self.tensor(name)?;
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        let mut file = File::open(&shard.path).map_err(|e| io_error(&shard.path, e))?;
        read_at(
            &mut file,
            &shard.path,
            shard.data_start + start as u64,
            &mut bytes,
        )?;
        Ok((bytes, info.dtype))
    }

    /// Rows `rows` of the 2-D tensor `name`, as f32.
    pub(crate) fn read_rows(
        &self,
        name: &str,
        rows: &[usize],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let (shard, info) = self.tensor(name)?;
        let [height, width] = info.shape[..] else {
            return Err(ModelError::Weights(format!(
                "tensor {name} has shape {:?}, expected 2 dimensions",
                info.shape
            )));
        };
        let elem = info.dtype.bitsize() / 8;
        let mut file = File::open(&shard.path).map_err(|e| io_error(&shard.path, e))?;
        rows.iter()
            .map(|&row| {
                if row >= height {
                    return Err(ModelError::Weights(format!(
                        "token id {row} is outside {name} ({height} rows)"
                    )));
                }
                let offset = shard.data_start + (info.data_offsets.0 + row * width * elem) as u64;
                let mut bytes = vec![0u8; width * elem];
                read_at(&mut file, &shard.path, offset, &mut bytes)?;
                sift_quant::decode_f32(&bytes, info.dtype).ok_or_else(|| {
                    ModelError::Weights(format!(
                        "tensor {name} is stored as {:?}; only F32, F16 and BF16 are supported",
                        info.dtype
                    ))
                })
            })
            .collect()
    }
}

/// Where the shards an index names may be, canonical: the model directory, and for a snapshot
/// of the Hugging Face cache (`…/snapshots/REVISION`, whose files are links into the
/// repository's `blobs/`), those blobs.
fn shard_roots(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let blobs = dir
        .parent()
        .filter(|parent| parent.file_name() == Some("snapshots".as_ref()))
        .and_then(|snapshots| snapshots.parent()?.join("blobs").canonicalize().ok());
    std::iter::once(dir).chain(blobs).collect()
}

/// The path of the shard `name` that `index` names, refused unless it stays inside `roots`
/// ([`shard_roots`]): a relative name without `..`, and, if it exists, a file whose canonical
/// path (links followed) is inside. A shard that does not exist is reported as missing later.
fn shard_path(
    dir: &Path,
    index: &Path,
    name: &str,
    roots: &[PathBuf],
) -> Result<PathBuf, ModelError> {
    let relative = Path::new(name);
    let plain = !name.is_empty()
        && relative
            .components()
            .all(|part| matches!(part, Component::Normal(_)));
    let path = dir.join(relative);
    let inside = plain
        && path.canonicalize().map_or(true, |target| {
            roots.iter().any(|root| target.starts_with(root))
        });
    if !inside {
        return Err(ModelError::Weights(format!(
            "{} names the shard {name:?}, which is outside the model directory {}: refused. An \
             index may only name files inside its own directory; download the model again from \
             where it is published.",
            index.display(),
            dir.display()
        )));
    }
    Ok(path)
}

/// Fills `bytes` from `file` (at `path`) at `offset`.
fn read_at(file: &mut File, path: &Path, offset: u64, bytes: &mut [u8]) -> Result<(), ModelError> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(bytes))
        .map_err(|e| io_error(path, e))
}
