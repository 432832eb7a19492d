//! Image bytes of any format sift sniffs, decoded and preprocessed as a document's image is:
//! every failure must be an `ImageError`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sift_inputs::{ImageOptions, ProcessorConfig, load_image, preprocess_image};

fuzz_target!(|bytes: &[u8]| {
    let options = ImageOptions::default();
    if let Ok(image) = load_image(bytes, &options) {
        let _ = preprocess_image(&image, &options, &ProcessorConfig::default());
    }
});
