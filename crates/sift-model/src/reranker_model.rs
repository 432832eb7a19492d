//! [`RerankerModel`], the crate's entry point: the network with its weights and the score
//! direction `W_yes − W_no`; every method of it is here, the work of those that belong to
//! another concern (reading a directory, a prefix's parts) done in that concern's module.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::from_directory;
use crate::host_table::HostTable;
use crate::input::ModelInput;
use crate::network::{ModelParts, Qwen3VlModel};
use crate::prefix::{self, Prefix};
use crate::profile;
use crate::quantized::QuantizedLoader;
use crate::rope;
use crate::score::{Score, ScoreTokens};
use crate::text::{LayerKeys, VisualInjection};
use crate::trace::Trace;
use crate::vision::{VisionModel, VisualKind};

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
    /// Loads a model directory: a Hugging Face checkpoint (`config.json` and safetensors
    /// weights, computed in f32), or a sift 4-bit directory (`sift-q4.json`, from
    /// `sift quantize`).
    pub fn load(dir: &Path, tokens: ScoreTokens, device: &Device) -> Result<Self, ModelError> {
        from_directory::load(dir, tokens, device).map(Self::assemble)
    }

    /// Loads a Hugging Face checkpoint in f32, refusing it before any weight is read if one of
    /// its tensors would exceed `max_binding` bytes (by default, [`load`](Self::load) uses the
    /// device's own limit, where known). A token table over the limit (the 8B's is 2.5 GB in
    /// f32) stays on the host, as stored, and only a request's rows go to the device.
    pub fn load_checkpoint(
        dir: &Path,
        tokens: ScoreTokens,
        device: &Device,
        max_binding: Option<u64>,
    ) -> Result<Self, ModelError> {
        from_directory::load_checkpoint(dir, tokens, device, max_binding).map(Self::assemble)
    }

    /// Loads a sift 4-bit directory shard by shard, refusing it before anything is allocated
    /// if one of its buffers would exceed `max_binding` bytes (by default, [`load`](Self::load)
    /// uses the device's own limit, where known).
    pub fn load_quantized(
        dir: &Path,
        tokens: ScoreTokens,
        device: &Device,
        max_binding: Option<u64>,
    ) -> Result<Self, ModelError> {
        from_directory::load_quantized(dir, tokens, device, max_binding).map(Self::assemble)
    }

    /// The model of a 4-bit loader once every shard has been added.
    pub fn from_loader(loader: QuantizedLoader) -> Result<Self, ModelError> {
        loader.finish().map(Self::assemble)
    }

    /// The reranker of a loaded model's parts.
    pub(crate) fn assemble(parts: ModelParts) -> Self {
        let [yes, no] = &parts.score_rows;
        let direction: Vec<f32> = yes.iter().zip(no).map(|(y, n)| y - n).collect();
        let hidden = direction.len();
        Self {
            score_direction: Tensor::from_data(
                TensorData::new(direction, [hidden, 1]),
                &parts.device,
            ),
            config: parts.config,
            net: parts.net,
            host_table: parts.host_table,
            device: parts.device,
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
    ///
    /// [`Projection::compute_in_f16`]: crate::Projection::compute_in_f16
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

    /// [`forward`](Self::forward) of tokens that come after `past` (see
    /// [`prefix`](Self::prefix)), made of the prompts `segments` (each attends to the past and
    /// to itself), and with `keep_keys` their keys and values per layer.
    fn forward_after(
        &self,
        input: &ModelInput,
        past: Option<&[LayerKeys]>,
        segments: &[std::ops::Range<usize>],
        keep_keys: bool,
        trace: &mut Trace,
    ) -> Result<(Tensor<2>, Vec<LayerKeys>), ModelError> {
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

    /// The keys and values of `input`'s first `len` tokens (which must not split an image's
    /// or a video's pad tokens), their images and videos run through the vision tower once.
    pub fn prefix(&self, input: &ModelInput, len: usize) -> Result<Prefix, ModelError> {
        let merge = self.config.vision_config.spatial_merge_size;
        let pads = self.pad_positions(&input.input_ids);
        let (head, visual_items) = prefix::head(input, len, pads, merge)?;
        let whole = 0..len;
        let (_, layers) = self.forward_after(&head, None, &[whole], true, &mut Trace::off())?;
        Ok(Prefix::new(head, visual_items, layers))
    }

    /// The scores of `inputs`, which all begin with `prefix` ([`Prefix::fits`]), from one
    /// forward pass: only the tokens after the prefix (and their images and videos) are
    /// computed, packed into one sequence in which each prompt attends to the prefix and to
    /// itself alone. A score that is not finite is its own pair's error; an error for the
    /// whole pass is returned as such.
    pub fn score_after(
        &self,
        prefix: &Prefix,
        inputs: &[&ModelInput],
    ) -> Result<Vec<Result<Score, ModelError>>, ModelError> {
        let logits = self.logits_after(prefix, inputs)?;
        let data = profile::stage("score readback", self.device(), || logits.into_data());
        Ok(Score::from_logits(data))
    }

    /// [`score_after`](Self::score_after), reading the results back asynchronously (browsers).
    pub async fn score_after_async(
        &self,
        prefix: &Prefix,
        inputs: &[&ModelInput],
    ) -> Result<Vec<Result<Score, ModelError>>, ModelError> {
        let data = self
            .logits_after(prefix, inputs)?
            .into_data_async()
            .await
            .map_err(|e| ModelError::Gpu(format!("reading the scores back failed: {e:?}")))?;
        Ok(Score::from_logits(data))
    }

    /// `[inputs.len(), 1]` logits of prompts packed after `prefix`.
    fn logits_after(
        &self,
        prefix: &Prefix,
        inputs: &[&ModelInput],
    ) -> Result<Tensor<2>, ModelError> {
        let (packed, segments) = prefix.pack(inputs)?;
        let (hidden, _) = self.forward_after(
            &packed,
            Some(prefix.layers()),
            &segments,
            false,
            &mut Trace::off(),
        )?;
        let lasts: Vec<i64> = segments.iter().map(|s| s.end as i64 - 1).collect();
        let lasts =
            Tensor::<1, Int>::from_data(TensorData::new(lasts, [inputs.len()]), self.device());
        Ok(self.logits_of(hidden.select(0, lasts)))
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
