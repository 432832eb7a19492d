//! A model directory is checked against its own weights before anything its config.json sizes
//! is built: a config that lies about a size, a count of layers or a patch is refused in
//! milliseconds, naming the field and the tensor, instead of allocating what it claims (issue
//! 28: 103 GB for a vision width of 2^24, an abort). The shards a checkpoint's index names stay
//! inside the directory, and the preprocessor's settings must agree with the model's.
//!
//! Every refusal is timed (under 5 s) and its heap peak counted (under 1 GB) by a counting
//! allocator: its own test binary, and the tests measure one at a time. The same lies told by
//! a 4-bit model's config are refused in tests/weights_loading.rs.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sift::{Device, Loading, Manifest, ModelFiles, RerankOptions, Reranker};
use sift_model::{ModelError, RerankerModel, ScoreTokens};
use sift_tests::{Case, TempDir, downloaded_model, model_dir, read_model, write_model};

#[path = "../crates/sift-quant/tests/counting/mod.rs"]
mod counting;

const MODEL: &str = "untied-gqa4";

/// Far below what any lie of the issue allocated (9 GB and more), far above what checking a
/// tiny model takes.
const HEAP_LIMIT: usize = 1 << 30;

fn tokens() -> ScoreTokens {
    Case::load(MODEL, "text").score_tokens()
}

fn golden_config() -> Value {
    serde_json::from_slice(&std::fs::read(model_dir(MODEL).join("config.json")).unwrap()).unwrap()
}

/// The golden model's weights beside its config.json as `edit` changes it.
fn checkpoint_with(edit: impl FnOnce(&mut Value)) -> TempDir {
    let dir = TempDir::new().unwrap();
    let mut config = golden_config();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        model_dir(MODEL).join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    dir
}

/// One measurement at a time: the counting allocator is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// The message of `load`, which must be refused within 5 s and without its heap peak reaching
/// 1 GB.
fn refused_quickly<T, E: std::fmt::Display>(
    what: &str,
    load: impl FnOnce() -> Result<T, E>,
) -> String {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let start = Instant::now();
    let (result, peak, _) = counting::measure(load);
    let elapsed = start.elapsed();
    let message = match result {
        Ok(_) => panic!("{what}: loaded, but it should have been refused"),
        Err(e) => e.to_string(),
    };
    eprintln!(
        "{what}: refused in {:.1} ms, heap peak {:.1} MB:\n{message}\n",
        elapsed.as_secs_f64() * 1e3,
        peak as f64 / 1e6
    );
    assert!(elapsed < Duration::from_secs(5), "{what}: took {elapsed:?}");
    assert!(peak < HEAP_LIMIT, "{what}: heap peak {peak} bytes");
    message
}

fn load(dir: &Path) -> Result<RerankerModel, ModelError> {
    RerankerModel::load(dir, tokens(), &Device::flex())
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{part:?} is not named in: {message}"
        );
    }
}

/// The golden checkpoint with `field` ("section.key") of its config.json set to `value`
/// must be refused quickly, its message naming each of `names`.
fn lie_is_refused(field: &str, value: Value, names: &[&str]) {
    let (section, key) = field.split_once('.').unwrap();
    let dir = checkpoint_with(|c| c[section][key] = value);
    assert_names(&refused_quickly(field, || load(dir.path())), names);
}

#[test]
fn a_vision_width_of_2_pow_24_is_refused_by_field_and_tensor() {
    lie_is_refused(
        "vision_config.hidden_size",
        json!(1 << 24),
        &[
            "vision_config.hidden_size is 16777216",
            "model.visual.patch_embed.proj.weight has shape [48, 3, 2, 16, 16]",
        ],
    );
}

#[test]
fn a_million_text_layers_are_refused_by_what_the_weights_hold() {
    lie_is_refused(
        "text_config.num_hidden_layers",
        json!(1_000_000),
        &[
            "text_config.num_hidden_layers is 1000000",
            "no tensor model.language_model.layers.4.",
        ],
    );
}

#[test]
fn a_patch_of_4096_pixels_is_refused_by_field_and_tensor() {
    lie_is_refused(
        "vision_config.patch_size",
        json!(4096),
        &[
            "vision_config.patch_size is 4096",
            "model.visual.patch_embed.proj.weight has shape [48, 3, 2, 16, 16]",
        ],
    );
}

#[test]
fn a_million_deepstack_indexes_are_refused_by_what_the_weights_hold() {
    lie_is_refused(
        "vision_config.deepstack_visual_indexes",
        json!(vec![1; 1_000_000]),
        &[
            "vision_config.deepstack_visual_indexes lists 1000000 blocks",
            "no tensor model.visual.deepstack_merger_list.2.",
        ],
    );
}

#[test]
fn a_vision_depth_beyond_the_weights_is_refused() {
    lie_is_refused(
        "vision_config.depth",
        json!(1 << 24),
        &[
            "vision_config.depth is 16777216",
            "no tensor model.visual.blocks.4.",
        ],
    );
}

#[test]
fn a_text_size_the_token_table_does_not_have_is_refused_by_field_and_tensor() {
    lie_is_refused(
        "text_config.vocab_size",
        json!(1 << 24),
        &[
            "text_config.vocab_size is 16777216",
            "model.language_model.embed_tokens.weight has shape [2048, 64]",
        ],
    );
}

/// The golden model as a sharded checkpoint whose index names `file` for every tensor of its
/// second shard.
fn sharded_naming(file: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    write_model(
        dir.path(),
        &model_dir(MODEL),
        &read_model(&model_dir(MODEL)),
        2,
    );
    let path = dir.path().join("model.safetensors.index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for shard in index["weight_map"].as_object_mut().unwrap().values_mut() {
        if shard == "model-00002-of-00002.safetensors" {
            *shard = json!(file);
        }
    }
    std::fs::write(&path, index.to_string()).unwrap();
    dir
}

#[test]
fn an_index_naming_a_file_outside_the_directory_is_refused() {
    for file in ["/etc/passwd", "../model-00002-of-00002.safetensors"] {
        let dir = sharded_naming(file);
        let message = refused_quickly(file, || load(dir.path()));
        assert_names(
            &message,
            &[
                "model.safetensors.index.json",
                &format!("{file:?}"),
                "outside the model directory",
            ],
        );
    }
}

#[cfg(unix)]
#[test]
fn an_index_naming_a_link_that_leads_outside_the_directory_is_refused() {
    let outside = TempDir::new().unwrap();
    let dir = sharded_naming("escape.safetensors");
    std::fs::rename(
        dir.path().join("model-00002-of-00002.safetensors"),
        outside.path().join("shard.safetensors"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("shard.safetensors"),
        dir.path().join("escape.safetensors"),
    )
    .unwrap();
    let message = refused_quickly("a link outside", || load(dir.path()));
    assert_names(
        &message,
        &["\"escape.safetensors\"", "outside the model directory"],
    );
    // Through a linked folder, too.
    let dir = sharded_naming("linked/shard.safetensors");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
    let message = refused_quickly("a linked folder outside", || load(dir.path()));
    assert_names(
        &message,
        &[
            "\"linked/shard.safetensors\"",
            "outside the model directory",
        ],
    );
}

/// The Hugging Face cache's layout: a snapshot's files are links into the repository's
/// `blobs/`, which is outside the snapshot but still the model's own.
#[cfg(unix)]
#[test]
fn a_sharded_model_in_the_hugging_face_cache_loads_through_its_links() {
    let source = TempDir::new().unwrap();
    write_model(
        source.path(),
        &model_dir(MODEL),
        &read_model(&model_dir(MODEL)),
        2,
    );
    let repo = TempDir::new().unwrap();
    let snapshot = repo.path().join("snapshots/0123abcd");
    let blobs = repo.path().join("blobs");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(&blobs).unwrap();
    for entry in std::fs::read_dir(source.path()).unwrap() {
        let name = entry.unwrap().file_name();
        let blob = blobs.join(format!("blob-{}", name.to_string_lossy()));
        std::fs::copy(source.path().join(&name), &blob).unwrap();
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(blob.file_name().unwrap()),
            snapshot.join(&name),
        )
        .unwrap();
    }
    load(&snapshot).expect("a cache snapshot's links lead into its repository's blobs");
}

/// `preprocessor_config.json` of `settings` beside the golden real-vocabulary model.
fn model_with_processor(settings: Value) -> TempDir {
    let dir = downloaded_model();
    let mut processor = json!({
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
    });
    for (key, value) in settings.as_object().unwrap() {
        processor[key] = value.clone();
    }
    std::fs::write(
        dir.path().join("preprocessor_config.json"),
        processor.to_string(),
    )
    .unwrap();
    dir
}

#[test]
fn a_preprocessor_config_that_disagrees_with_the_model_is_refused_naming_both() {
    for (setting, value, field, model_value) in [
        ("patch_size", 14, "vision_config.patch_size", 16),
        (
            "temporal_patch_size",
            1,
            "vision_config.temporal_patch_size",
            2,
        ),
        ("merge_size", 3, "vision_config.spatial_merge_size", 2),
    ] {
        let dir = model_with_processor(json!({ setting: value }));
        let message = refused_quickly(setting, || {
            Reranker::load(dir.path(), RerankOptions::default())
        });
        assert_names(
            &message,
            &[
                &format!("preprocessor_config.json has {setting} {value}"),
                &format!("config.json has {field} {model_value}"),
            ],
        );
    }
    // Without a preprocessor_config.json, its defaults (patch_size 16) are compared.
    let dir = downloaded_model();
    let config_path = dir.path().join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["vision_config"]["patch_size"] = json!(14);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let message = refused_quickly("no preprocessor", || {
        Reranker::load(dir.path(), RerankOptions::default())
    });
    assert_names(
        &message,
        &[
            "preprocessor_config.json is absent, so the reference's defaults apply; the default \
             has patch_size 16",
            "config.json has vision_config.patch_size 14",
        ],
    );
    let agreeing = model_with_processor(json!({}));
    Reranker::load(agreeing.path(), RerankOptions::default())
        .expect("a preprocessor_config.json that agrees is accepted");
}

#[test]
fn a_preprocessor_config_given_in_parts_that_disagrees_is_refused_naming_both() {
    let source = model_with_processor(json!({"patch_size": 14}));
    let work = TempDir::new().unwrap();
    let q4 = work.path().join("q4");
    sift::quantize(source.path(), &q4).unwrap();
    let read = |name: &str| std::fs::read(q4.join(name)).unwrap();
    let manifest = Manifest::from_json(&read(sift::MANIFEST), Path::new("test")).unwrap();
    assert_eq!(
        ModelFiles::names(&manifest),
        ["config.json", "tokenizer.json", "preprocessor_config.json"]
    );
    let files = ModelFiles {
        config: read("config.json"),
        tokenizer: read("tokenizer.json"),
        preprocessor_config: Some(read("preprocessor_config.json")),
    };
    let message = refused_quickly("a disagreeing preprocessor in parts", || {
        Loading::start(
            manifest,
            "test",
            files,
            &Device::flex(),
            RerankOptions::default(),
        )
    });
    assert_names(
        &message,
        &[
            "preprocessor_config.json has patch_size 14",
            "config.json has vision_config.patch_size 16",
        ],
    );
}

#[test]
fn a_config_alone_is_planned_only_within_the_tensor_bound() {
    // The page plans a 4-bit model from config.json before any weight exists, so there are no
    // headers to check the config against: the count of tensors it describes is bounded.
    let plan = |layers: u64| {
        let mut config = golden_config();
        config["text_config"]["num_hidden_layers"] = json!(layers);
        let bytes = config.to_string().into_bytes();
        move || sift::quantize::planned_manifest(&bytes, [0, 1], &Device::flex())
    };
    let message = refused_quickly("a planned config of 2^24 layers", plan(1 << 24));
    assert_names(&message, &["16777216 text layers", "65536"]);
    // The golden config itself is planned.
    plan(2)().unwrap();
}
