//! The `model_config` target: `sift_fuzz::model_config` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::model_config(bytes));
