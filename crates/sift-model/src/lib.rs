//! The Qwen3-VL reranker network on burn.
//!
//! Input: token ids, multimodal position ids and the preprocessed pixels of each image or video
//! (from `sift-inputs`). Output: the final hidden states and the reranker score
//! `sigmoid(h_last · (W_yes − W_no))`. The full vocabulary head is never computed.

mod attention;
pub mod config;
mod device;
pub mod kernels;
mod load;
pub mod prefix;
pub mod profile;
mod projection;
mod quantized;
mod rope;
mod text;
mod trace;
mod vision;
mod weights;

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Int, TensorData};

pub use attention::{AttentionKernels, attention_measurements, use_attention_kernels};
pub use burn::tensor::{Device, Tensor};
pub use config::ModelConfig;
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub use device::gpu_device_async;
pub use device::{GpuInfo, binding_limit, gpu_info};
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub use device::{gpu_device, hardware_gpu_present};
pub use prefix::Prefix;
pub use projection::Projection;
pub use quantized::{QuantizedLoader, Requirements, is_quantized, q4_scale_dtype, q4_tensor_data};
pub use text::TextModel;
pub use trace::Trace;
pub use vision::{VisionModel, VisionOutput, VisualItem, VisualKind};

use quantized::HostTable;
use text::VisualInjection;

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
    #[error(
        "the model computed a score of {0} (a numeric overflow on this device); this pair \
         cannot be scored here: try the CPU backend, or report it with the inputs"
    )]
    NotFinite(f32),
}

/// The tensors, by checkpoint name with their shapes, that a Hugging Face checkpoint of
/// `config` holds: what a converter or a synthetic model has to write.
pub fn checkpoint_tensors(config: &ModelConfig, device: &Device) -> Vec<(String, Vec<usize>)> {
    let net = Qwen3VlModel::new(config, true, device);
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

impl Qwen3VlModel {
    /// The network of `config`, its parameters unallocated until weights fill them;
    /// `table_on_device`: whether the token table is one of them.
    pub fn new(config: &ModelConfig, table_on_device: bool, device: &Device) -> Self {
        Self {
            visual: VisionModel::new(&config.vision_config, device),
            language_model: TextModel::new(config, table_on_device, device),
        }
    }

    /// Every linear layer: where the multiplications (nearly all of the work) are.
    fn projections_mut(&mut self) -> Vec<&mut Projection> {
        let mut all = Vec::new();
        let visual = &mut self.visual;
        for block in &mut visual.blocks {
            all.extend([&mut block.attn.qkv, &mut block.attn.proj]);
            all.extend([&mut block.mlp.linear_fc1, &mut block.mlp.linear_fc2]);
        }
        for merger in std::iter::once(&mut visual.merger).chain(&mut visual.deepstack_merger_list) {
            all.extend([&mut merger.linear_fc1, &mut merger.linear_fc2]);
        }
        for layer in &mut self.language_model.layers {
            let attention = &mut layer.self_attn;
            all.extend([
                &mut attention.q_proj,
                &mut attention.k_proj,
                &mut attention.v_proj,
                &mut attention.o_proj,
            ]);
            let mlp = &mut layer.mlp;
            all.extend([&mut mlp.gate_proj, &mut mlp.up_proj, &mut mlp.down_proj]);
        }
        all
    }
}

/// The vocabulary ids whose logit difference is the score (`"yes"` and `"no"`).
#[derive(Debug, Clone, Copy)]
pub struct ScoreTokens {
    pub yes: u32,
    pub no: u32,
}

impl ScoreTokens {
    /// Both ids must be rows of the model's token table.
    pub fn check(&self, config: &ModelConfig) -> Result<(), ModelError> {
        let [vocab, _] = config.token_table_shape();
        match [self.yes, self.no]
            .into_iter()
            .find(|&id| id as usize >= vocab)
        {
            Some(id) => Err(ModelError::Weights(format!(
                "the score reads token {id}, outside the model's {vocab} tokens: the \
                 tokenizer.json belongs to another model; use the model's own"
            ))),
            None => Ok(()),
        }
    }
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

impl ModelInput {
    /// Patches its images and videos give the vision tower.
    pub fn patch_count(&self) -> usize {
        self.visuals.iter().map(VisualItem::patch_count).sum()
    }
}

/// The reranker's output for one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// `logit_yes − logit_no`.
    pub logit: f32,
    /// `sigmoid(logit)`, in [0, 1].
    pub score: f32,
}

impl Score {
    /// The score of a one-element logit read back from the device.
    fn from_logit(data: TensorData) -> Result<Self, ModelError> {
        Self::from_logits(data)
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::Input("empty logit".into()))?
    }

    /// The score of each logit read back from the device. A NaN or infinite logit (overflow on
    /// the GPU) is that pair's error, never a score that sorts first.
    fn from_logits(data: TensorData) -> Vec<Result<Self, ModelError>> {
        data.iter::<f32>()
            .map(|logit| {
                if !logit.is_finite() {
                    return Err(ModelError::NotFinite(logit));
                }
                Ok(Score {
                    logit,
                    score: 1.0 / (1.0 + (-logit).exp()),
                })
            })
            .collect()
    }
}

/// The network with its weights and the score direction `W_yes − W_no`.
pub struct RerankerModel {
    config: ModelConfig,
    net: Qwen3VlModel,
    /// The token table when it is kept on the host (4-bit models, and tables over the GPU's
    /// binding limit); else it is in `net`.
    host_table: Option<HostTable>,
    score_direction: Tensor<2>,
    device: Device,
}

impl RerankerModel {
    pub(crate) fn assemble(
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

    /// Multiplies every linear layer in f16 from now on ([`Projection::compute_in_f16`]), and
    /// attention with them (each layer's attention follows its projections); norms, rotary
    /// embeddings, the residual stream and the score stay f32. An error where the device does
    /// not compute in f16.
    pub fn compute_in_f16(&mut self) -> Result<(), ModelError> {
        if !self.device.supports_dtype(burn::tensor::DType::F16) {
            return Err(ModelError::Gpu(
                "this device does not compute in f16 (a GPU without shader-f16, or the CPU \
                 backend); use f32 precision"
                    .into(),
            ));
        }
        for projection in self.net.projections_mut() {
            projection.compute_in_f16();
        }
        Ok(())
    }

    /// Bytes of the widest activation of a forward pass over `tokens` prompt tokens whose
    /// images and videos have `patches` patches: the MLP's inner layer, of the decoder or of
    /// the vision tower, in f32. What decides how many documents one pass can take.
    pub fn pass_bytes(&self, tokens: usize, patches: usize) -> u64 {
        let text = tokens as u64 * self.config.text_config.intermediate_size as u64;
        let vision = patches as u64 * self.config.vision_config.intermediate_size as u64;
        text.max(vision) * 4
    }

    /// The vision tower alone, for callers that compare its intermediates.
    pub fn vision(&self) -> &VisionModel {
        &self.net.visual
    }

    /// Hidden states after the final norm, `[len, hidden]`.
    pub fn forward(&self, input: &ModelInput, trace: &mut Trace) -> Result<Tensor<2>, ModelError> {
        let whole = 0..input.input_ids.len();
        Ok(self.forward_after(input, None, &[whole], false, trace)?.0)
    }

    /// [`forward`](Self::forward) of tokens that come after `past` (see [`prefix`]), made of
    /// the prompts `segments` (each attends to the past and to itself), and with `keep_keys`
    /// their keys and values per layer.
    fn forward_after(
        &self,
        input: &ModelInput,
        past: Option<&[text::LayerKeys]>,
        segments: &[std::ops::Range<usize>],
        keep_keys: bool,
        trace: &mut Trace,
    ) -> Result<(Tensor<2>, Vec<text::LayerKeys>), ModelError> {
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
        let embeds = profile::stage("token embeddings", device, || match &self.host_table {
            Some(table) => table.lookup(&input.input_ids, device),
            None => {
                let ids: Vec<i64> = input.input_ids.iter().map(|&id| id as i64).collect();
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [len]), device);
                self.net.language_model.embed(ids)
            }
        });
        let rotary = rope::text_mrope(
            &input.position_ids,
            self.config.head_dim(),
            self.config.rope_theta(),
            &self.config.mrope_section(),
            device,
        );
        Ok(profile::stage("decoder layers", device, || {
            self.net
                .language_model
                .forward_after(embeds, visual, &rotary, past, segments, keep_keys, trace)
        }))
    }

    /// The score of one pair: the last position's hidden state against `W_yes − W_no`.
    /// Reads the result back synchronously: not in a browser (see [`score_async`](Self::score_async)).
    pub fn score(&self, input: &ModelInput) -> Result<Score, ModelError> {
        Score::from_logit(self.logit(input, &mut Trace::off())?.into_data())
    }

    /// [`score`](Self::score), reading the result back asynchronously, as a browser must: one
    /// readback per pair.
    pub async fn score_async(&self, input: &ModelInput) -> Result<Score, ModelError> {
        let logit = self.logit(input, &mut Trace::off())?;
        let data = logit
            .into_data_async()
            .await
            .map_err(|e| ModelError::Gpu(format!("reading the score back failed: {e:?}")))?;
        Score::from_logit(data)
    }

    /// `h_last · (W_yes − W_no)` as a one-element tensor, left on the device so that callers
    /// that must read asynchronously (the browser) can.
    pub fn logit(&self, input: &ModelInput, trace: &mut Trace) -> Result<Tensor<2>, ModelError> {
        let hidden = self.forward(input, trace)?;
        Ok(self.last_logit(hidden))
    }

    fn last_logit(&self, hidden: Tensor<2>) -> Tensor<2> {
        let [len, width] = hidden.dims();
        self.logits_of(hidden.slice([len - 1..len, 0..width]))
    }

    /// `[rows, 1]` logits of final hidden states `[rows, hidden]`.
    fn logits_of(&self, hidden: Tensor<2>) -> Tensor<2> {
        hidden.matmul(self.score_direction.clone())
    }

    /// Indices of the image and video pad tokens among `input_ids`, in order.
    fn pad_positions<'a>(&self, input_ids: &'a [u32]) -> impl Iterator<Item = usize> + 'a {
        let (image, video) = (self.config.image_token_id, self.config.video_token_id);
        input_ids
            .iter()
            .enumerate()
            .filter(move |&(_, &id)| id == image || id == video)
            .map(|(i, _)| i)
    }

    /// Where the pad tokens of `input`'s visual item `item` start, or the prompt's length if it
    /// has no such item: a prefix shorter than this holds none of that item's tokens.
    pub fn visual_item_start(&self, input: &ModelInput, item: usize) -> usize {
        let merge = self.config.vision_config.spatial_merge_size;
        let before: usize = input.visuals[..item.min(input.visuals.len())]
            .iter()
            .map(|v| v.patch_count() / (merge * merge))
            .sum();
        self.pad_positions(&input.input_ids)
            .nth(before)
            .unwrap_or(input.input_ids.len())
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
        let positions: Vec<i64> = self
            .pad_positions(&input.input_ids)
            .map(|i| i as i64)
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
        let out = profile::stage("vision tower", &self.device, || {
            self.net.visual.forward(&input.visuals, &self.device, trace)
        })?;
        let count = positions.len();
        Ok(Some(VisualInjection {
            positions: Tensor::from_data(TensorData::new(positions, [count]), &self.device),
            embeds: out.embeds,
            deepstack: out.deepstack,
        }))
    }
}
