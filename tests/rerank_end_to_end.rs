//! From files to scores, against the reference reranker: the real tokenizer's ids, the prompt,
//! truncation, image preprocessing and the score, on the `tied-real-vocab` golden model.

use sift::{Content, DocError, ImageSource, Request, RerankOptions, Reranker};
use sift_inputs::prompt::PromptTokenizer;
use sift_tests::{RERANK_CASES, RerankCase, downloaded_model, golden_dir, tokenizer_dir};

#[derive(serde::Deserialize)]
struct TokenCase {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn token_ids_equal_the_reference_tokenizer_on_multilingual_text() {
    let tokenizer = PromptTokenizer::from_file(&tokenizer_dir().join("tokenizer.json")).unwrap();
    let cases: Vec<TokenCase> =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("tokens.json")).unwrap())
            .unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        assert_eq!(
            tokenizer.encode(&case.text).unwrap(),
            case.ids,
            "{:?}",
            case.text
        );
    }
    assert_eq!((tokenizer.yes_id, tokenizer.no_id), (9693, 2152));
}

#[test]
fn requests_from_files_score_like_the_reference() {
    let model = downloaded_model();
    let mut failures = Vec::new();
    let mut worst = 0f64;
    for name in RERANK_CASES {
        let case = RerankCase::load(name);
        let options = RerankOptions {
            max_length: case.max_length,
            ..RerankOptions::default()
        };
        let reranker = Reranker::load(model.path(), options).unwrap();
        let text = std::fs::read_to_string(case.request_path()).unwrap();
        let request = Request::from_json(&text, &case.dir).unwrap();
        let scores = reranker.score(&request);
        for (i, (expected, score)) in case.documents.iter().zip(&scores).enumerate() {
            let input = reranker.model_input(&request, i).unwrap();
            if input.input_ids != expected.input_ids {
                failures.push(format!(
                    "{name} document {i}: token ids differ from the reference"
                ));
            }
            let score = *score.as_ref().unwrap() as f64;
            worst = worst.max((score - expected.score).abs());
            if (score - expected.score).abs() > 1e-5 {
                failures.push(format!(
                    "{name} document {i}: score {score}, reference {}",
                    expected.score
                ));
            }
        }
        assert_eq!(scores.len(), case.documents.len());
    }
    eprintln!("worst |score - reference| over the end-to-end requests: {worst:.2e}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every document that cannot be read gets its own error naming the cause; the rest are scored.
#[test]
fn bad_documents_fail_alone() {
    let model = downloaded_model();
    let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
    let bad = golden_dir().join("bad_inputs");
    let image = |name: &str| Content::image(ImageSource::Path(bad.join(name)));
    let request = Request {
        query: Content::text("anything"),
        documents: vec![
            image("corrupt.jpg"),
            image("empty.png"),
            image("missing.png"),
            image("wide_201_to_1.png"),
            image("bomb_30000x30000.png"),
            image("notes.pdf"),
            Content::text("a readable document"),
            Content::image(ImageSource::Bytes(vec![1, 2, 3])),
        ],
        ..Request::default()
    };
    let scores = reranker.score(&request);
    let message = |i: usize| match &scores[i] {
        Err(e) => e.to_string(),
        Ok(s) => panic!("document {i} scored {s}, expected an error"),
    };
    assert!(message(0).contains("corrupt"), "{}", message(0));
    assert!(message(1).contains("empty (0 bytes)"), "{}", message(1));
    assert!(
        message(2).contains("missing.png") && message(2).contains("path exists"),
        "{}",
        message(2)
    );
    assert!(message(3).contains("aspect ratio"), "{}", message(3));
    assert!(message(4).contains("decompression bomb"), "{}", message(4));
    assert!(
        message(5).contains("unsupported image format"),
        "{}",
        message(5)
    );
    assert!(scores[6].as_ref().is_ok_and(|s| (0.0..=1.0).contains(s)));
    assert!(
        message(7).contains("image 0 of the document"),
        "{}",
        message(7)
    );
}

/// Bad videos fail alone, quickly, with their cause; so does a pair over the visual-token limit.
#[cfg(feature = "video")]
#[test]
fn bad_videos_and_oversized_pairs_fail_alone() {
    use sift::{Video, VideoSource};
    let model = downloaded_model();
    let options = RerankOptions {
        max_visual_tokens: 1000,
        ..RerankOptions::default()
    };
    let reranker = Reranker::load(model.path(), options).unwrap();
    let bad = golden_dir().join("video/bad");
    let video = |name: &str| Content::video(VideoSource::Path(bad.join(name)));
    let clip = golden_dir().join("video/clips/one_second.mp4");
    let request = Request {
        query: Content::text("anything"),
        documents: vec![
            video("corrupt.mp4"),
            video("zero_frames.mp4"),
            video("audio_only.m4a"),
            video("unsupported_codec.avi"),
            // 4 frames of 320x448: 2 groups of 140 tokens, under the limit.
            Content::video(VideoSource::Path(clip.clone())),
            // Every one of its 24 frames: 12 groups of 140 tokens, over it.
            Content::video(Video {
                source: VideoSource::Path(clip),
                fps: Some(64.0),
                max_frames: None,
            }),
            Content::video(VideoSource::Frames(vec![])),
        ],
        ..Request::default()
    };
    let scores = reranker.score(&request);
    let message = |i: usize| match &scores[i] {
        Err(e) => e.to_string(),
        Ok(s) => panic!("document {i} scored {s}, expected an error"),
    };
    assert!(
        message(0).contains("not a readable video"),
        "{}",
        message(0)
    );
    assert!(message(1).contains("no frames"), "{}", message(1));
    assert!(message(2).contains("no video stream"), "{}", message(2));
    assert!(message(3).contains("ZZZZ"), "{}", message(3));
    assert!(scores[4].as_ref().is_ok_and(|s| (0.0..=1.0).contains(s)));
    assert!(
        message(5).contains("over the limit of 1000"),
        "{}",
        message(5)
    );
    assert!(message(6).contains("frame list is empty"), "{}", message(6));
    assert!(
        message(0).starts_with("video 0 of the document"),
        "{}",
        message(0)
    );
}

/// Limits are met as a side is read, so what lies past them is never decoded: here a missing
/// file after the limit, which would otherwise be the error.
#[test]
fn visual_limits_refuse_a_side_before_decoding_past_them() {
    use sift::{Video, VideoSource};
    let model = downloaded_model();
    let options = RerankOptions {
        max_visual_tokens: 100,
        max_visuals_per_side: 8,
        ..RerankOptions::default()
    };
    let reranker = Reranker::load(model.path(), options).unwrap();
    let dir = golden_dir().join("rerank/image");
    let image = |name: &str| ImageSource::Path(dir.join(name));
    let mut frames = vec![image("sky.jpg")];
    frames.extend((0..99).map(|_| image("missing.png")));
    let mut many_images = Content::text("a gallery");
    many_images.images = (0..9).map(|_| image("missing.png")).collect();
    let mut over_tokens = Content::text("three photos");
    over_tokens.images = vec![image("sky.jpg"), image("sky.jpg"), image("missing.png")];
    let request = Request {
        query: Content::text("the sky"),
        documents: vec![
            Content::video(Video {
                source: VideoSource::Frames(frames),
                fps: None,
                max_frames: Some(100),
            }),
            many_images,
            over_tokens,
            Content::text("A blue sky."),
        ],
        ..Request::default()
    };
    let scores = reranker.score(&request);
    let message = |i: usize| scores[i].as_ref().err().map(ToString::to_string);
    let over = |i: usize| message(i).is_some_and(|m| m.contains("over the limit of 100"));
    assert!(over(0), "{:?}", message(0));
    assert!(
        message(1).is_some_and(|m| m.contains("9 images and videos, over the limit of 8")),
        "{:?}",
        message(1)
    );
    assert!(over(2), "{:?}", message(2));
    assert!(scores[3].is_ok(), "{:?}", message(3));
}

#[test]
fn a_bad_query_is_reported_for_every_document() {
    let model = downloaded_model();
    let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
    let request = Request {
        query: Content::image(ImageSource::Path(golden_dir().join("bad_inputs/empty.png"))),
        documents: vec![Content::text("one"), Content::text("two")],
        ..Request::default()
    };
    for result in reranker.score(&request) {
        let err = result.unwrap_err();
        assert!(matches!(err, DocError::Query(_)), "{err}");
        assert!(err.to_string().contains("image 0 of the query"), "{err}");
    }
}

/// The GPU backend through the library's own device selection (CI: lavapipe).
#[cfg(feature = "wgpu")]
#[test]
fn the_gpu_backend_scores_like_the_reference() {
    let model = downloaded_model();
    let options = RerankOptions {
        backend: sift::Backend::Gpu,
        ..RerankOptions::default()
    };
    let reranker = Reranker::load(model.path(), options).unwrap();
    let case = RerankCase::load("mixed");
    let text = std::fs::read_to_string(case.request_path()).unwrap();
    let request = Request::from_json(&text, &case.dir).unwrap();
    for (expected, score) in case.documents.iter().zip(reranker.score(&request)) {
        let score = score.unwrap() as f64;
        assert!(
            (score - expected.score).abs() <= 1e-4,
            "{score} vs {}",
            expected.score
        );
    }
}

/// Documents scored after their query's shared prefix (computed once from the first two)
/// equal the same documents computed whole, on every golden request (text, images on either
/// side, videos, truncation), synchronously and asynchronously.
#[test]
fn documents_scored_after_the_shared_prefix_equal_whole_pairs() {
    let model = downloaded_model();
    let mut worst = 0f32;
    for name in RERANK_CASES {
        let case = RerankCase::load(name);
        let load = |reuse_prefix| {
            case_reranker(
                model.path(),
                &case,
                RerankOptions {
                    reuse_prefix,
                    ..RerankOptions::default()
                },
            )
        };
        let (whole, reused) = (load(false), load(true));
        let request = case_request(&case);
        let expected = whole.score(&request);
        for asynchronous in [false, true] {
            let query = reused.prepare_query(&request);
            for (i, (document, expected)) in request.documents.iter().zip(&expected).enumerate() {
                let got = if asynchronous {
                    pollster::block_on(
                        reused.score_documents_async(&query, std::slice::from_ref(document)),
                    )
                    .pop()
                    .expect("one result")
                    .map(|s| s.score)
                } else {
                    reused.score_document(&query, document)
                };
                let (got, expected) = (got.unwrap(), *expected.as_ref().unwrap());
                worst = worst.max((got - expected).abs());
                assert!(
                    (got - expected).abs() <= 1e-5,
                    "{name} document {i} (async: {asynchronous}): {got} after the prefix, {expected} whole"
                );
            }
            if request.documents.len() > 1 {
                let shared = query.shared_prefix_len();
                assert!(shared.is_some_and(|n| n > 40), "{name}: shared {shared:?}");
            }
        }
    }
    eprintln!("worst |after prefix - whole|: {worst:.2e}");
}

/// Documents packed into one forward pass after their query's shared prefix equal the same
/// documents computed whole, one at a time, on every golden request; and they are packed
/// (fewer passes than documents), unless the batch limit leaves room for one document only;
/// read back asynchronously too.
#[test]
fn documents_scored_in_one_pass_equal_whole_pairs() {
    let model = downloaded_model();
    let mut worst = 0f32;
    for name in RERANK_CASES {
        let case = RerankCase::load(name);
        let load = |reuse_prefix, batch_bytes| {
            case_reranker(
                model.path(),
                &case,
                RerankOptions {
                    reuse_prefix,
                    batch_bytes,
                    ..RerankOptions::default()
                },
            )
        };
        let request = case_request(&case);
        let expected = load(false, 1).score(&request);
        let documents = request.documents.len();
        for (batch_bytes, most_passes) in [(sift::DEFAULT_BATCH_BYTES, 2), (1, documents)] {
            let batched = load(true, batch_bytes);
            let query = batched.prepare_query(&request);
            let mut passes = 0;
            let got = batched.score_documents(&query, &request.documents, |_| {
                passes += 1;
                true
            });
            assert!(passes <= most_passes.max(1), "{name}: {passes} passes");
            // A browser's path, read back asynchronously, scores the same passes.
            let asynchronous = pollster::block_on(
                batched.score_documents_async(&batched.prepare_query(&request), &request.documents),
            );
            let scores = |results: &[Result<sift::Scored, sift::DocError>]| -> Vec<f32> {
                results.iter().map(|r| r.as_ref().unwrap().score).collect()
            };
            assert_eq!(scores(&asynchronous), scores(&got), "{name}: async");
            if documents > 1 {
                assert!(
                    query.shared_prefix_len().is_some(),
                    "{name}: no shared prefix"
                );
            }
            for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
                let (got, expected) = (got.as_ref().unwrap().score, *expected.as_ref().unwrap());
                worst = worst.max((got - expected).abs());
                assert!(
                    (got - expected).abs() <= 1e-5,
                    "{name} document {i} (batch limit {batch_bytes}): {got} in one pass, {expected} whole"
                );
            }
        }
    }
    eprintln!("worst |one pass - whole|: {worst:.2e}");
}

/// The least memory budget a model loads with (room for the query, one document and one
/// decoding, each at its limit) scores every document in a pass of its own, with the scores
/// of the default budget; one byte less does not load, and says what to change.
#[test]
fn a_budget_with_room_for_one_document_scores_one_per_pass() {
    let model = downloaded_model();
    let case = RerankCase::load("image");
    let request = case_request(&case);
    let options = |memory_budget| RerankOptions {
        max_length: case.max_length,
        memory_budget,
        ..RerankOptions::default()
    };
    let least = match Reranker::load(model.path(), options(0)) {
        Err(sift::LoadError::OverMemoryBudget { needs, .. }) => needs,
        other => panic!("a budget of 0 bytes: {:?}", other.map(|_| ())),
    };
    let err = Reranker::load(model.path(), options(least - 1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("--memory-budget"), "{err}");
    let tight = Reranker::load(model.path(), options(least)).unwrap();
    let query = tight.prepare_query(&request);
    let mut passes = 0;
    let got = tight.score_documents(&query, &request.documents, |_| {
        passes += 1;
        true
    });
    assert_eq!(passes, request.documents.len());
    let expected = case_reranker(model.path(), &case, RerankOptions::default()).score(&request);
    for (got, expected) in got.iter().zip(&expected) {
        let (got, expected) = (got.as_ref().unwrap().score, *expected.as_ref().unwrap());
        assert!((got - expected).abs() <= 1e-5, "{got} vs {expected}");
    }
}

/// f16 precision (linear layers and attention) keeps every golden score within `F16_BOUND` of
/// f32 (the largest difference measured, about twice over: docs/performance.md), and it does
/// change the scores, so the f16 path ran.
#[test]
fn f16_precision_keeps_every_golden_score_near_f32() {
    const F16_BOUND: f32 = 1.5e-4;
    let model = downloaded_model();
    let mut worst = 0f32;
    for name in RERANK_CASES {
        let case = RerankCase::load(name);
        let load = |precision| {
            case_reranker(
                model.path(),
                &case,
                RerankOptions {
                    precision,
                    ..RerankOptions::default()
                },
            )
        };
        let request = case_request(&case);
        let f32_scores = load(sift::Precision::F32).score(&request);
        let f16_scores = load(sift::Precision::F16).score(&request);
        for (i, (a, b)) in f32_scores.iter().zip(&f16_scores).enumerate() {
            let (a, b) = (*a.as_ref().unwrap(), *b.as_ref().unwrap());
            worst = worst.max((a - b).abs());
            assert!(
                (a - b).abs() <= F16_BOUND,
                "{name} document {i}: {b} in f16, {a} in f32"
            );
        }
    }
    eprintln!("worst |f16 - f32|: {worst:.2e}");
    assert!(
        worst > 1e-7,
        "f16 changed no score: the f16 path did not run"
    );
}

/// The model loaded with `options` at the golden request's own `max_length`.
fn case_reranker(model: &std::path::Path, case: &RerankCase, options: RerankOptions) -> Reranker {
    let options = RerankOptions {
        max_length: case.max_length,
        ..options
    };
    Reranker::load(model, options).unwrap()
}

/// The golden request, read as `sift rerank` reads it.
fn case_request(case: &RerankCase) -> Request {
    let text = std::fs::read_to_string(case.request_path()).unwrap();
    Request::from_json(&text, &case.dir).unwrap()
}
