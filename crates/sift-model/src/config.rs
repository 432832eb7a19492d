//! The model's `config.json`, read with serde. Every dimension and token id comes from here.
//!
//! Two spellings exist for the text rotary settings: checkpoints saved by transformers 4.57
//! (the released Qwen3-VL models) write `rope_theta` + `rope_scaling`, transformers 5.x writes
//! `rope_parameters`. Both are accepted.

use serde::Deserialize;

use crate::error::ModelError;

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

/// The largest size any config field may have (16M): far above every real model's, and small
/// enough that the product of two sizes cannot overflow.
const MAX_SIZE: usize = 1 << 24;

impl ModelConfig {
    /// Parses `config.json` text and checks that the architecture is one sift computes.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let config: Self = serde_json::from_str(json)
            .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// `[vocab_size, hidden_size]`: the token table's shape, and an untied head's.
    pub fn token_table_shape(&self) -> [usize; 2] {
        [self.text_config.vocab_size, self.text_config.hidden_size]
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
        // Sizes are divided by and multiplied together below and when tensors are shaped: zero
        // would divide by zero, and a size past any real model's could overflow.
        let sizes = [
            ("text_config.vocab_size", t.vocab_size),
            ("text_config.hidden_size", t.hidden_size),
            ("text_config.intermediate_size", t.intermediate_size),
            ("text_config.num_hidden_layers", t.num_hidden_layers),
            ("text_config.num_attention_heads", t.num_attention_heads),
            ("text_config.num_key_value_heads", t.num_key_value_heads),
            ("text_config.head_dim", t.head_dim.unwrap_or(1)),
            ("vision_config.depth", v.depth),
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.intermediate_size", v.intermediate_size),
            ("vision_config.num_heads", v.num_heads),
            ("vision_config.in_channels", v.in_channels),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.temporal_patch_size", v.temporal_patch_size),
            ("vision_config.spatial_merge_size", v.spatial_merge_size),
            ("vision_config.out_hidden_size", v.out_hidden_size),
            (
                "vision_config.num_position_embeddings",
                v.num_position_embeddings,
            ),
        ];
        for (name, size) in sizes {
            if size == 0 || size > MAX_SIZE {
                return bad(format!(
                    "config.json: {name} is {size}, outside 1..={MAX_SIZE}; the file is damaged \
                     or not a Qwen3-VL config: download it again"
                ));
            }
        }
        if let Some(&index) = v.deepstack_visual_indexes.iter().find(|&&i| i >= v.depth) {
            return bad(format!(
                "config.json: vision_config.deepstack_visual_indexes names block {index}, but \
                 the vision tower has {} (depth)",
                v.depth
            ));
        }
        if !(t.rms_norm_eps.is_finite() && t.rms_norm_eps > 0.0) {
            return bad(format!(
                "config.json: text_config.rms_norm_eps is {}, not a small positive number",
                t.rms_norm_eps
            ));
        }
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

impl ModelConfig {
    /// The tensors of the network this config describes, its token table aside: what building
    /// it creates, counted without building it.
    pub fn tensor_count(&self) -> u64 {
        let t = &self.text_config;
        let v = &self.vision_config;
        // q, k, v, o (and their biases), q_norm, k_norm, gate, up, down and two norms.
        let per_layer = 11 + if t.attention_bias { 4 } else { 0 };
        // Two layer norms, qkv, proj, fc1 and fc2, each with a weight and a bias.
        let per_block = 12;
        // A layer norm and two linear layers, each with a weight and a bias.
        let per_merger = 6;
        let text = t.num_hidden_layers as u64 * per_layer + 1;
        let mergers = 1 + v.deepstack_visual_indexes.len() as u64;
        // The patch embedding (weight and bias) and the position grid.
        let vision = 3 + v.depth as u64 * per_block + mergers * per_merger;
        text + vision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = include_str!("../../../tests/golden/models/tied-deep/config.json");

    fn with(path: &[&str], value: serde_json::Value) -> Result<ModelConfig, ModelError> {
        let mut config: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
        let (last, parents) = path.split_last().unwrap();
        let mut node = &mut config;
        for key in parents {
            node = &mut node[*key];
        }
        node[*last] = value;
        ModelConfig::from_json(&config.to_string())
    }

    #[test]
    fn zero_or_absurd_sizes_are_refused_by_name() {
        assert!(ModelConfig::from_json(GOLDEN).is_ok());
        for (path, value) in [
            (
                &["text_config", "num_attention_heads"][..],
                serde_json::json!(0),
            ),
            (
                &["text_config", "num_key_value_heads"][..],
                serde_json::json!(0),
            ),
            (&["vision_config", "num_heads"][..], serde_json::json!(0)),
            (&["vision_config", "patch_size"][..], serde_json::json!(0)),
            (
                &["text_config", "vocab_size"][..],
                serde_json::json!(1u64 << 40),
            ),
        ] {
            let err = with(path, value).unwrap_err().to_string();
            assert!(err.contains(&path.join(".")), "{err}");
        }
        let err = with(
            &["vision_config", "deepstack_visual_indexes"],
            serde_json::json!([99]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("block 99"), "{err}");
        let err = with(&["text_config", "rms_norm_eps"], serde_json::json!(0.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rms_norm_eps"), "{err}");
    }
}
