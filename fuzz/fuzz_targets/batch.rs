//! The `batch` target: `sift_fuzz::batch` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::batch(bytes));
