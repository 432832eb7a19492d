//! Loading weights the ways a download lays them out, and refusing broken checkpoints with a
//! message that names the tensor (and both shapes) or the file, and says what to do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sift_model::{Device, ModelError, RerankerModel, ScoreTokens};
use sift_tests::{Case, TempDir, model_dir, read_model, write_model};

const MODEL: &str = "untied-gqa4";

fn tokens() -> ScoreTokens {
    Case::load(MODEL, "text").score_tokens()
}

fn load(dir: &Path) -> Result<RerankerModel, ModelError> {
    RerankerModel::load(dir, tokens(), &Device::flex())
}

fn score(model: &RerankerModel) -> f32 {
    let case = Case::load(MODEL, "image");
    model.score(&case.model_input(model)).unwrap().score
}

fn load_error(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("{} loaded, but it should have been refused", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn sharded_f32_weights_score_exactly_like_the_single_bf16_file() {
    let reference = score(&load(&model_dir(MODEL)).unwrap());
    let dir = TempDir::new().unwrap();
    write_model(
        dir.path(),
        &model_dir(MODEL),
        &read_model(&model_dir(MODEL)),
        3,
    );
    assert!(dir.path().join("model.safetensors.index.json").exists());
    assert_eq!(score(&load(dir.path()).unwrap()), reference);
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = TempDir::new().unwrap();
    let mut tensors = read_model(&model_dir(MODEL));
    tensors.retain(|(name, _, _)| name != "model.language_model.layers.2.mlp.up_proj.weight");
    write_model(dir.path(), &model_dir(MODEL), &tensors, 1);
    let message = load_error(dir.path());
    assert!(
        message.contains("missing tensor model.language_model.layers.2.mlp.up_proj.weight (expected shape [128, 64])"),
        "{message}"
    );
}

#[test]
fn an_extra_tensor_is_named() {
    let dir = TempDir::new().unwrap();
    let mut tensors = read_model(&model_dir(MODEL));
    tensors.push((
        "model.visual.blocks.9.attn.qkv.weight".into(),
        vec![2, 2],
        vec![0.0; 4],
    ));
    write_model(dir.path(), &model_dir(MODEL), &tensors, 1);
    let message = load_error(dir.path());
    assert!(
        message.contains("unexpected tensor model.visual.blocks.9.attn.qkv.weight (shape [2, 2])"),
        "{message}"
    );
}

#[test]
fn a_misshaped_tensor_is_named_with_both_shapes() {
    let dir = TempDir::new().unwrap();
    let mut tensors = read_model(&model_dir(MODEL));
    for (name, shape, values) in &mut tensors {
        if name == "model.visual.merger.linear_fc2.weight" {
            *shape = vec![shape[0] / 2, shape[1]];
            values.truncate(values.len() / 2);
        }
    }
    write_model(dir.path(), &model_dir(MODEL), &tensors, 1);
    let message = load_error(dir.path());
    assert!(
        message.contains(
            "tensor model.visual.merger.linear_fc2.weight has shape [32, 192], expected [64, 192]"
        ),
        "{message}"
    );
}

#[test]
fn a_truncated_file_is_named() {
    let dir = TempDir::new().unwrap();
    std::fs::copy(
        model_dir(MODEL).join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(model_dir(MODEL).join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() - 1000],
    )
    .unwrap();
    let message = load_error(dir.path());
    assert!(
        message.contains("model.safetensors") && message.contains("download it again"),
        "{message}"
    );
}

#[test]
fn a_shard_missing_from_the_index_is_named() {
    let dir = TempDir::new().unwrap();
    write_model(
        dir.path(),
        &model_dir(MODEL),
        &read_model(&model_dir(MODEL)),
        2,
    );
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let message = load_error(dir.path());
    assert!(
        message.contains("model-00002-of-00002.safetensors, which is missing"),
        "{message}"
    );
}

#[test]
fn a_directory_without_weights_says_how_to_get_them() {
    let dir = TempDir::new().unwrap();
    std::fs::copy(
        model_dir(MODEL).join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let message = load_error(dir.path());
    assert!(
        message.contains("neither model.safetensors") && message.contains("hf download"),
        "{message}"
    );
    let empty = TempDir::new().unwrap();
    let message = load_error(empty.path());
    assert!(
        message.contains("config.json") && message.contains("downloaded model directory"),
        "{message}"
    );
}

#[test]
fn a_tensor_over_the_gpu_binding_limit_is_refused_by_name_before_loading() {
    let device = Device::flex();
    let refused =
        RerankerModel::load_checkpoint(&model_dir(MODEL), tokens(), &device, Some(20_000));
    let message = refused
        .err()
        .expect("a 20 kB binding limit is refused")
        .to_string();
    println!("{message}");
    // The token table would stay on the host; the patch embedding is the largest tensor left
    // (at this tiny shape), and the fix is the 4-bit format.
    assert!(
        message.contains("patch_embed.proj.weight needs a")
            && message.contains("this GPU binds at most 20.0 kB")
            && message.contains("sift quantize"),
        "{message}"
    );
    assert!(
        RerankerModel::load_checkpoint(&model_dir(MODEL), tokens(), &device, Some(1 << 30)).is_ok()
    );
}

#[test]
fn a_token_table_over_the_gpu_binding_limit_stays_on_the_host_and_scores_the_same() {
    let device = Device::flex();
    let on_device = score(&load(&model_dir(MODEL)).unwrap());
    // The table is 2048 × 64 f32 values (524 kB); every other tensor binds within 300 kB.
    let on_host =
        RerankerModel::load_checkpoint(&model_dir(MODEL), tokens(), &device, Some(300_000))
            .expect("only the token table exceeds 300 kB");
    assert_eq!(score(&on_host), on_device);
}

#[test]
fn an_untied_head_of_the_wrong_shape_is_named() {
    let dir = TempDir::new().unwrap();
    let mut tensors = read_model(&model_dir(MODEL));
    for (name, shape, values) in &mut tensors {
        if name == "lm_head.weight" {
            *shape = vec![shape[0], shape[1] / 2];
            values.truncate(values.len() / 2);
        }
    }
    write_model(dir.path(), &model_dir(MODEL), &tensors, 1);
    let message = load_error(dir.path());
    assert!(
        message.contains("tensor lm_head.weight has shape [2048, 32], expected [2048, 64]"),
        "{message}"
    );
}

/// The golden model quantized into `work/q4` with its shards removed, and its manifest: a
/// check that passes or fails on it has not read a shard.
fn quantized_without_shards(work: &Path) -> (PathBuf, serde_json::Value) {
    let q4 = work.join("q4");
    let tokens = tokens();
    sift_quant::quantize_model(
        &model_dir(MODEL),
        &q4,
        &[tokens.yes as usize, tokens.no as usize],
    )
    .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(q4.join(sift_quant::MANIFEST)).unwrap()).unwrap();
    for entry in manifest["shards"].as_array().unwrap() {
        std::fs::remove_file(q4.join(entry["file"].as_str().unwrap())).unwrap();
    }
    (q4, manifest)
}

/// A 4-bit model is checked against its config.json before a shard is read (here there are
/// none left), so a browser never downloads a model it would refuse.
#[test]
fn a_4bit_model_whose_tables_disagree_with_its_config_is_refused_before_any_shard_is_read() {
    let work = TempDir::new().unwrap();
    let (q4, original) = quantized_without_shards(work.path());
    let manifest_path = q4.join(sift_quant::MANIFEST);
    for name in ["model.language_model.embed_tokens.weight", "lm_head.weight"] {
        let mut manifest = original.clone();
        manifest["tensors"][name]["shape"] = serde_json::json!([2048, 63]);
        std::fs::write(&manifest_path, manifest.to_string()).unwrap();
        let message = load_error(&q4);
        assert!(
            message.contains(&format!(
                "tensor {name} has shape [2048, 63], expected [2048, 64]"
            )),
            "{message}"
        );
    }
}

/// A 4-bit model's config.json that lies about its sizes and counts (the manifest updated to
/// list the lying file) is refused from the manifest's shapes in milliseconds, naming the
/// fields and the tensor, before a shard is read or anything of its sizes is built (it used to
/// abort, allocating 103 GB for a vision width of 2^24). tests/model_directory.rs has the same
/// lies told by a checkpoint's config, with their memory counted.
#[test]
fn a_4bit_model_whose_config_lies_is_refused_from_its_manifest_in_milliseconds() {
    let work = TempDir::new().unwrap();
    let (q4, mut manifest) = quantized_without_shards(work.path());
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(q4.join("config.json")).unwrap()).unwrap();
    config["vision_config"]["hidden_size"] = (1 << 24).into();
    config["text_config"]["num_hidden_layers"] = 1_000_000.into();
    let config = config.to_string();
    std::fs::write(q4.join("config.json"), &config).unwrap();
    for file in manifest["files"].as_array_mut().unwrap() {
        if file["file"] == "config.json" {
            file["bytes"] = config.len().into();
            file["sha256"] = sift_quant::hex(&Sha256::digest(config.as_bytes())).into();
        }
    }
    std::fs::write(q4.join(sift_quant::MANIFEST), manifest.to_string()).unwrap();
    let start = Instant::now();
    let message = load_error(&q4);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    for part in [
        "the 4-bit model does not match its config.json",
        "config.json's vision_config.hidden_size is 16777216, but tensor \
         model.visual.patch_embed.proj.weight has shape [48, 3, 2, 16, 16]",
        "config.json's text_config.num_hidden_layers is 1000000, but the weights hold no tensor \
         model.language_model.layers.4.*",
    ] {
        assert!(
            message.contains(part),
            "{part:?} is not named in: {message}"
        );
    }
}

#[test]
fn a_score_token_outside_the_vocabulary_is_refused() {
    let tokens = ScoreTokens {
        yes: 2048,
        no: tokens().no,
    };
    let message = RerankerModel::load(&model_dir(MODEL), tokens, &Device::flex())
        .err()
        .expect("token 2048 of 2048 is refused")
        .to_string();
    assert!(
        message.contains("token 2048, outside the model's 2048 tokens"),
        "{message}"
    );
}
