//! The `request_json` target: `sift_fuzz::request_json` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::request_json(bytes));
