//! A rerank request as `sift rerank` and `--batch` read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(json) = std::str::from_utf8(bytes) {
        let _ = sift::Request::from_json(json, std::path::Path::new("/nonexistent"));
    }
});
