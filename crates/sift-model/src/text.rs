//! The Qwen3 text decoder (`Qwen3VLTextModel`): RMSNorm, q/k norms before interleaved MRoPE,
//! grouped-query causal attention, SwiGLU, and DeepStack features added after the first layers.
//! Field names follow the checkpoint (`model.language_model.*`).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor};

use crate::attention::attention;
use crate::config::ModelConfig;
use crate::projection::Projection;
use crate::rope::{self, RotaryTables};
use crate::trace::Trace;

#[derive(Module, Debug)]
pub struct TextAttention {
    pub q_proj: Projection,
    pub k_proj: Projection,
    pub v_proj: Projection,
    pub o_proj: Projection,
    pub q_norm: RmsNorm,
    pub k_norm: RmsNorm,
    #[module(skip)]
    num_heads: usize,
    #[module(skip)]
    num_kv_heads: usize,
    #[module(skip)]
    head_dim: usize,
}

#[derive(Module, Debug)]
pub struct TextMlp {
    pub gate_proj: Projection,
    pub up_proj: Projection,
    pub down_proj: Projection,
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub self_attn: TextAttention,
    pub mlp: TextMlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct TextModel {
    /// The token table on the device; `None` where the host keeps it (4-bit models).
    pub embed_tokens: Option<Embedding>,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
}

/// Visual features to place into the decoder's input: `embeds` rows replace the embeddings at
/// `positions` (sequence indices of the image and video pad tokens, ascending), and DeepStack
/// feature set `l` is added at the same positions after decoder layer `l`.
pub struct VisualInjection {
    pub positions: Tensor<1, Int>,
    pub embeds: Tensor<2>,
    pub deepstack: Vec<Tensor<2>>,
}

impl TextAttention {
    /// Heads-first view `[heads, len, head_dim]` of a projection's output `[len, heads·head_dim]`.
    fn split_heads(x: Tensor<2>, heads: usize, head_dim: usize) -> Tensor<3> {
        let [len, _] = x.dims();
        x.reshape([len, heads, head_dim]).swap_dims(0, 1)
    }

    fn forward(&self, x: Tensor<2>, rotary: &RotaryTables) -> Tensor<2> {
        let [len, _] = x.dims();
        let (heads, kv_heads, head_dim) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self.q_norm.forward(Self::split_heads(
            self.q_proj.forward(x.clone()),
            heads,
            head_dim,
        ));
        let k = self.k_norm.forward(Self::split_heads(
            self.k_proj.forward(x.clone()),
            kv_heads,
            head_dim,
        ));
        let v = Self::split_heads(self.v_proj.forward(x), kv_heads, head_dim);
        let q = rope::apply_rotary(q, rotary);
        let k = rope::apply_rotary(k, rotary);
        // Grouped-query attention: KV head g serves query heads g·rep .. (g+1)·rep.
        let rep = heads / kv_heads;
        let repeat = |t: Tensor<3>| {
            t.unsqueeze_dim::<4>(1)
                .expand([kv_heads, rep, len, head_dim])
                .reshape([heads, len, head_dim])
        };
        let out = attention(q, repeat(k), repeat(v), true);
        self.o_proj
            .forward(out.swap_dims(0, 1).reshape([len, heads * head_dim]))
    }
}

impl DecoderLayer {
    fn forward(&self, x: Tensor<2>, rotary: &RotaryTables) -> Tensor<2> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), rotary);
        let h = self.post_attention_layernorm.forward(x.clone());
        let gated = silu(self.mlp.gate_proj.forward(h.clone())) * self.mlp.up_proj.forward(h);
        x + self.mlp.down_proj.forward(gated)
    }
}

impl TextModel {
    /// `table_on_device`: whether the token table is a parameter of the model.
    pub fn new(config: &ModelConfig, table_on_device: bool, device: &Device) -> Self {
        let t = &config.text_config;
        let head_dim = config.head_dim();
        let eps = t.rms_norm_eps;
        let linear = |d_in, d_out, bias| Projection::new(d_in, d_out, bias, device);
        let rms = |d| RmsNormConfig::new(d).with_epsilon(eps).init(device);
        let layers = (0..t.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: TextAttention {
                    q_proj: linear(
                        t.hidden_size,
                        t.num_attention_heads * head_dim,
                        t.attention_bias,
                    ),
                    k_proj: linear(
                        t.hidden_size,
                        t.num_key_value_heads * head_dim,
                        t.attention_bias,
                    ),
                    v_proj: linear(
                        t.hidden_size,
                        t.num_key_value_heads * head_dim,
                        t.attention_bias,
                    ),
                    o_proj: linear(
                        t.num_attention_heads * head_dim,
                        t.hidden_size,
                        t.attention_bias,
                    ),
                    q_norm: rms(head_dim),
                    k_norm: rms(head_dim),
                    num_heads: t.num_attention_heads,
                    num_kv_heads: t.num_key_value_heads,
                    head_dim,
                },
                mlp: TextMlp {
                    gate_proj: linear(t.hidden_size, t.intermediate_size, false),
                    up_proj: linear(t.hidden_size, t.intermediate_size, false),
                    down_proj: linear(t.intermediate_size, t.hidden_size, false),
                },
                input_layernorm: rms(t.hidden_size),
                post_attention_layernorm: rms(t.hidden_size),
            })
            .collect();
        Self {
            embed_tokens: table_on_device
                .then(|| EmbeddingConfig::new(t.vocab_size, t.hidden_size).init(device)),
            layers,
            norm: rms(t.hidden_size),
        }
    }

    /// The embeddings of `input_ids`, `[len, hidden]`, from the table on the device.
    ///
    /// # Panics
    /// If the model was built without its table (`table_on_device` false).
    pub fn embed(&self, input_ids: Tensor<1, Int>) -> Tensor<2> {
        let table = self
            .embed_tokens
            .as_ref()
            .expect("the token table is on the host");
        table.weight.val().select(0, input_ids)
    }

    /// Hidden states after the final norm, `[len, hidden]`, from the token embeddings.
    pub fn forward(
        &self,
        inputs_embeds: Tensor<2>,
        visual: Option<VisualInjection>,
        rotary: &RotaryTables,
        trace: &mut Trace,
    ) -> Tensor<2> {
        let mut x = inputs_embeds;
        if let Some(v) = &visual {
            x = x.select_assign(
                0,
                v.positions.clone(),
                v.embeds.clone(),
                IndexingUpdateOp::Assign,
            );
        }
        trace.record(|| "text.inputs_embeds".into(), &x);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, rotary);
            if let Some(v) = &visual
                && let Some(feature) = v.deepstack.get(i)
            {
                x = x.select_assign(
                    0,
                    v.positions.clone(),
                    feature.clone(),
                    IndexingUpdateOp::Add,
                );
            }
            trace.record(|| format!("text.layers.{i}"), &x);
        }
        let x = self.norm.forward(x);
        trace.record(|| "text.norm".into(), &x);
        x
    }
}
