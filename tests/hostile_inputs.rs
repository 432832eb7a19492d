//! Issue 28 through the library: one request whose documents are the inputs that once cost
//! every document of a request (or the machine's memory). Each hostile document gets its own
//! clear error, fast, and the ordinary documents beside them are still scored. The hostile
//! files are generated here; `crates/sift-inputs/tests/hostile_inputs.rs` tests each one
//! alone, with its memory.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use sift::{Content, DocError, Request, RerankOptions, Reranker};
use sift_tests::{TempDir, downloaded_model};

/// A `width`x`height` all-black 8-bit grey PNG, or (for a header-only bomb) just its header,
/// which is all a limit checked from the header needs.
fn png(width: u32, height: u32, body: bool) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut all = kind.to_vec();
        all.extend_from_slice(data);
        out.extend_from_slice(&all);
        out.extend_from_slice(&crc32fast::hash(&all).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    if body {
        let raw = vec![0u8; (width as usize + 1) * height as usize];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&raw).unwrap();
        let z = z.finish().unwrap();
        chunk(b"IDAT", &z);
    } else {
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    }
    chunk(b"IEND", &[]);
    out
}

fn message(result: &Result<f32, DocError>) -> String {
    match result {
        Ok(score) => panic!("expected an error, got the score {score}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_documents_fail_alone_and_fast_while_the_others_are_scored() {
    let model = downloaded_model();
    let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name);

    // A 13000x13000 PNG: refused from its header (the body is not needed for that).
    std::fs::write(path("13000.png"), png(13_000, 13_000, false)).unwrap();
    std::fs::write(path("small.png"), png(64, 64, true)).unwrap();
    #[cfg(unix)]
    {
        let status = std::process::Command::new("mkfifo")
            .arg(path("pipe.png"))
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }
    // A frame list of two good frames with max_frames 0.
    let frames = r#"{"frames": ["small.png", "small.png"], "max_frames": 0}"#;
    let special = "<|im_end|>".repeat(60_000);
    let mut documents = vec![
        r#"{"text": "A painting in shades of red."}"#.to_string(),
        r#"{"image": "13000.png"}"#.to_string(),
        format!(r#"{{"video": {frames}}}"#),
        format!(r#"{{"text": "{special}"}}"#),
        r#"{"image": "small.png"}"#.to_string(),
    ];
    // A video file with max_frames 2^64 - 1: no cap, so scored like any other.
    #[cfg(feature = "video")]
    let clip = sift_tests::golden_dir().join("video/clips/h264.mp4");
    #[cfg(feature = "video")]
    documents.push(format!(
        r#"{{"video": {{"path": "{}", "max_frames": {}}}}}"#,
        clip.display(),
        u64::MAX
    ));
    #[cfg(unix)]
    documents.extend([
        r#"{"image": "/dev/zero"}"#.to_string(),
        r#"{"image": "pipe.png"}"#.to_string(),
    ]);
    let json = format!(
        r#"{{"query": {{"text": "a red painting"}}, "documents": [{}]}}"#,
        documents.join(", ")
    );
    let request = Request::from_json(&json, dir.path()).unwrap();

    let start = Instant::now();
    let scores = reranker.score(&request);
    let took = start.elapsed();
    println!("{} documents in {took:?}", scores.len());
    for (i, s) in scores.iter().enumerate() {
        println!("document {i}: {s:?}");
    }
    assert!(took < Duration::from_secs(30), "{took:?}");

    assert!(scores[0].as_ref().unwrap().is_finite());
    assert!(scores[4].as_ref().unwrap().is_finite());
    let m = message(&scores[1]);
    assert!(m.contains("13000x13000") && m.contains("50000000"), "{m}");
    let m = message(&scores[2]);
    assert!(m.contains("max_frames is 0"), "{m}");
    let m = message(&scores[3]);
    assert!(
        m.contains("special tokens") && m.contains("--max-length"),
        "{m}"
    );
    // Document 5 is the video where the build reads videos.
    #[cfg(feature = "video")]
    assert!(scores[5].as_ref().unwrap().is_finite(), "{:?}", scores[5]);
    let next = if cfg!(feature = "video") { 6 } else { 5 };
    #[cfg(unix)]
    {
        let m = message(&scores[next]);
        assert!(m.contains("/dev/zero") && m.contains("regular file"), "{m}");
        let m = message(&scores[next + 1]);
        assert!(m.contains("pipe.png") && m.contains("FIFO"), "{m}");
    }
}

/// Each hostile document alone answers within 5 s (what the request above spends is mostly
/// the two good documents' forward passes).
#[test]
fn each_hostile_document_answers_within_five_seconds() {
    let model = downloaded_model();
    let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
    let dir = TempDir::new().unwrap();
    let big = dir.path().join("13000.png");
    std::fs::File::create(&big)
        .unwrap()
        .write_all(&png(13_000, 13_000, false))
        .unwrap();
    let mut cases = vec![
        Content::image(sift::ImageSource::Path(big)),
        Content::text("<|im_end|>".repeat(60_000)),
    ];
    if Path::new("/dev/zero").exists() {
        cases.push(Content::image(sift::ImageSource::Path("/dev/zero".into())));
    }
    for document in cases {
        let request = Request {
            query: Content::text("a red painting"),
            documents: vec![document],
            ..Request::default()
        };
        let start = Instant::now();
        let scores = reranker.score(&request);
        let took = start.elapsed();
        assert!(scores[0].is_err(), "{scores:?}");
        assert!(took < Duration::from_secs(5), "{took:?}: {scores:?}");
    }
}
