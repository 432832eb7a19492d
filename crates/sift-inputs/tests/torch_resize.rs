//! Parity of `resize_bicubic_antialias_torch` with torchvision 0.29.2
//! `transforms.functional.resize(uint8 TCHW, [h, w], BICUBIC, antialias=True)` (torch 2.15 CPU),
//! the frame resize of qwen-vl-utils 0.0.14 `fetch_video`. The fixtures come from
//! `tests/fixtures/make_torch_resize_fixtures.py`; see the top of that file.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sift_inputs::RgbImage;
use sift_inputs::visual::resize_bicubic_antialias_torch;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_resize")
}

fn load_png(name: &str) -> RgbImage {
    image::open(fixtures().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .to_rgb8()
}

/// Largest per-sample difference and the number of pixels with any sample different.
fn compare(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0;
    let mut pixels = 0;
    for (p, q) in a.pixels().zip(b.pixels()) {
        let d =
            p.0.iter()
                .zip(q.0)
                .map(|(x, y)| x.abs_diff(y))
                .max()
                .unwrap();
        max = max.max(d);
        pixels += usize::from(d != 0);
    }
    (max, pixels)
}

#[test]
fn every_case_matches_torchvision() {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json");
    let manifest: Value = serde_json::from_str(&text).expect("cases.json parses");
    println!(
        "reference: torch {}, torchvision {}, CPU capability {}",
        manifest["versions"]["torch"],
        manifest["versions"]["torchvision"],
        manifest["cpu_capability"]
    );
    let cases = manifest["cases"].as_array().expect("cases");
    assert!(cases.len() >= 8, "only {} cases", cases.len());
    println!(
        "{:28} {:>9} {:>9} {:>8} {:>10}",
        "source", "from", "to", "max|d|", "px differ"
    );
    let mut failures = Vec::new();
    for case in cases {
        let src = load_png(case["source"].as_str().unwrap());
        let expected = load_png(case["expected"].as_str().unwrap());
        let size = &case["size"];
        let (w, h) = (
            size[0].as_u64().unwrap() as u32,
            size[1].as_u64().unwrap() as u32,
        );
        assert_eq!(expected.dimensions(), (w, h));
        let got = resize_bicubic_antialias_torch(&src, w, h);
        let (max, pixels) = compare(&got, &expected);
        println!(
            "{:28} {:>9} {:>9} {:>8} {:>10}",
            case["source"].as_str().unwrap(),
            format!("{}x{}", src.width(), src.height()),
            format!("{w}x{h}"),
            max,
            format!("{pixels}/{}", w * h)
        );
        if max > 1 {
            failures.push(format!("{} -> {w}x{h}: max |diff| {max}", case["source"]));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
