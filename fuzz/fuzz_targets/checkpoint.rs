//! A checkpoint's `model.safetensors` (its header, shapes, dtypes and data) loaded beside a
//! fixed golden `config.json`, as `sift rerank` loads a downloaded model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sift_model::{Device, RerankerModel, ScoreTokens};

const CONFIG: &str = include_str!("../../tests/golden/models/untied-one-kv/config.json");

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), CONFIG).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    let tokens = ScoreTokens {
        yes: 1500,
        no: 1501,
    };
    let _ = RerankerModel::load_checkpoint(dir.path(), tokens, &Device::flex(), Some(1 << 30));
});
