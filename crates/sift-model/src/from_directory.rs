//! Loading a model from a directory: a Hugging Face checkpoint (computed in f32) or a sift
//! 4-bit directory, read shard by shard through [`QuantizedLoader`]. The
//! [`RerankerModel`](crate::RerankerModel) methods `load`, `load_checkpoint` and
//! `load_quantized` make a reranker of what these return.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;

use crate::config::ModelConfig;
use crate::config_check::check_config_against;
use crate::device::{binding_limit, check_binding};
use crate::error::ModelError;
use crate::host_table::HostTable;
use crate::network::{ModelParts, Qwen3VlModel};
use crate::quantized::{HEAD, QuantizedLoader, TABLE, check_shapes, is_quantized};
use crate::score::ScoreTokens;
use crate::weights::{self, Checkpoint};

/// A model directory: a Hugging Face checkpoint or a sift 4-bit directory, within the device's
/// own binding limit (where known).
pub(crate) fn load(
    dir: &Path,
    tokens: ScoreTokens,
    device: &Device,
) -> Result<ModelParts, ModelError> {
    if is_quantized(dir) {
        return load_quantized(dir, tokens, device, binding_limit(device));
    }
    load_checkpoint(dir, tokens, device, binding_limit(device))
}

/// A Hugging Face checkpoint in f32, refused before any weight is read if one of its tensors
/// would exceed `max_binding` bytes. A token table over the limit stays on the host, as
/// stored.
pub(crate) fn load_checkpoint(
    dir: &Path,
    tokens: ScoreTokens,
    device: &Device,
    max_binding: Option<u64>,
) -> Result<ModelParts, ModelError> {
    let (config, checkpoint) = open_checkpoint(dir)?;
    let f32_bytes = |shape: &[usize]| shape.iter().product::<usize>() as u64 * 4;
    let table_shape = config.token_table_shape();
    let table_on_device = max_binding.is_none_or(|limit| f32_bytes(&table_shape) <= limit);
    let mut net = Qwen3VlModel::new(&config, table_on_device, device);
    let (on_device, head) = check_checkpoint(&config, &checkpoint, &net)?;
    if let Some(limit) = max_binding {
        let largest = on_device
            .iter()
            .map(|(name, shape)| (name, f32_bytes(shape)));
        if let Some((name, bytes)) = largest.max_by_key(|(_, bytes)| *bytes) {
            check_binding(
                name,
                bytes,
                limit,
                "quantize the model with `sift quantize`: its weights stay 4-bit on the GPU",
            )?;
        }
    }
    tokens.check(&config)?;
    let rows = checkpoint.read_rows(head, &[tokens.yes as usize, tokens.no as usize])?;
    let score_rows: [Vec<f32>; 2] = rows.try_into().expect("one row per token asked for");
    let host_table = match table_on_device {
        true => None,
        false => {
            let (bytes, dtype) = checkpoint.read_stored(TABLE)?;
            Some(HostTable::stored(bytes, dtype, table_shape[1]))
        }
    };
    checkpoint.load_into(&mut net, device)?;
    Ok(ModelParts {
        config,
        net,
        host_table,
        score_rows,
        device: device.clone(),
    })
}

/// A model directory checked without reading a weight, as loading it checks it first:
/// `config.json` against the shapes its weights hold (a checkpoint's safetensors headers, or a
/// 4-bit manifest) before anything of the config's sizes is built, then every tensor's name,
/// shape and dtype. Returns the config.
pub fn check_model_directory(dir: &Path, device: &Device) -> Result<ModelConfig, ModelError> {
    if is_quantized(dir) {
        let model = sift_quant::QuantizedModel::open(dir)?;
        let config =
            ModelConfig::from_json(&String::from_utf8_lossy(&model.read_file("config.json")?))?;
        check_shapes(&model.manifest, &config, device)?;
        return Ok(config);
    }
    let (config, checkpoint) = open_checkpoint(dir)?;
    let net = Qwen3VlModel::new(&config, false, device);
    check_checkpoint(&config, &checkpoint, &net)?;
    Ok(config)
}

/// `config.json` and the checkpoint's safetensors headers, checked against each other before
/// anything of the config's sizes is built: a config that lies about a size or a count is
/// refused here, by field and tensor.
fn open_checkpoint(dir: &Path) -> Result<(ModelConfig, Checkpoint), ModelError> {
    let config_path = dir.join("config.json");
    let json = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Io {
        path: config_path.clone(),
        message: format!("{e}. Is {} a downloaded model directory?", dir.display()),
    })?;
    let config = ModelConfig::from_json(&json)?;
    let checkpoint = Checkpoint::open(dir)?;
    check_config_against(
        &config,
        &checkpoint.tensor_shapes(),
        "the checkpoint",
        weights::CHECKPOINT_FIX,
    )?;
    Ok((config, checkpoint))
}

/// Checks every tensor of `checkpoint` against those of `net` (the network of `config`) and
/// the token table and head, which are not always its parameters. Returns the shapes of the
/// tensors that go to the device, and the tensor the score's rows are read from.
fn check_checkpoint(
    config: &ModelConfig,
    checkpoint: &Checkpoint,
    net: &Qwen3VlModel,
) -> Result<(BTreeMap<String, Vec<usize>>, &'static str), ModelError> {
    // What goes to the device; the table (where it stays on the host) and the head (only
    // its score rows are read) are checked too.
    let on_device = weights::expected_shapes(net);
    let mut expected = on_device.clone();
    let table_shape = config.token_table_shape().to_vec();
    expected.insert(TABLE.into(), table_shape.clone());
    // A tied checkpoint has no head of its own (transformers ties it even if one is saved).
    let head = if config.tied_embeddings() {
        TABLE
    } else {
        expected.insert(HEAD.into(), table_shape);
        HEAD
    };
    checkpoint.check(&expected, &[HEAD])?;
    Ok((on_device, head))
}

/// A sift 4-bit directory, shard by shard, refused before anything is allocated if one of its
/// buffers would exceed `max_binding` bytes.
pub(crate) fn load_quantized(
    dir: &Path,
    tokens: ScoreTokens,
    device: &Device,
    max_binding: Option<u64>,
) -> Result<ModelParts, ModelError> {
    let model = sift_quant::QuantizedModel::open(dir)?;
    let json = model.read_file("config.json")?;
    let config = ModelConfig::from_json(&String::from_utf8_lossy(&json))?;
    let shards = model.manifest.shards.len();
    let mut loader = QuantizedLoader::new(
        model.manifest.clone(),
        &dir.display().to_string(),
        config,
        tokens,
        device,
        max_binding,
    )?;
    for shard in 0..shards {
        loader.add_shard(shard, &model.read_shard(shard)?)?;
    }
    loader.finish()
}
