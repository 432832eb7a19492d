//! The worker's memory model, natively: a 4-bit model given shard by shard as bytes
//! (`Loading::start`, as the browser's worker gives it) holds, on the host, the token table
//! (kept there as f16), one shard and one tensor in flight; everything else goes to the GPU.
//! With the 8B's table (151,936 × 4,096) and the 8B's layer shapes, the host peak stays under
//! 2 GB, far from wasm32's 4 GB. On lavapipe the GPU's memory is the driver's, not counted here,
//! as a browser's GPU memory is not in the page's heap. (Its own test binary: the allocator that
//! counts is process-wide.) The 8B's 36 layers and 27 vision blocks are cut to 2 each here to
//! keep the test small; a layer's tensors pass through the host one at a time, so the peak
//! does not grow with them. Measured: 1.80 GB at the peak, 1.29 GB held once loaded.
#![cfg(feature = "wgpu")]

use sift::bench::ModelSize;
use sift::{Loading, Manifest, ModelFiles, RerankOptions};
use sift_quant::{Conversion, QuantizedWriter};

#[path = "../crates/sift-quant/tests/counting/mod.rs"]
mod counting;

/// The 8B's config with `layers` text layers and vision blocks.
fn config_8b(layers: usize) -> String {
    let mut config: serde_json::Value = serde_json::from_str(&ModelSize::B8.config_json()).unwrap();
    config["text_config"]["num_hidden_layers"] = layers.into();
    config["vision_config"]["depth"] = layers.into();
    config["vision_config"]["deepstack_visual_indexes"] = (0..layers).collect::<Vec<_>>().into();
    config.to_string()
}

#[test]
fn an_8b_shaped_model_loads_with_a_host_peak_under_2_gb() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let config = config_8b(2);
    std::fs::write(dir.join("config.json"), &config).unwrap();
    let tokenizer = std::fs::read(sift_tests::tokenizer_dir().join("tokenizer.json")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), &tokenizer).unwrap();
    let model_config = sift_model::ModelConfig::from_json(&config).unwrap();
    let tensors = sift_model::checkpoint_tensors(&model_config, &sift::Device::flex()).unwrap();
    let head_rows = sift::quantize::head_rows(&tokenizer).unwrap();
    let mut writer = QuantizedWriter::create(dir, Conversion::new(&head_rows), &tensors).unwrap();
    for (name, shape) in &tensors {
        let n: usize = shape.iter().product();
        // Values of a trained model's magnitude; their pattern does not matter here.
        writer
            .add(
                name,
                shape,
                (0..n).map(|i| ((i % 251) as f32 - 125.0) * 4e-4),
            )
            .unwrap();
    }
    writer.finish(dir).unwrap();

    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let manifest = Manifest::from_json(&read(sift::MANIFEST), dir).unwrap();
    let table = &manifest.tensors["model.language_model.embed_tokens.weight"];
    assert_eq!(table.shape, [151_936, 4096]);
    let device = sift_model::gpu_device().unwrap();
    let files = ModelFiles {
        config: read("config.json"),
        tokenizer: read("tokenizer.json"),
        preprocessor_config: None,
    };

    let (reranker, peak, held) = counting::measure(|| {
        let mut loading = Loading::start(
            manifest.clone(),
            "the 8B-shaped model",
            files,
            &device,
            RerankOptions::default(),
        )
        .unwrap();
        // As the worker does: each shard read whole from storage, given, dropped.
        for (index, shard) in manifest.shards.iter().enumerate() {
            let bytes = read(&shard.file);
            loading.add_shard(index, &bytes).unwrap();
        }
        loading.finish().unwrap()
    });
    let gb = |b: usize| b as f64 / 1e9;
    eprintln!(
        "8B-shaped model (2 layers): host peak while loading {:.2} GB, held once loaded {:.2} GB \
         (token table {:.2} GB, largest shard {:.2} GB)",
        gb(peak),
        gb(held),
        gb(151_936 * 4096 * 2),
        gb(manifest.shards.iter().map(|s| s.bytes).max().unwrap() as usize)
    );
    assert!(peak < 2_000_000_000, "host peak {peak} bytes");
    drop(reranker);
}
