//! The model's `config.json`, read with serde. Every dimension and token id comes from here.
//!
//! Two spellings exist for the text rotary settings: checkpoints saved by transformers 4.57
//! (the released Qwen3-VL models) write `rope_theta` + `rope_scaling`, transformers 5.x writes
//! `rope_parameters`. Both are accepted.

use serde::Deserialize;

use crate::ModelError;

/// The whole `config.json` of a `Qwen3VLForConditionalGeneration` checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    #[serde(default = "defaults::image_token_id")]
    pub image_token_id: u32,
    #[serde(default = "defaults::video_token_id")]
    pub video_token_id: u32,
    #[serde(default = "defaults::vision_start_token_id")]
    pub vision_start_token_id: u32,
    #[serde(default = "defaults::vision_end_token_id")]
    pub vision_end_token_id: u32,
    /// Top-level flag; transformers 4.57 decides on `text_config.tie_word_embeddings` instead.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    #[serde(default = "defaults::rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    #[serde(default = "defaults::in_channels")]
    pub in_channels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    pub out_hidden_size: usize,
    pub num_position_embeddings: usize,
    pub deepstack_visual_indexes: Vec<usize>,
    #[serde(default = "defaults::vision_hidden_act")]
    pub hidden_act: String,
}

mod defaults {
    pub fn image_token_id() -> u32 {
        151655
    }
    pub fn video_token_id() -> u32 {
        151656
    }
    pub fn vision_start_token_id() -> u32 {
        151652
    }
    pub fn vision_end_token_id() -> u32 {
        151653
    }
    pub fn rms_norm_eps() -> f64 {
        1e-6
    }
    pub fn hidden_act() -> String {
        "silu".into()
    }
    pub fn vision_hidden_act() -> String {
        "gelu_pytorch_tanh".into()
    }
    pub fn in_channels() -> usize {
        3
    }
}

impl ModelConfig {
    /// Parses `config.json` text and checks that the architecture is one sift computes.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let config: Self = serde_json::from_str(json)
            .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Whether the score row comes from `embed_tokens` (no `lm_head.weight` in the checkpoint).
    pub fn tied_embeddings(&self) -> bool {
        self.text_config
            .tie_word_embeddings
            .or(self.tie_word_embeddings)
            .unwrap_or(false)
    }

    fn validate(&self) -> Result<(), ModelError> {
        let t = &self.text_config;
        let v = &self.vision_config;
        let bad = |msg: String| Err(ModelError::Config(msg));
        if t.hidden_act != "silu" {
            return bad(format!(
                "text hidden_act {:?} is not supported (only silu)",
                t.hidden_act
            ));
        }
        if v.hidden_act != "gelu_pytorch_tanh" {
            return bad(format!(
                "vision hidden_act {:?} is not supported (only gelu_pytorch_tanh)",
                v.hidden_act
            ));
        }
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if !v.hidden_size.is_multiple_of(v.num_heads)
            || !(v.hidden_size / v.num_heads).is_multiple_of(4)
        {
            return bad(format!(
                "vision head_dim {}/{} must be a whole multiple of 4 for the 2-D rotary embedding",
                v.hidden_size, v.num_heads
            ));
        }
        let side = self.pos_embed_side();
        if side * side != v.num_position_embeddings {
            return bad(format!(
                "vision num_position_embeddings {} is not a square grid",
                v.num_position_embeddings
            ));
        }
        let sections = self.mrope_section();
        if sections.len() != 3 || sections.iter().sum::<usize>() * 2 != self.head_dim() {
            return bad(format!(
                "mrope_section {sections:?} must have 3 entries summing to head_dim/2 = {}",
                self.head_dim() / 2
            ));
        }
        if let Some(kind) = self.rope().and_then(|r| r.rope_type.as_deref())
            && kind != "default"
        {
            return bad(format!(
                "rope_type {kind:?} is not supported (only default)"
            ));
        }
        Ok(())
    }

    fn rope(&self) -> Option<&RopeParameters> {
        let t = &self.text_config;
        t.rope_parameters.as_ref().or(t.rope_scaling.as_ref())
    }

    pub fn head_dim(&self) -> usize {
        let t = &self.text_config;
        t.head_dim.unwrap_or(t.hidden_size / t.num_attention_heads)
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope()
            .and_then(|r| r.rope_theta)
            .or(self.text_config.rope_theta)
            .unwrap_or(5_000_000.0)
    }

    /// Frequency slots given to the T, H and W axes; transformers' default is `[24, 20, 20]`.
    /// transformers 4.57 always interleaves them, whatever `mrope_interleaved` says.
    pub fn mrope_section(&self) -> Vec<usize> {
        self.rope()
            .and_then(|r| r.mrope_section.clone())
            .unwrap_or_else(|| vec![24, 20, 20])
    }

    /// Side of the learned vision position-embedding grid (48 for the released models).
    pub fn pos_embed_side(&self) -> usize {
        (self.vision_config.num_position_embeddings as f64)
            .sqrt()
            .round() as usize
    }
}
