//! `config.json` checked against the shapes the weights hold (a checkpoint's safetensors
//! headers, or a 4-bit manifest) before anything config-sized is built. Every size the network
//! takes from the config must be a dimension of a tensor that carries it, and every text layer,
//! vision block and DeepStack merger the config counts must have tensors: so a config that lies
//! (a vision width of 2^24, a million layers) is refused by field and tensor in milliseconds,
//! instead of building a network of what it claims. The exact check of every tensor follows
//! (`weights::shape_problems`), on a network the weights now bound.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::quantized::TABLE;
use crate::weights::mismatch;

/// One dimension of a tensor as `config.json` sets it: its size and the field it comes from.
struct Dim {
    size: u64,
    field: &'static str,
}

fn dim(size: usize, field: &'static str) -> Dim {
    Dim {
        size: size as u64,
        field,
    }
}

/// The tensors that carry the config's sizes, with the shape the config gives each. Layer 0 and
/// block 0 exist in every valid config (at least one of each).
fn carriers(config: &ModelConfig) -> Vec<(&'static str, Vec<Dim>)> {
    let t = &config.text_config;
    let v = &config.vision_config;
    let head_dim = config.head_dim() as u64;
    let head_dim_field = match t.head_dim {
        Some(_) => "text_config.head_dim",
        None => "text_config.hidden_size / num_attention_heads",
    };
    let hidden = || dim(t.hidden_size, "text_config.hidden_size");
    let width = || dim(v.hidden_size, "vision_config.hidden_size");
    let merge = v.spatial_merge_size as u64;
    vec![
        (
            TABLE,
            vec![dim(t.vocab_size, "text_config.vocab_size"), hidden()],
        ),
        (
            "model.language_model.layers.0.mlp.gate_proj.weight",
            vec![
                dim(t.intermediate_size, "text_config.intermediate_size"),
                hidden(),
            ],
        ),
        (
            "model.language_model.layers.0.self_attn.q_norm.weight",
            vec![Dim {
                size: head_dim,
                field: head_dim_field,
            }],
        ),
        (
            "model.language_model.layers.0.self_attn.q_proj.weight",
            vec![
                Dim {
                    size: t.num_attention_heads as u64 * head_dim,
                    field: "text_config.num_attention_heads × head_dim",
                },
                hidden(),
            ],
        ),
        (
            "model.language_model.layers.0.self_attn.k_proj.weight",
            vec![
                Dim {
                    size: t.num_key_value_heads as u64 * head_dim,
                    field: "text_config.num_key_value_heads × head_dim",
                },
                hidden(),
            ],
        ),
        (
            "model.visual.patch_embed.proj.weight",
            vec![
                width(),
                dim(v.in_channels, "vision_config.in_channels"),
                dim(v.temporal_patch_size, "vision_config.temporal_patch_size"),
                dim(v.patch_size, "vision_config.patch_size"),
                dim(v.patch_size, "vision_config.patch_size"),
            ],
        ),
        (
            "model.visual.pos_embed.weight",
            vec![
                dim(
                    v.num_position_embeddings,
                    "vision_config.num_position_embeddings",
                ),
                width(),
            ],
        ),
        (
            "model.visual.blocks.0.mlp.linear_fc1.weight",
            vec![
                dim(v.intermediate_size, "vision_config.intermediate_size"),
                width(),
            ],
        ),
        (
            "model.visual.merger.linear_fc2.weight",
            vec![
                dim(v.out_hidden_size, "vision_config.out_hidden_size"),
                Dim {
                    size: v.hidden_size as u64 * merge * merge,
                    field: "vision_config.hidden_size × spatial_merge_size²",
                },
            ],
        ),
    ]
}

/// Refuses `config` unless the tensors `found` (by checkpoint name, with their shapes) carry
/// its sizes and hold every layer, block and merger it counts; `what` names the weights
/// ("the checkpoint") and `fix` says what to do, in the message.
pub(crate) fn check_config_against(
    config: &ModelConfig,
    found: &BTreeMap<String, Vec<usize>>,
    what: &str,
    fix: &str,
) -> Result<(), ModelError> {
    let mut problems = Vec::new();
    // A field is named once, by the first tensor that contradicts it.
    let mut named = BTreeSet::new();
    for (name, dims) in carriers(config) {
        let expected: Vec<u64> = dims.iter().map(|d| d.size).collect();
        let Some(shape) = found.get(name) else {
            problems.push(format!(
                "missing tensor {name} (expected shape {expected:?})"
            ));
            continue;
        };
        if shape.len() != dims.len() {
            problems.push(format!(
                "tensor {name} has shape {shape:?}, expected {expected:?} from config.json"
            ));
            continue;
        }
        for (d, _) in dims.iter().zip(shape).filter(|(d, s)| d.size != **s as u64) {
            if named.insert(d.field) {
                problems.push(format!(
                    "config.json's {} is {}, but tensor {name} has shape {shape:?}, expected \
                     {expected:?}",
                    d.field, d.size
                ));
            }
        }
    }
    let t = &config.text_config;
    let v = &config.vision_config;
    let deepstack = v.deepstack_visual_indexes.len();
    let counts = [
        (
            format!("text_config.num_hidden_layers is {}", t.num_hidden_layers),
            t.num_hidden_layers,
            "model.language_model.layers.",
        ),
        (
            format!("vision_config.depth is {}", v.depth),
            v.depth,
            "model.visual.blocks.",
        ),
        (
            format!("vision_config.deepstack_visual_indexes lists {deepstack} blocks"),
            deepstack,
            "model.visual.deepstack_merger_list.",
        ),
    ];
    let mut counted = true;
    for (claim, count, group) in counts {
        // Each index found needs a tensor of its own, so this ends within the tensors found.
        if let Some(absent) = (0..count).find(|i| !holds_prefix(found, &format!("{group}{i}."))) {
            counted = false;
            problems.push(format!(
                "config.json's {claim}, but the weights hold no tensor {group}{absent}.*"
            ));
        }
    }
    // A network has no more parameters than the weights have tensors: its size stays within
    // what the headers (already in memory) take.
    let parameters = config.tensor_count();
    if counted && parameters > found.len() as u64 {
        problems.push(format!(
            "config.json describes a network of {parameters} tensors, but the weights hold {}",
            found.len()
        ));
    }
    mismatch(what, problems, fix)
}

/// Whether a tensor of `found` is named `prefix…`.
fn holds_prefix(found: &BTreeMap<String, Vec<usize>>, prefix: &str) -> bool {
    found
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .next()
        .is_some_and(|(name, _)| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Qwen3VlModel;
    use crate::weights::expected_shapes;
    use burn::tensor::Device;

    fn golden(model: &str) -> serde_json::Value {
        let path = format!(
            "{}/../../tests/golden/models/{model}/config.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The count that bounds the network is the network's own, for every golden model, with
    /// and without attention biases.
    #[test]
    fn parameters_are_counted_as_the_network_has_them() {
        for model in [
            "tied-deep",
            "tied-real-vocab",
            "untied-gqa4",
            "untied-one-kv",
        ] {
            for bias in [false, true] {
                let mut json = golden(model);
                json["text_config"]["attention_bias"] = bias.into();
                let config = ModelConfig::from_json(&json.to_string()).unwrap();
                let net = Qwen3VlModel::new(&config, false, &Device::flex());
                assert_eq!(
                    config.tensor_count(),
                    expected_shapes(&net).len() as u64,
                    "{model}, attention_bias {bias}"
                );
            }
        }
    }

    /// Layers whose indexes the weights hold, but not their tensors, still bound the network
    /// by the number of tensors the weights have.
    #[test]
    fn a_network_larger_than_the_weights_is_refused_by_its_count() {
        let config = ModelConfig::from_json(&golden("untied-gqa4").to_string()).unwrap();
        let net = Qwen3VlModel::new(&config, false, &Device::flex());
        let mut found = expected_shapes(&net);
        found.insert(TABLE.into(), config.token_table_shape().to_vec());
        // Layers 1.. keep one tensor each: every index is there, most tensors are not.
        found.retain(|name, _| {
            !name.starts_with("model.language_model.layers.")
                || name.starts_with("model.language_model.layers.0.")
                || name.ends_with(".input_layernorm.weight")
        });
        let message = check_config_against(&config, &found, "the weights", "")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!(
                "config.json describes a network of {} tensors, but the weights hold {}",
                config.tensor_count(),
                found.len()
            )),
            "{message}"
        );
    }

    /// Every size the config sets is carried by a tensor checked here: a golden config with one
    /// size doubled is refused by that field.
    #[test]
    fn each_size_is_named_when_the_weights_contradict_it() {
        let json = golden("untied-gqa4");
        let config = ModelConfig::from_json(&json.to_string()).unwrap();
        let net = Qwen3VlModel::new(&config, false, &Device::flex());
        let mut found = expected_shapes(&net);
        found.insert(TABLE.into(), config.token_table_shape().to_vec());
        check_config_against(&config, &found, "the weights", "").unwrap();
        for field in [
            "text_config.vocab_size",
            "text_config.hidden_size",
            "text_config.intermediate_size",
            "text_config.head_dim",
            "text_config.num_attention_heads",
            "text_config.num_key_value_heads",
            "text_config.num_hidden_layers",
            "vision_config.hidden_size",
            "vision_config.intermediate_size",
            "vision_config.patch_size",
            "vision_config.temporal_patch_size",
            "vision_config.spatial_merge_size",
            "vision_config.out_hidden_size",
            "vision_config.in_channels",
            "vision_config.num_position_embeddings",
            "vision_config.depth",
        ] {
            let (section, key) = field.split_once('.').unwrap();
            let mut lying = json.clone();
            let value = lying[section][key].as_u64().unwrap();
            // Quadrupled, so the config stays valid (heads still divide, grids stay square).
            lying[section][key] = (value * 4).into();
            if key == "head_dim" {
                let section = &mut lying["text_config"]["rope_scaling"]["mrope_section"];
                *section = serde_json::json!([8, 12, 12]);
            }
            let config = ModelConfig::from_json(&lying.to_string())
                .unwrap_or_else(|e| panic!("{field}: {e}"));
            let message = check_config_against(&config, &found, "the weights", "")
                .unwrap_err()
                .to_string();
            // The merge size is carried by the merger's width, with the vision width.
            let named = match key {
                "spatial_merge_size" => "× spatial_merge_size²",
                _ => field,
            };
            assert!(message.contains(named), "{field}: {message}");
        }
    }
}
