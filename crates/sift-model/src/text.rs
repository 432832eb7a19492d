//! The Qwen3 text decoder (`Qwen3VLTextModel`): RMSNorm, q/k norms before interleaved MRoPE,
//! grouped-query causal attention, SwiGLU, and DeepStack features added after the first layers.
//! Field names follow the checkpoint (`model.language_model.*`).

use std::ops::Range;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor};

use crate::attention::{AttentionPrecision, Run, attention, equal_length_runs};
use crate::config::ModelConfig;
use crate::profile;
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

/// One layer's keys and values, `[kv_heads, len, head_dim]` each, after the key norm and the
/// rotary embedding: what later tokens attend to.
#[derive(Clone, Debug)]
pub struct LayerKeys {
    pub keys: Tensor<3>,
    pub values: Tensor<3>,
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

    /// The attention output of `x`'s tokens, and their keys and values. Each of `segments`
    /// (ranges of `x`'s rows: packed prompts) attends causally to its own tokens and to `past`
    /// (the tokens before every segment), never to another segment.
    fn forward(
        &self,
        x: Tensor<2>,
        rotary: &RotaryTables,
        past: Option<&LayerKeys>,
        segments: &[Range<usize>],
    ) -> (Tensor<2>, LayerKeys) {
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
        let own = LayerKeys {
            keys: rope::apply_rotary(k, rotary),
            values: v,
        };
        let precision = AttentionPrecision::of(&self.q_proj);
        // Segments of one length side by side form one batch. A segment's queries are the
        // last of the keys it sees: the past's, then its own.
        let attend = |run: Run| -> Tensor<3> {
            let [k, v] = [&own.keys, &own.values].map(|t| run.batch(t));
            let [k, v] = match past {
                Some(past) => [(&past.keys, k), (&past.values, v)].map(|(past, own)| {
                    let [_, past_len, _] = past.dims();
                    let past = past
                        .clone()
                        .unsqueeze::<4>()
                        .expand([run.count, kv_heads, past_len, head_dim]);
                    Tensor::cat(vec![past, own], 2)
                }),
                None => [k, v],
            };
            let device = q.device();
            let out = profile::stage("decoder attention", &device, || {
                attention(run.batch(&q), k, v, true, precision)
            });
            run.unbatch(out)
        };
        let runs = equal_length_runs(segments.iter().cloned());
        let out = Tensor::cat(runs.into_iter().map(attend).collect(), 1);
        let out = self
            .o_proj
            .forward(out.swap_dims(0, 1).reshape([len, heads * head_dim]));
        (out, own)
    }
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<2>,
        rotary: &RotaryTables,
        past: Option<&LayerKeys>,
        segments: &[Range<usize>],
    ) -> (Tensor<2>, LayerKeys) {
        let (attended, keys) = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            rotary,
            past,
            segments,
        );
        let x = x + attended;
        let h = self.post_attention_layernorm.forward(x.clone());
        let gated = silu(self.mlp.gate_proj.forward(h.clone())) * self.mlp.up_proj.forward(h);
        (x + self.mlp.down_proj.forward(gated), keys)
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
        let whole = 0..inputs_embeds.dims()[0];
        self.forward_after(inputs_embeds, visual, rotary, None, &[whole], false, trace)
            .0
    }

    /// [`forward`](Self::forward) for tokens that come after `past` (every layer's keys and
    /// values of the tokens before them; positions, visual positions and the rotary tables are
    /// the new tokens' own). `segments`: the prompts packed into the new tokens, each attending
    /// to the past and to itself alone. With `keep_keys`, also the new tokens' keys and values
    /// per layer (otherwise each layer's are dropped as it ends).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_after(
        &self,
        inputs_embeds: Tensor<2>,
        visual: Option<VisualInjection>,
        rotary: &RotaryTables,
        past: Option<&[LayerKeys]>,
        segments: &[Range<usize>],
        keep_keys: bool,
        trace: &mut Trace,
    ) -> (Tensor<2>, Vec<LayerKeys>) {
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
        let mut keys = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let (out, layer_keys) = layer.forward(x, rotary, past.map(|p| &p[i]), segments);
            x = out;
            if keep_keys {
                keys.push(layer_keys);
            }
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
        (x, keys)
    }
}
