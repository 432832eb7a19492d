//! The `video_container` target: `sift_fuzz::video_container` (fuzz/src/lib.rs says what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sift_fuzz::video_container(bytes));
