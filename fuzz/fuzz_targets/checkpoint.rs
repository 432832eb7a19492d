//! The `checkpoint` target: `sift_fuzz::checkpoint` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::checkpoint(bytes));
