//! The network as the checkpoint names it ([`Qwen3VlModel`]: vision tower and text decoder),
//! the tensors a checkpoint of it holds, and what a loader hands over to make a reranker of it
//! ([`ModelParts`]).

use burn::module::Module;
use burn::tensor::Device;

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::host_table::HostTable;
use crate::projection::Projection;
use crate::text::TextModel;
use crate::vision::VisionModel;
use crate::weights;

/// Most tensors a checkpoint planned from a config alone may hold: far above the 8B's (about
/// 800), far below what a damaged config can claim (a million layers is eleven million).
pub const MAX_CHECKPOINT_TENSORS: u64 = 1 << 16;

/// The tensors, by checkpoint name with their shapes, that a Hugging Face checkpoint of
/// `config` holds: what a converter or a synthetic model has to write. Planned from the config
/// alone (no weights to check it against), so a config counting more than
/// [`MAX_CHECKPOINT_TENSORS`] tensors is refused before its network is built.
pub fn checkpoint_tensors(
    config: &ModelConfig,
    device: &Device,
) -> Result<Vec<(String, Vec<usize>)>, ModelError> {
    let count = config.tensor_count();
    if count > MAX_CHECKPOINT_TENSORS {
        let (t, v) = (&config.text_config, &config.vision_config);
        return Err(ModelError::Config(format!(
            "config.json describes a network of {count} tensors ({} text layers, a vision depth              of {}, {} DeepStack indexes), more than any Qwen3-VL reranker has (at most              {MAX_CHECKPOINT_TENSORS} are planned); the config is damaged or belongs to another              model: use the model's own config.json",
            t.num_hidden_layers,
            v.depth,
            v.deepstack_visual_indexes.len()
        )));
    }
    let net = Qwen3VlModel::new(config, true, device);
    let mut tensors: Vec<_> = weights::expected_shapes(&net).into_iter().collect();
    if !config.tied_embeddings() {
        let t = &config.text_config;
        tensors.push(("lm_head.weight".into(), vec![t.vocab_size, t.hidden_size]));
        tensors.sort();
    }
    Ok(tensors)
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
    pub(crate) fn projections_mut(&mut self) -> Vec<&mut Projection> {
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

/// A loaded model before it is a reranker: the network with its weights, the token table
/// where it stays on the host, and the head's rows of the score's two tokens.
pub(crate) struct ModelParts {
    pub config: ModelConfig,
    pub net: Qwen3VlModel,
    pub host_table: Option<HostTable>,
    /// The head's rows of the score's two tokens, `"yes"` then `"no"`, in f32.
    pub score_rows: [Vec<f32>; 2],
    pub device: Device,
}
