//! A model's `config.json`: parsed and validated, then its model's shapes derived from it
//! (without allocating a weight), as a load does before reading any tensor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sift_model::{Device, ModelConfig, Qwen3VlModel};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(config) = ModelConfig::from_json(&String::from_utf8_lossy(bytes)) {
        // Parameters are created lazily: only shapes are computed here.
        let _ = Qwen3VlModel::new(&config, false, &Device::flex());
    }
});
