//! The `image` target: `sift_fuzz::image` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::image(bytes));
