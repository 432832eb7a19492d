//! Parity of the image path with the Python reference (qwen-vl-utils 0.0.14 `fetch_image` +
//! transformers 4.57.3 `Qwen2VLImageProcessorFast`, do_resize=False). The fixtures come from
//! `tests/fixtures/make_image_fixtures.py`; see the top of that file.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sift_inputs::visual::resize_bicubic_pil;
use sift_inputs::{
    ImageOptions, ProcessorConfig, RgbImage, load_image, load_image_path, patchify,
    preprocess_image, resize_for_model,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("pixel_values file")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn max_abs_u8(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn max_abs_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn size(v: &Value) -> (u32, u32) {
    (v[0].as_u64().unwrap() as u32, v[1].as_u64().unwrap() as u32)
}

#[test]
fn every_fixture_matches_the_reference() {
    let m = manifest();
    let opts = ImageOptions::default();
    let proc = ProcessorConfig::default();
    assert_eq!(m["min_pixels"], opts.min_pixels);
    assert_eq!(m["max_pixels"], opts.max_pixels);
    let images = m["images"].as_object().unwrap();
    assert!(images.len() >= 30, "only {} fixtures", images.len());
    let mut failures = Vec::new();
    println!(
        "{:24} {:>5} {:>8} {:>8} {:>12}",
        "image", "mode", "decoded", "resized", "pv max|d|"
    );
    for (name, r) in images {
        let img = load_image_path(&fixtures().join("images").join(name), &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            img.dimensions(),
            size(&r["decoded_size"]),
            "{name}: decoded size"
        );
        let decoded_exact = sha256_hex(img.as_raw()) == r["decoded_sha256"].as_str().unwrap();

        let resized = resize_for_model(&img, &opts, &proc).unwrap();
        assert_eq!(
            resized.dimensions(),
            size(&r["resized_size"]),
            "{name}: resized size"
        );
        let resized_exact = sha256_hex(resized.as_raw()) == r["resized_sha256"].as_str().unwrap();
        // Largest per-sample difference, where the reference image is stored (else 0 or unknown).
        let resized_diff = match r.get("resized_file") {
            Some(file) => {
                let reference =
                    load_image_path(&fixtures().join(file.as_str().unwrap()), &opts).unwrap();
                assert_eq!(
                    sha256_hex(reference.as_raw()),
                    r["resized_sha256"].as_str().unwrap()
                );
                Some(max_abs_u8(&resized, &reference))
            }
            None => resized_exact.then_some(0),
        };

        let v = preprocess_image(&img, &opts, &proc).unwrap();
        let grid: Vec<u64> = v.grid_thw.iter().map(|&g| g as u64).collect();
        assert_eq!(serde_json::json!(grid), r["grid_thw"], "{name}: grid_thw");
        let shape = serde_json::json!([v.num_patches(), v.patch_dim]);
        assert_eq!(shape, r["pixel_values_shape"], "{name}: pixel_values shape");
        assert_eq!(v.pixel_values.len(), v.num_patches() * v.patch_dim);
        let pv_exact =
            sha256_hex(&f32_bytes(&v.pixel_values)) == r["pixel_values_sha256"].as_str().unwrap();
        // One function maps each sample to its float, so the float difference is the
        // resized-image difference / 127.5; measured directly where the floats are stored.
        let mut pv_diff = resized_diff.map(|d| f32::from(d) / 127.5);
        if let Some(file) = r.get("pixel_values_file") {
            let want = read_f32(&fixtures().join(file.as_str().unwrap()));
            pv_diff = Some(max_abs_f32(&v.pixel_values, &want));
        }
        let show = |exact: bool| if exact { "exact" } else { "DIFFERS" };
        println!(
            "{name:24} {:>5} {:>8} {:>8} {:>12}",
            r["pil_mode"].as_str().unwrap(),
            show(decoded_exact),
            show(resized_exact),
            pv_diff.map_or("unknown".into(), |d| format!("{d:.3e}")),
        );
        if !(decoded_exact && resized_exact && pv_exact) {
            failures.push(format!(
                "{name}: not bit-exact (decoded {decoded_exact}, resized {resized_exact} max |d| {resized_diff:?}, \
                 pixel_values {pv_exact} max |d| {pv_diff:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// PIL BICUBIC on a noise image at assorted sizes, including some where running the vertical pass
/// first (as Pillow 13 does for tall downscales) gives another result than Pillow 12.0.0's
/// horizontal-first order.
#[test]
fn resize_matches_pil_and_its_pass_order() {
    let m = manifest();
    let cases = &m["resize_cases"];
    let probe = load_image_path(
        &fixtures()
            .join("images")
            .join(cases["image"].as_str().unwrap()),
        &ImageOptions::default(),
    )
    .unwrap();
    let (mut n, mut order_sensitive) = (0, 0);
    for case in cases["cases"].as_array().unwrap() {
        let (w, h) = size(&case["size"]);
        let out = resize_bicubic_pil(&probe, w, h);
        assert_eq!(out.dimensions(), (w, h));
        let got = sha256_hex(out.as_raw());
        if let Some(vertical_first) = case.get("vertical_first_sha256") {
            assert_ne!(
                got,
                vertical_first.as_str().unwrap(),
                "61x47 -> {w}x{h}: vertical pass ran first"
            );
            order_sensitive += 1;
        }
        assert_eq!(got, case["sha256"].as_str().unwrap(), "61x47 -> {w}x{h}");
        n += 1;
    }
    assert!(n >= 10);
    assert!(
        order_sensitive >= 2,
        "only {order_sensitive} cases tell the pass orders apart"
    );
}

/// Normalise + patchify alone, from the reference's own resized image, on stored pixel_values.
#[test]
fn patchify_equals_the_reference_processor() {
    let m = manifest();
    let opts = ImageOptions::default();
    let mut checked = 0;
    for (name, r) in m["images"].as_object().unwrap() {
        let Some(file) = r.get("pixel_values_file") else {
            continue;
        };
        let resized = load_image_path(
            &fixtures().join("resized").join(format!("{name}.png")),
            &opts,
        )
        .unwrap();
        let v = patchify(&[&resized, &resized], &ProcessorConfig::default()).unwrap();
        let want = read_f32(&fixtures().join(file.as_str().unwrap()));
        assert_eq!(v.pixel_values, want, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 3);

    // A mean/std other than 0.5 (OpenAI CLIP, the class default), read from JSON like the
    // model's preprocessor_config.json.
    let clip = &m["clip_normalisation"];
    let proc = ProcessorConfig::from_json_str(
        &serde_json::json!({
            "image_mean": clip["image_mean"],
            "image_std": clip["image_std"],
            "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
            "rescale_factor": 0.00392156862745098, "do_rescale": true, "do_normalize": true,
            "image_processor_type": "Qwen2VLImageProcessor"
        })
        .to_string(),
    )
    .unwrap();
    let name = clip["image"].as_str().unwrap();
    let resized = load_image_path(
        &fixtures().join("resized").join(format!("{name}.png")),
        &opts,
    )
    .unwrap();
    let v = patchify(&[&resized, &resized], &proc).unwrap();
    let want = read_f32(&fixtures().join(clip["pixel_values_file"].as_str().unwrap()));
    println!(
        "CLIP mean/std: max |diff| {:e}",
        max_abs_f32(&v.pixel_values, &want)
    );
    assert_eq!(v.pixel_values, want);
}

/// Bytes and path entry points agree, and EXIF orientation is not applied.
#[test]
fn bytes_and_path_agree_and_exif_is_ignored() {
    let path = fixtures().join("images/exif_rotate.jpg");
    let opts = ImageOptions::default();
    let a = load_image(&std::fs::read(&path).unwrap(), &opts).unwrap();
    let b = load_image_path(&path, &opts).unwrap();
    assert_eq!(a, b);
    // Stored 200x133 with orientation 6 ("rotate 90"): the reference keeps 200x133.
    assert_eq!(a.dimensions(), (200, 133));
}
