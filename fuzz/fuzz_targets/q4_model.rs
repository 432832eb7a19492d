//! A 4-bit model as the page receives it: the manifest (`sift-q4.json`), then a shard. The
//! input is the manifest, a zero byte, then the shard; the manifest's first shard entry is
//! given the shard's true size and sha256 first, so the fuzzer reaches the shard's parsing
//! (a checksum it cannot forge would stop it earlier).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sift_quant::{Manifest, TensorAssembler};

fuzz_target!(|bytes: &[u8]| {
    let split = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (json, shard) = (&bytes[..split], bytes.get(split + 1..).unwrap_or_default());
    let Ok(mut manifest) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    if let Some(Value::Object(first)) = manifest.pointer_mut("/shards/0") {
        let digest: String = Sha256::digest(shard)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        first.insert("bytes".into(), shard.len().into());
        first.insert("sha256".into(), digest.into());
    }
    let path = std::path::Path::new("sift-q4.json");
    let Ok(manifest) = Manifest::from_json(manifest.to_string().as_bytes(), path) else {
        return;
    };
    let _ = sift_model::Requirements::of(&manifest);
    let mut assembler = TensorAssembler::new(manifest, "fuzz");
    let read = assembler.add_shard::<sift_quant::QuantError>(0, shard, |_, _, values| {
        let _ = values.to_f32();
        Ok(())
    });
    if read.is_ok() {
        let _ = assembler.finish();
    }
});
