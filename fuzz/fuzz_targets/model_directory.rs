//! The `model_directory` target: `sift_fuzz::model_directory` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::model_directory(bytes));
