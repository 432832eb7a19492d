//! The `q4_model` target: `sift_fuzz::q4_model` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::q4_model(bytes));
