//! Loading a model from a directory: a Hugging Face checkpoint (computed in f32) or a sift
//! 4-bit directory, read shard by shard through [`QuantizedLoader`].

use std::path::Path;

use crate::device::{binding_limit, check_binding};
use crate::quantized::{HEAD, HostTable, QuantizedLoader, TABLE, is_quantized};
use crate::weights::{self, Checkpoint};
use crate::{ModelConfig, ModelError, Qwen3VlModel, RerankerModel, ScoreTokens};

impl RerankerModel {
    /// Loads a model directory: a Hugging Face checkpoint (`config.json` and safetensors
    /// weights, computed in f32), or a sift 4-bit directory (`sift-q4.json`, from
    /// `sift quantize`).
    pub fn load(
        dir: &Path,
        tokens: ScoreTokens,
        device: &crate::Device,
    ) -> Result<Self, ModelError> {
        if is_quantized(dir) {
            return Self::load_quantized(dir, tokens, device, binding_limit(device));
        }
        Self::load_checkpoint(dir, tokens, device, binding_limit(device))
    }

    /// Loads a Hugging Face checkpoint in f32, refusing it before any weight is read if one of
    /// its tensors would exceed `max_binding` bytes (by default, [`load`](Self::load) uses the
    /// device's own limit, where known). A token table over the limit (the 8B's is 2.5 GB in
    /// f32) stays on the host, as stored, and only a request's rows go to the device.
    pub fn load_checkpoint(
        dir: &Path,
        tokens: ScoreTokens,
        device: &crate::Device,
        max_binding: Option<u64>,
    ) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let json = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Io {
            path: config_path.clone(),
            message: format!("{e}. Is {} a downloaded model directory?", dir.display()),
        })?;
        let config = ModelConfig::from_json(&json)?;
        let f32_bytes = |shape: &[usize]| shape.iter().product::<usize>() as u64 * 4;
        let table_shape = config.token_table_shape();
        let table_on_device = max_binding.is_none_or(|limit| f32_bytes(&table_shape) <= limit);
        let mut net = Qwen3VlModel::new(&config, table_on_device, device);
        let checkpoint = Checkpoint::open(dir)?;
        // What goes to the device; the table (where it stays on the host) and the head (only
        // its score rows are read) are checked too.
        let on_device = weights::expected_shapes(&net);
        let mut expected = on_device.clone();
        expected.insert(TABLE.into(), table_shape.to_vec());
        // A tied checkpoint has no head of its own (transformers ties it even if one is saved).
        let head = if config.tied_embeddings() {
            TABLE
        } else {
            expected.insert(HEAD.into(), table_shape.to_vec());
            HEAD
        };
        checkpoint.check(&expected, &[HEAD])?;
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
        let host_table = match table_on_device {
            true => None,
            false => {
                let (bytes, dtype) = checkpoint.read_stored(TABLE)?;
                Some(HostTable::stored(bytes, dtype, table_shape[1]))
            }
        };
        checkpoint.load_into(&mut net, device)?;
        Ok(Self::assemble(
            config, net, host_table, &rows[0], &rows[1], device,
        ))
    }

    /// Loads a sift 4-bit directory shard by shard, refusing it before anything is allocated
    /// if one of its buffers would exceed `max_binding` bytes (by default, [`load`](Self::load)
    /// uses the device's own limit, where known).
    pub fn load_quantized(
        dir: &Path,
        tokens: ScoreTokens,
        device: &crate::Device,
        max_binding: Option<u64>,
    ) -> Result<Self, ModelError> {
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
}
