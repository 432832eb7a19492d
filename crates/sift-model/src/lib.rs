//! The Qwen3-VL reranker network on burn.
//!
//! Input: token ids, multimodal position ids and the preprocessed pixels of each image or video
//! (from `sift-inputs`). Output: the final hidden states and the reranker score
//! `sigmoid(h_last · (W_yes − W_no))`. The full vocabulary head is never computed.

mod attention;
pub mod config;
mod projection;
mod quantized;
mod rope;
mod text;
mod trace;
mod vision;
mod weights;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Int, TensorData};

pub use burn::tensor::{Device, Tensor};
pub use config::ModelConfig;
pub use projection::Projection;
pub use quantized::{is_quantized, q4_scale_dtype, q4_tensor_data};
pub use text::TextModel;
pub use trace::Trace;
pub use vision::{VisionModel, VisionOutput, VisualItem, VisualKind};

use quantized::HostTable;
use text::VisualInjection;
use weights::Checkpoint;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{0}")]
    Weights(String),
    #[error("invalid model input: {0}")]
    Input(String),
    #[error("no usable GPU: {0}")]
    Gpu(String),
}

/// The default GPU through wgpu (Vulkan, Metal or DirectX 12), or why there is none.
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub fn gpu_device() -> Result<Device, ModelError> {
    gpu_from_setup(Device::wgpu_options().init_with_setup())
}

/// The default GPU, set up asynchronously: in a browser, its WebGPU adapter.
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub async fn gpu_device_async() -> Result<Device, ModelError> {
    gpu_from_setup(Device::wgpu_options().init_with_setup_async().await)
}

/// Records the binding limit of a new GPU, or shares the one already set up.
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
fn gpu_from_setup(
    setup: Result<(Device, burn::tensor::wgpu::WgpuSetup), burn::tensor::wgpu::WgpuInitError>,
) -> Result<Device, ModelError> {
    use burn::tensor::wgpu::WgpuInitError;
    match setup {
        Ok((device, setup)) => {
            let limits = setup.device.limits();
            let binding = limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size);
            let _ = GPU_BINDING_LIMIT.set((device.clone(), binding));
            Ok(device)
        }
        // The runtime is already up in this process (an earlier load): share it.
        Err(WgpuInitError::Registration { .. }) => Ok(Device::wgpu(Default::default())),
        Err(e) => Err(ModelError::Gpu(format!(
            "{e}. Check the GPU driver (Vulkan, Metal or DirectX 12) or the browser's WebGPU \
             support, or use the CPU backend (--device cpu)"
        ))),
    }
}

/// The GPU [`gpu_device`] or [`gpu_device_async`] set up, with the largest buffer it binds, in bytes
/// (`maxStorageBufferBindingSize`, capped by `maxBufferSize`).
static GPU_BINDING_LIMIT: std::sync::OnceLock<(Device, u64)> = std::sync::OnceLock::new();

/// The largest buffer `device` binds, where known (GPUs set up by [`gpu_device`] or
/// [`gpu_device_async`]).
pub fn binding_limit(device: &Device) -> Option<u64> {
    GPU_BINDING_LIMIT
        .get()
        .filter(|(gpu, _)| gpu == device)
        .map(|&(_, limit)| limit)
}

/// Refuses a tensor of `bytes` over the device's binding limit, naming it and what to do:
/// `fix` first, then a GPU or browser with higher limits.
fn check_binding(name: &str, bytes: u64, limit: u64, fix: &str) -> Result<(), ModelError> {
    if bytes <= limit {
        return Ok(());
    }
    Err(ModelError::Gpu(format!(
        "{name} needs a {} buffer, but this GPU binds at most {} \
         (maxStorageBufferBindingSize). To run it, {fix}; or use a GPU or browser with higher \
         limits, or run on the CPU",
        size(bytes),
        size(limit)
    )))
}

fn size(bytes: u64) -> String {
    match bytes {
        0..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// The tensors, by checkpoint name with their shapes, that a Hugging Face checkpoint of
/// `config` holds: what a converter or a synthetic model has to write.
pub fn checkpoint_tensors(config: &ModelConfig, device: &Device) -> Vec<(String, Vec<usize>)> {
    let net = Qwen3VlModel {
        visual: VisionModel::new(&config.vision_config, device),
        language_model: TextModel::new(config, true, device),
    };
    let mut tensors: Vec<_> = weights::expected_shapes(&net).into_iter().collect();
    if !config.tied_embeddings() {
        let t = &config.text_config;
        tensors.push(("lm_head.weight".into(), vec![t.vocab_size, t.hidden_size]));
        tensors.sort();
    }
    tensors
}

/// `Qwen3VLModel`: the vision tower and the text decoder, named as in the checkpoint.
#[derive(Module, Debug)]
pub struct Qwen3VlModel {
    pub visual: VisionModel,
    pub language_model: TextModel,
}

/// The vocabulary ids whose logit difference is the score (`"yes"` and `"no"`).
#[derive(Debug, Clone, Copy)]
pub struct ScoreTokens {
    pub yes: u32,
    pub no: u32,
}

/// One (query, document) pair as the model reads it.
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub input_ids: Vec<u32>,
    /// T, H and W position of every token (`get_rope_index`).
    pub position_ids: [Vec<i64>; 3],
    /// Images and videos in the order their pad tokens appear in `input_ids`.
    pub visuals: Vec<VisualItem>,
}

/// The reranker's output for one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// `logit_yes − logit_no`.
    pub logit: f32,
    /// `sigmoid(logit)`, in [0, 1].
    pub score: f32,
}

/// The network with its weights and the score direction `W_yes − W_no`.
pub struct RerankerModel {
    config: ModelConfig,
    net: Qwen3VlModel,
    /// The token table when it is kept on the host (4-bit models); else it is in `net`.
    host_table: Option<HostTable>,
    score_direction: Tensor<2>,
    device: Device,
}

impl RerankerModel {
    /// Loads a model directory: a Hugging Face checkpoint (`config.json` and safetensors
    /// weights, computed in f32), or a sift 4-bit directory (`sift-q4.json`, from
    /// `sift quantize`).
    pub fn load(dir: &Path, tokens: ScoreTokens, device: &Device) -> Result<Self, ModelError> {
        if quantized::is_quantized(dir) {
            return Self::load_quantized(dir, tokens, device, binding_limit(device));
        }
        Self::load_checkpoint(dir, tokens, device, binding_limit(device))
    }

    /// Loads a Hugging Face checkpoint in f32, refusing it before any weight is read if one of
    /// its tensors would exceed `max_binding` bytes (by default, [`load`](Self::load) uses the
    /// device's own limit, where known).
    pub fn load_checkpoint(
        dir: &Path,
        tokens: ScoreTokens,
        device: &Device,
        max_binding: Option<u64>,
    ) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let json = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Io {
            path: config_path.clone(),
            message: format!("{e}. Is {} a downloaded model directory?", dir.display()),
        })?;
        let config = ModelConfig::from_json(&json)?;
        let mut net = Qwen3VlModel {
            visual: VisionModel::new(&config.vision_config, device),
            language_model: TextModel::new(&config, true, device),
        };
        let checkpoint = Checkpoint::open(dir)?;
        // A tied checkpoint has no head of its own (transformers ties it even if one is saved).
        let head = if config.tied_embeddings() {
            "model.language_model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        checkpoint.check(&net, &["lm_head.weight"])?;
        if let Some(limit) = max_binding {
            let shapes = weights::expected_shapes(&net);
            let largest = shapes.iter().map(|(name, shape)| {
                let values: usize = shape.iter().product();
                (name, values as u64 * 4)
            });
            if let Some((name, bytes)) = largest.max_by_key(|(_, bytes)| *bytes) {
                check_binding(
                    name,
                    bytes,
                    limit,
                    "quantize the model with `sift quantize`: \
                    its weights stay 4-bit on the GPU and its token table on the host",
                )?;
            }
        }
        let rows = checkpoint.read_rows(head, &[tokens.yes as usize, tokens.no as usize])?;
        checkpoint.load_into(&mut net, device)?;
        Ok(Self::assemble(
            config, net, None, &rows[0], &rows[1], device,
        ))
    }

    /// Loads a sift 4-bit directory, refusing it before anything is allocated if one of its
    /// buffers would exceed `max_binding` bytes (by default, [`load`](Self::load) uses the
    /// device's own limit, where known).
    pub fn load_quantized(
        dir: &Path,
        tokens: ScoreTokens,
        device: &Device,
        max_binding: Option<u64>,
    ) -> Result<Self, ModelError> {
        let model = sift_quant::QuantizedModel::open(dir)?;
        let json = model.read_file("config.json")?;
        let config = ModelConfig::from_json(&String::from_utf8_lossy(&json))?;
        let net = Qwen3VlModel {
            visual: VisionModel::new(&config.vision_config, device),
            language_model: TextModel::new(&config, false, device),
        };
        let (net, extras) = quantized::load(
            &model,
            net,
            [tokens.yes as usize, tokens.no as usize],
            config.tied_embeddings(),
            device,
            max_binding,
        )?;
        let [yes, no] = &extras.head_rows;
        Ok(Self::assemble(
            config,
            net,
            Some(extras.table),
            yes,
            no,
            device,
        ))
    }

    fn assemble(
        config: ModelConfig,
        net: Qwen3VlModel,
        host_table: Option<HostTable>,
        yes: &[f32],
        no: &[f32],
        device: &Device,
    ) -> Self {
        let direction: Vec<f32> = yes.iter().zip(no).map(|(y, n)| y - n).collect();
        let hidden = direction.len();
        Self {
            config,
            net,
            host_table,
            score_direction: Tensor::from_data(TensorData::new(direction, [hidden, 1]), device),
            device: device.clone(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The vision tower alone, for callers that compare its intermediates.
    pub fn vision(&self) -> &VisionModel {
        &self.net.visual
    }

    /// Hidden states after the final norm, `[len, hidden]`.
    pub fn forward(&self, input: &ModelInput, trace: &mut Trace) -> Result<Tensor<2>, ModelError> {
        let len = input.input_ids.len();
        let vocab = self.config.text_config.vocab_size;
        if len == 0 {
            return Err(ModelError::Input("the prompt has no tokens".into()));
        }
        if input.position_ids.iter().any(|axis| axis.len() != len) {
            return Err(ModelError::Input(format!(
                "position ids must have {len} entries per axis, like the prompt"
            )));
        }
        if let Some(&id) = input.input_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "token id {id} is outside the vocabulary of {vocab}"
            )));
        }
        let device = &self.device;
        let visual = self.visual_injection(input, trace)?;
        let embeds = match &self.host_table {
            Some(table) => table.lookup(&input.input_ids, device),
            None => {
                let ids: Vec<i64> = input.input_ids.iter().map(|&id| id as i64).collect();
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [len]), device);
                self.net.language_model.embed(ids)
            }
        };
        let rotary = rope::text_mrope(
            &input.position_ids,
            self.config.head_dim(),
            self.config.rope_theta(),
            &self.config.mrope_section(),
            device,
        );
        Ok(self
            .net
            .language_model
            .forward(embeds, visual, &rotary, trace))
    }

    /// The score of one pair: the last position's hidden state against `W_yes − W_no`.
    pub fn score(&self, input: &ModelInput) -> Result<Score, ModelError> {
        let logit = self.logit(input, &mut Trace::off())?;
        let logit: f32 = logit
            .into_data()
            .iter::<f32>()
            .next()
            .ok_or_else(|| ModelError::Input("empty logit".into()))?;
        Ok(Score {
            logit,
            score: 1.0 / (1.0 + (-logit).exp()),
        })
    }

    /// `h_last · (W_yes − W_no)` as a one-element tensor, left on the device so that callers
    /// that must read asynchronously (the browser) can.
    pub fn logit(&self, input: &ModelInput, trace: &mut Trace) -> Result<Tensor<2>, ModelError> {
        let hidden = self.forward(input, trace)?;
        let [len, width] = hidden.dims();
        let last = hidden.slice([len - 1..len, 0..width]);
        Ok(last.matmul(self.score_direction.clone()))
    }

    /// Runs the vision tower over the input's items and pairs its outputs with the pad-token
    /// positions they replace.
    fn visual_injection(
        &self,
        input: &ModelInput,
        trace: &mut Trace,
    ) -> Result<Option<VisualInjection>, ModelError> {
        let c = &self.config;
        let merge = c.vision_config.spatial_merge_size;
        let pad_of = |kind: VisualKind| match kind {
            VisualKind::Image => c.image_token_id,
            VisualKind::Video => c.video_token_id,
        };
        let positions: Vec<i64> = input
            .input_ids
            .iter()
            .enumerate()
            .filter(|&(_, &id)| id == c.image_token_id || id == c.video_token_id)
            .map(|(i, _)| i as i64)
            .collect();
        // Item k owns the next `patches / merge²` pad positions, and they must be its kind's.
        let mut cursor = 0;
        for item in &input.visuals {
            let tokens = item.patch_count() / (merge * merge);
            let owned = positions.get(cursor..cursor + tokens).ok_or_else(|| {
                ModelError::Input(format!(
                    "the prompt has {} visual pad tokens, fewer than its images and videos need",
                    positions.len()
                ))
            })?;
            if let Some(&p) = owned
                .iter()
                .find(|&&p| input.input_ids[p as usize] != pad_of(item.kind))
            {
                return Err(ModelError::Input(format!(
                    "token {p} should be a {:?} pad token: visual items must be given in prompt order",
                    item.kind
                )));
            }
            cursor += tokens;
        }
        if cursor != positions.len() {
            return Err(ModelError::Input(format!(
                "the prompt has {} visual pad tokens but its images and videos fill {cursor}",
                positions.len()
            )));
        }
        if input.visuals.is_empty() {
            return Ok(None);
        }
        let out = self
            .net
            .visual
            .forward(&input.visuals, &self.device, trace)?;
        let count = positions.len();
        Ok(Some(VisualInjection {
            positions: Tensor::from_data(TensorData::new(positions, [count]), &self.device),
            embeds: out.embeds,
            deepstack: out.deepstack,
        }))
    }
}
