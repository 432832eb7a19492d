//! `sift serve` on 127.0.0.1 with a golden tiny model (the real tokenizer): its scores equal the
//! library's (what `sift rerank` prints), every API shape answers in its own shape, bad requests
//! get a 4xx naming the problem, and it holds up under concurrent clients, a full queue and
//! clients that leave.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use sift::{Content, ImageSource, Request, RerankOptions, Reranker, VideoSource};
use sift_serve::{Limits, MediaPolicy, ServeOptions};
use sift_tests::{downloaded_model, golden_dir};

mod common;
use common::TestServer;

impl TestServer {
    /// POSTs a JSON body; the status and the parsed answer.
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string(), &[])
    }

    fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = ureq::post(&self.url(path)).set("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.set(name, value);
        }
        read(request.send_string(body))
    }

    fn wait_for_metric(&self, name: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.metric(name) < at_least {
            assert!(Instant::now() < deadline, "{name} never reached {at_least}");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn read(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn rerank_dir(case: &str) -> PathBuf {
    golden_dir().join("rerank").join(case)
}

fn data_uri(path: &Path, media_type: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The library's scores for a query text and documents, as `sift rerank` computes them.
fn library_scores(query: &str, documents: Vec<Content>) -> Vec<f32> {
    let model = downloaded_model();
    let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
    scores_of(&reranker, query, documents)
}

fn scores_of(reranker: &Reranker, query: &str, documents: Vec<Content>) -> Vec<f32> {
    let request = Request {
        query: Content::text(query),
        documents,
        ..Request::default()
    };
    reranker
        .score(&request)
        .into_iter()
        .map(|s| s.unwrap())
        .collect()
}

/// relevance_score of each document, by its index.
fn scores_by_index(answer: &Value) -> Vec<f32> {
    let results = answer["results"].as_array().expect("results");
    let mut scores = vec![f32::NAN; results.len()];
    for result in results {
        scores[result["index"].as_u64().unwrap() as usize] =
            result["relevance_score"].as_f64().unwrap() as f32;
    }
    scores
}

const QUERY: &str = "a red painting";

#[test]
fn scores_equal_the_librarys_for_text_image_and_video() {
    let image_dir = rerank_dir("image");
    let mut documents = vec![
        json!("A text about red paintings."),
        json!({"image": data_uri(&image_dir.join("red.png"), "image/png")}),
        json!({"text": "The sky over the sea.", "image": data_uri(&image_dir.join("sky.jpg"), "image/jpeg")}),
    ];
    let mut expected_documents = vec![
        Content::text("A text about red paintings."),
        Content::image(ImageSource::Path(image_dir.join("red.png"))),
        Content {
            texts: vec!["The sky over the sea.".into()],
            images: vec![ImageSource::Path(image_dir.join("sky.jpg"))],
            ..Content::default()
        },
    ];
    if cfg!(feature = "video") {
        let clip = rerank_dir("video_document").join("one_second.mp4");
        documents.push(json!({"video": data_uri(&clip, "video/mp4")}));
        expected_documents.push(Content::video(VideoSource::Path(clip)));
    }
    let expected = library_scores(QUERY, expected_documents);
    let server = TestServer::start(ServeOptions::default());
    let (status, answer) = server.post(
        "/v1/rerank",
        &json!({"query": QUERY, "documents": documents}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(scores_by_index(&answer), expected);
    let ranked: Vec<f64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["relevance_score"].as_f64().unwrap())
        .collect();
    assert!(
        ranked.windows(2).all(|w| w[0] >= w[1]),
        "best first: {ranked:?}"
    );
    assert!(answer["id"].as_str().unwrap().starts_with("rerank-"));
    assert!(answer["usage"]["total_tokens"].as_u64().unwrap() > 0);
    for result in answer["results"].as_array().unwrap() {
        let given = &documents[result["index"].as_u64().unwrap() as usize];
        let echoed = match given.as_str() {
            Some(text) => json!({ "text": text }),
            None => given.clone(),
        };
        assert_eq!(result["document"], echoed);
    }
    server.stop();
}

#[test]
fn every_api_shape_answers_in_its_own_shape() {
    let red = data_uri(&rerank_dir("image").join("red.png"), "image/png");
    let texts = ["A text about red paintings.", "Stock prices fell."];
    let expected = library_scores(
        QUERY,
        vec![
            Content::text(texts[0]),
            Content::text(texts[1]),
            Content {
                texts: vec!["a square".into()],
                images: vec![ImageSource::Path(rerank_dir("image").join("red.png"))],
                ..Content::default()
            },
        ],
    );
    let server = TestServer::start(ServeOptions {
        model_name: "Qwen/Qwen3-VL-Reranker-2B".into(),
        ..ServeOptions::default()
    });

    // Cohere v2: no documents echoed, `meta` present.
    let (status, v2) = server.post(
        "/v2/rerank",
        &json!({"model": "rerank-v3.5", "query": QUERY, "documents": texts, "top_n": 1}),
    );
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["results"].as_array().unwrap().len(), 1);
    assert!(v2["results"][0].get("document").is_none());
    assert_eq!(v2["meta"]["api_version"]["version"], "2");
    assert_eq!(v2["model"], "rerank-v3.5");

    // vLLM's multimodal `content` list, on /rerank; documents echoed by default.
    let content_document = json!({"content": [
        {"type": "text", "text": "a square"},
        {"type": "image_url", "image_url": {"url": red}},
    ]});
    let (status, vllm) = server.post(
        "/rerank",
        &json!({"query": QUERY, "documents": [texts[0], texts[1], content_document]}),
    );
    assert_eq!(status, 200, "{vllm}");
    assert_eq!(scores_by_index(&vllm), expected);
    assert_eq!(vllm["model"], "Qwen/Qwen3-VL-Reranker-2B");
    let first = vllm["results"][0]["index"].as_u64().unwrap() as usize;
    assert!(vllm["results"][0]["document"].is_object());
    assert!(first < 3);

    // Jina's image documents, top_n and return_documents.
    let (status, jina) = server.post(
        "/v1/rerank",
        &json!({"model": "jina-reranker-m0", "query": QUERY, "top_n": 2,
                "return_documents": false,
                "documents": [texts[0], {"image": red, "text": "a square"}]}),
    );
    assert_eq!(status, 200, "{jina}");
    assert_eq!(jina["results"].as_array().unwrap().len(), 2);
    assert!(jina["results"][0].get("document").is_none());

    // vLLM's /score: one query against each document, in document order; then pairs.
    let (status, score) = server.post(
        "/score",
        &json!({"model": "m", "text_1": QUERY, "text_2": texts}),
    );
    assert_eq!(status, 200, "{score}");
    assert_eq!(score["object"], "list");
    let data = score["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "score");
        assert_eq!(item["score"].as_f64().unwrap() as f32, expected[i]);
    }
    let (status, pairs) = server.post(
        "/score",
        &json!({"text_1": [QUERY, QUERY], "text_2": texts}),
    );
    assert_eq!(status, 200, "{pairs}");
    assert_eq!(
        pairs["data"][1]["score"].as_f64().unwrap() as f32,
        expected[1]
    );

    // TEI's /rerank: a bare list, best first.
    let (status, tei) = server.post(
        "/rerank",
        &json!({"query": QUERY, "texts": texts, "return_text": true}),
    );
    assert_eq!(status, 200, "{tei}");
    let list = tei.as_array().expect("TEI answers a list");
    assert_eq!(list.len(), 2);
    let best = list[0]["index"].as_u64().unwrap() as usize;
    assert_eq!(list[0]["text"], texts[best]);
    assert_eq!(list[0]["score"].as_f64().unwrap() as f32, expected[best]);
    assert!(list[0]["score"].as_f64() >= list[1]["score"].as_f64());
    // raw_scores: the logit, whose sigmoid is the score.
    let (status, raw) = server.post(
        "/rerank",
        &json!({"query": QUERY, "texts": texts, "raw_scores": true}),
    );
    assert_eq!(status, 200, "{raw}");
    for result in raw.as_array().unwrap() {
        let index = result["index"].as_u64().unwrap() as usize;
        let logit = result["score"].as_f64().unwrap();
        let sigmoid = 1.0 / (1.0 + (-logit).exp());
        assert!((sigmoid - f64::from(expected[index])).abs() < 1e-6, "{raw}");
    }

    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "Qwen/Qwen3-VL-Reranker-2B");
    let (status, health) = server.get("/health");
    assert_eq!(status, 200);
    assert!(health.contains("\"ok\""), "{health}");
    assert!(server.metric("sift_documents_total") >= 11.0);
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("sift_requests_total{endpoint=\"/score\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("sift_request_duration_seconds_bucket"));
    server.stop();
}

/// The Cohere Python SDK's requests (v5: `co.rerank(...)` and `ClientV2.rerank(...)`),
/// replayed byte for byte with its headers, and its parsing of the answers.
#[test]
fn a_cohere_sdk_client_works_unchanged() {
    let server = TestServer::start(ServeOptions {
        api_key: Some("secret-key".into()),
        ..ServeOptions::default()
    });
    let headers = [
        ("Authorization", "Bearer secret-key"),
        ("X-Fern-Language", "Python"),
        ("X-Fern-SDK-Name", "cohere"),
        ("X-Fern-SDK-Version", "5.13.0"),
        ("User-Agent", "cohere/5.13.0"),
        ("Accept", "application/json"),
    ];
    let body = r#"{"model": "rerank-v3.5", "query": "What is the capital of the United States?", "documents": ["Carson City is the capital city of the American state of Nevada.", "Washington, D.C. is the capital of the United States.", "Capital punishment has existed in the United States since before it was a country."], "top_n": 3}"#;
    for path in ["/v1/rerank", "/v2/rerank"] {
        let (status, answer) = server.post_raw(path, body, &headers);
        assert_eq!(status, 200, "{path}: {answer}");
        // What the SDK's RerankResponse reads: id, results[].index and relevance_score.
        assert!(answer["id"].is_string());
        let results = answer["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for result in results {
            assert!(result["index"].as_u64().unwrap() < 3);
            let score = result["relevance_score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score));
        }
    }
    let (status, answer) = server.post_raw("/v1/rerank", body, &headers[1..]);
    assert_eq!(status, 401);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--api-key")
    );
    assert_eq!(server.get("/health").0, 200, "health needs no key");
    server.stop();
}

#[test]
fn bad_requests_get_a_4xx_naming_the_problem() {
    let media_root = rerank_dir("image");
    let server = TestServer::start(ServeOptions {
        limits: Limits {
            max_body_bytes: 200_000,
            max_documents: 3,
            max_text_chars: 100,
            max_image_pixels: 2_000,
            max_request_pixels: 3_000,
            ..Limits::default()
        },
        media: MediaPolicy {
            root: Some(media_root.clone()),
            ..MediaPolicy::default()
        },
        ..ServeOptions::default()
    });
    let doc = |d: Value| json!({"query": QUERY, "documents": [d]});
    let tiny = data_uri(&media_root.join("tiny.png"), "image/png");
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            doc(json!({"image": "data:image/png;base64,@@@"})),
            400,
            "base64",
        ),
        (
            doc(json!({"image": "data:application/pdf;base64,aGk="})),
            415,
            "application/pdf",
        ),
        (
            doc(json!({"image": "data:image/png;base64,aGVsbG8gd29ybGQ="})),
            415,
            "unsupported image format",
        ),
        (
            doc(json!({"image": "https://example.com/a.png"})),
            403,
            "--allow-remote-media",
        ),
        (
            doc(json!({"image": "../text/request.json"})),
            403,
            "outside the media root",
        ),
        (
            doc(json!({"image": "/etc/passwd"})),
            403,
            "outside the media root",
        ),
        (
            doc(json!({"video": "data:video/mp4;base64,aGk=", })),
            415,
            "cannot be read",
        ),
        (
            doc(json!({"content": [{"type": "audio_url", "audio_url": {"url": "x"}}]})),
            415,
            "audio_url",
        ),
        (doc(json!({"txt": "x"})), 400, "unknown field \"txt\""),
        (doc(json!(7)), 400, "neither a string nor an object"),
        (
            json!({"query": QUERY, "documents": []}),
            400,
            "no documents",
        ),
        (
            json!({"query": QUERY, "documents": ["a", "b", "c", "d"]}),
            413,
            "--max-documents",
        ),
        (doc(json!("x".repeat(101))), 413, "--max-text-chars"),
        (doc(json!({"image": "red.png"})), 413, "--max-image-pixels"),
        (
            json!({"query": {"image": "red.png"}, "documents": ["a"]}),
            413,
            "--max-image-pixels",
        ),
        (
            doc(json!({"image": [tiny.clone(), tiny.clone()]})),
            413,
            "--max-request-pixels",
        ),
        (
            doc(json!({"image": "/etc/nonexistent"})),
            403,
            "outside the media root",
        ),
        (doc(json!({"image": "absent.png"})), 400, "no image file"),
        (
            json!({"query": QUERY, "max_frames": 100000, "documents": [{"video": "x.mp4"}]}),
            413,
            "--max-video-frames",
        ),
        (doc(json!({"image": tiny.clone(), "text": ["a"]})), 200, ""),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = server.post("/v1/rerank", &body);
        assert_eq!(got, status, "{body}: {answer}");
        if status != 200 {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
    }
    // Whether a path outside the root exists does not show, nor where the root is.
    let outside = |path: &str| {
        let (status, answer) = server.post("/v1/rerank", &doc(json!({ "image": path })));
        let message = answer["error"]["message"].as_str().unwrap().to_string();
        let root = media_root.canonicalize().unwrap();
        assert!(!message.contains(root.to_str().unwrap()), "{message}");
        (status, message.replace(path, "PATH"))
    };
    assert_eq!(outside("/etc/shadow"), outside("/etc/nonexistent"));
    assert_eq!(outside("../../../etc/shadow"), outside("../../../etc/none"));
    let (status, answer) = server.post_raw("/v1/rerank", "{\"query\": ", &[]);
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let big = json!({"query": QUERY, "documents": ["x".repeat(3_000_000)]}).to_string();
    let (status, answer) = server.post_raw("/v1/rerank", &big, &[]);
    assert_eq!(status, 413);
    let message = answer["error"]["message"].as_str().unwrap();
    let size = format!("is {} bytes, over", big.len());
    assert!(
        message.contains(&size) && message.contains("--max-body-bytes"),
        "{message}"
    );
    let (status, answer) = server.post("/v1/embeddings", &json!({}));
    assert_eq!(status, 404);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/rerank")
    );
    server.stop();
}

#[test]
fn a_pair_over_the_visual_token_limit_is_refused_with_the_numbers() {
    let server = TestServer::start_with(
        ServeOptions::default(),
        RerankOptions {
            max_visual_tokens: 2,
            ..RerankOptions::default()
        },
    );
    let red = data_uri(&rerank_dir("image").join("red.png"), "image/png");
    let (status, answer) = server.post(
        "/v1/rerank",
        &json!({"query": QUERY, "documents": ["a text", {"image": red}]}),
    );
    assert_eq!(status, 413, "{answer}");
    let failures = answer["error"]["documents"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["index"], 1);
    let message = failures[0]["message"].as_str().unwrap();
    assert!(
        message.contains("over the limit of 2") && message.contains("--max-visual-tokens"),
        "{message}"
    );
    server.stop();
}

/// A tiny HTTP server on 127.0.0.1 that answers every request with `body`.
fn serve_file(body: Vec<u8>) -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    address
}

#[test]
fn remote_media_is_fetched_only_when_allowed_and_never_from_private_addresses_by_default() {
    let red_path = rerank_dir("image").join("red.png");
    let origin = serve_file(std::fs::read(&red_path).unwrap());
    let url = format!("http://{origin}/red.png");
    let body = json!({"query": QUERY, "documents": [{"image": url}]});

    let public_only = TestServer::start(ServeOptions {
        media: MediaPolicy {
            allow_remote: true,
            ..MediaPolicy::default()
        },
        ..ServeOptions::default()
    });
    let (status, answer) = public_only.post("/v1/rerank", &body);
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-private-media")
    );
    // Addresses of the IANA special-purpose blocks, however written, are refused before any
    // connection is tried (so nothing is sent to them).
    for host in [
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::808:808]",
        "198.18.0.1",
        "240.0.0.1",
        "[fd00::1]",
    ] {
        let body =
            json!({"query": QUERY, "documents": [{"image": format!("http://{host}/a.png")}]});
        let (status, answer) = public_only.post("/v1/rerank", &body);
        assert_eq!(status, 403, "{host}: {answer}");
    }
    public_only.stop();

    let private_too = TestServer::start(ServeOptions {
        media: MediaPolicy {
            allow_remote: true,
            allow_private: true,
            ..MediaPolicy::default()
        },
        ..ServeOptions::default()
    });
    let (status, answer) = private_too.post("/v1/rerank", &body);
    assert_eq!(status, 200, "{answer}");
    let expected = library_scores(QUERY, vec![Content::image(ImageSource::Path(red_path))]);
    assert_eq!(scores_by_index(&answer), expected);
    private_too.stop();
}

/// 32 clients × 20 requests at once: every answer is 200 and belongs to its own request. Each
/// client sends one of 8 requests with its documents rotated, so a result given to the wrong
/// request, or in the wrong order, shows (the 8 requests' scores differ by over 1e-4).
#[test]
fn concurrent_clients_each_get_their_own_results() {
    let variants: Vec<Vec<String>> = (0..8)
        .map(|v| {
            (0..3)
                .map(|d| format!("document {d} of variant {v}"))
                .collect()
        })
        .collect();
    let expected: Vec<Vec<f32>> = {
        let model = downloaded_model();
        let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
        variants
            .iter()
            .map(|docs| scores_of(&reranker, QUERY, docs.iter().map(Content::text).collect()))
            .collect()
    };
    // A mixed-up answer must show: no two expected scores are within the comparison's 1e-6.
    let all: Vec<f32> = expected.iter().flatten().copied().collect();
    for (i, a) in all.iter().enumerate() {
        assert!(all[i + 1..].iter().all(|b| (a - b).abs() > 1e-5), "{all:?}");
    }
    let server = TestServer::start(ServeOptions::default());
    thread::scope(|scope| {
        for client in 0..32 {
            let (server, variants, expected) = (&server, &variants, &expected);
            scope.spawn(move || {
                for round in 0..20 {
                    let v = (client + round) % variants.len();
                    let shift = round % 3;
                    let mut docs = variants[v].clone();
                    docs.rotate_left(shift);
                    let (status, answer) =
                        server.post("/v1/rerank", &json!({"query": QUERY, "documents": docs}));
                    assert_eq!(status, 200, "{answer}");
                    let got = scores_by_index(&answer);
                    let mut want = expected[v].clone();
                    want.rotate_left(shift);
                    // Equal up to the last bits: a document scored first is computed whole,
                    // later ones after the query's shared prefix (within 1e-7 of each other);
                    // another request's scores differ by far more.
                    let close = got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-6);
                    assert!(
                        close,
                        "client {client} round {round}: {got:?}, expected {want:?}"
                    );
                }
            });
        }
    });
    assert_eq!(server.metric("sift_documents_total"), 32.0 * 20.0 * 3.0);
    server.stop();
}

/// With one request scoring and one waiting (`--max-queue 1`), a third gets 503 with
/// Retry-After at once; the client of the first leaving cancels its remaining documents; the
/// waiting one is answered; and a shutdown answers the request in flight before stopping.
#[test]
fn a_full_queue_answers_503_and_a_client_that_leaves_cancels_its_work() {
    let server = TestServer::start(ServeOptions {
        max_queue: 1,
        limits: Limits {
            max_documents: 10_000,
            ..Limits::default()
        },
        ..ServeOptions::default()
    });
    // Long enough to be still scoring when its client leaves.
    let long: Vec<String> = (0..10_000).map(|i| format!("document {i}")).collect();
    let body = json!({"query": QUERY, "documents": long}).to_string();
    let mut leaving = TcpStream::connect(server.address).unwrap();
    write!(
        leaving,
        "POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    server.wait_for_metric("sift_scoring", 1.0);

    let waiting = thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            server.post(
                "/v1/rerank",
                &json!({"query": QUERY, "documents": ["waiting"]}),
            )
        });
        server.wait_for_metric("sift_queue_depth", 1.0);
        let refused = ureq::post(&server.url("/v1/rerank"))
            .send_string(&json!({"query": QUERY, "documents": ["one too many"]}).to_string());
        let Err(ureq::Error::Status(503, response)) = refused else {
            panic!("a full queue must answer 503");
        };
        assert_eq!(response.header("Retry-After"), Some("1"));
        let message = response.into_string().unwrap();
        assert!(message.contains("--max-queue"), "{message}");

        drop(leaving);
        server.wait_for_metric("sift_documents_cancelled_total", 1.0);
        waiting.join().unwrap()
    });
    assert_eq!(waiting.0, 200, "{}", waiting.1);
    assert!(server.metric("sift_documents_total") < 10_000.0);
    assert_eq!(server.get("/health").0, 200);

    // A shutdown lets the request in flight finish.
    let mut server = server;
    let shutdown = server.shutdown.take().unwrap();
    let in_flight = thread::scope(|scope| {
        let request = scope.spawn(|| {
            let docs: Vec<String> = (0..200).map(|i| format!("late {i}")).collect();
            server.post("/v1/rerank", &json!({"query": QUERY, "documents": docs}))
        });
        server.wait_for_metric("sift_scoring", 1.0);
        shutdown.send(()).unwrap();
        request.join().unwrap()
    });
    assert_eq!(in_flight.0, 200, "{}", in_flight.1);
    assert_eq!(in_flight.1["results"].as_array().unwrap().len(), 200);
    server.stop();
}

/// A PNG of `width`×`height` pixels as far as its header goes (no pixel data): enough for the
/// server's size check, which reads only the header.
fn png_header(width: u32, height: u32) -> String {
    let mut bytes = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The corners of each API shape: vLLM's top_n, each server's truncation field, Cohere v1's
/// object documents with rank_fields, TEI's /info and error shape, X-Request-Id, CORS, the
/// per-request pixel budget, and the process's metrics.
#[test]
fn each_api_shape_answers_exactly_in_its_corners() {
    let texts = ["A text about red paintings.", "Stock prices fell."];
    let long = "red paint ".repeat(200);
    let server = TestServer::start_with(
        ServeOptions {
            cors_origins: vec!["https://app.example".into()],
            ..ServeOptions::default()
        },
        RerankOptions {
            max_length: 64,
            ..RerankOptions::default()
        },
    );
    let count = |answer: &Value| answer["results"].as_array().unwrap().len();

    // vLLM's top_n: 0 means all; negative is refused.
    let (status, all) = server.post(
        "/rerank",
        &json!({"query": QUERY, "documents": texts, "top_n": 0}),
    );
    assert_eq!((status, count(&all)), (200, 2), "{all}");
    let (status, answer) = server.post(
        "/rerank",
        &json!({"query": QUERY, "documents": texts, "top_n": -1}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("top_n -1")
    );

    // Truncation fields: honoured where they change nothing, refused where sift would have to
    // cut shorter than --max-length, never ignored.
    let with = |field: &str, value: Value, documents: Value| {
        let mut body = json!({"query": QUERY, "documents": documents});
        body[field] = value;
        server.post("/v2/rerank", &body)
    };
    for (field, value, documents, want) in [
        (
            "max_tokens_per_doc",
            json!(4096),
            json!([long.clone()]),
            200,
        ),
        ("max_tokens_per_doc", json!(4), json!(texts), 400),
        ("max_tokens_per_doc", json!(0), json!(texts), 400),
        (
            "truncate_prompt_tokens",
            json!(-1),
            json!([long.clone()]),
            200,
        ),
        (
            "truncate_prompt_tokens",
            json!(69),
            json!([long.clone()]),
            200,
        ),
        (
            "truncate_prompt_tokens",
            json!(68),
            json!([long.clone()]),
            400,
        ),
        ("truncate_prompt_tokens", json!(70), json!(texts), 400),
        ("max_chunks_per_doc", json!(10), json!(texts), 400),
    ] {
        let (status, answer) = with(field, value.clone(), documents);
        assert_eq!(status, want, "{field} {value}: {answer}");
        if want == 400 {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{message}");
        }
    }

    // Cohere v1's object documents: other fields echoed; rank_fields chooses what is ranked.
    let documents = json!([
        {"title": "Paintings", "text": texts[0], "id": 7},
        {"title": "Markets", "text": texts[1], "id": 8},
    ]);
    let (status, plain) = server.post(
        "/v1/rerank",
        &json!({"query": QUERY, "documents": documents}),
    );
    assert_eq!(status, 200, "{plain}");
    let (status, ranked) = server.post(
        "/v1/rerank",
        &json!({"query": QUERY, "documents": documents, "rank_fields": ["title", "text"]}),
    );
    assert_eq!(status, 200, "{ranked}");
    let expected = {
        let model = downloaded_model();
        let options = RerankOptions {
            max_length: 64,
            ..RerankOptions::default()
        };
        let reranker = Reranker::load(model.path(), options).unwrap();
        let plain = scores_of(&reranker, QUERY, texts.map(Content::text).to_vec());
        let fields = [
            format!("title: Paintings\ntext: {}", texts[0]),
            format!("title: Markets\ntext: {}", texts[1]),
        ];
        let ranked = scores_of(&reranker, QUERY, fields.iter().map(Content::text).collect());
        (plain, ranked)
    };
    assert_eq!(scores_by_index(&plain), expected.0);
    assert_eq!(scores_by_index(&ranked), expected.1);
    let first = ranked["results"][0]["index"].as_u64().unwrap() as usize;
    assert_eq!(ranked["results"][0]["document"], documents[first]);

    // TEI: truncate honoured (cut) or, as TEI's default, a text over the limit refused in TEI's
    // error shape; /info in TEI's fields.
    let tei = |extra: Value| {
        let mut body = json!({"query": QUERY, "texts": [texts[0], long.clone()]});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        server.post("/rerank", &body)
    };
    let (status, answer) = tei(json!({"truncate": true}));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = tei(json!({}));
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error_type"], "Validation");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("\"truncate\": true")
    );
    let (status, answer) = tei(json!({"truncate": true, "truncation_direction": "Left"}));
    assert_eq!((status, &answer["error_type"]), (400, &json!("Validation")));
    let (status, answer) = server.post("/rerank", &json!({"query": QUERY, "texts": []}));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no documents"));
    let (status, info) = server.get("/info");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["max_input_length"], 69);
    assert!(info["model_type"]["reranker"].is_object(), "{info}");

    // X-Request-Id: echoed, or made.
    let response = ureq::post(&server.url("/v1/rerank"))
        .set("X-Request-Id", "trace-42")
        .send_string(&json!({"query": QUERY, "documents": texts}).to_string())
        .unwrap();
    assert_eq!(response.header("x-request-id"), Some("trace-42"));
    let answer: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    assert_eq!(answer["id"], "rerank-trace-42");
    let made = ureq::get(&server.url("/health")).call().unwrap();
    assert!(made.header("x-request-id").is_some_and(|id| id.len() >= 32));

    // CORS: a browser's preflight is answered for the allowed origin only, before the key.
    // The allowed origin's header, if the preflight answers one.
    let preflight = |origin: &str| {
        let response = ureq::request("OPTIONS", &server.url("/v1/rerank"))
            .set("Origin", origin)
            .set("Access-Control-Request-Method", "POST")
            .set(
                "Access-Control-Request-Headers",
                "content-type,authorization",
            )
            .call();
        match response {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                r.header("access-control-allow-origin").map(str::to_string)
            }
            Err(e) => panic!("OPTIONS: {e}"),
        }
    };
    assert_eq!(
        preflight("https://app.example").as_deref(),
        Some("https://app.example")
    );
    assert_eq!(preflight("https://elsewhere.example"), None);

    // Three 7000×7000 images (a request of a few hundred bytes) are refused from their headers
    // at once, instead of holding the model.
    let big = png_header(7000, 7000);
    let started = Instant::now();
    let (status, answer) = server.post(
        "/v1/rerank",
        &json!({"query": QUERY, "documents": [{"image": [big.clone(), big.clone(), big]}]}),
    );
    assert_eq!(status, 413, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("--max-request-pixels"), "{message}");

    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "{metrics}"
    );
    assert!(metrics.contains("sift_open_connections"));
    server.stop();
}

/// A PDF document (a data URI, or a path under the media root) is one document per selected
/// page: each page a result naming its document and page, scored exactly as the library scores
/// that page. What is not a PDF, a PDF document with other fields, a page past the end, and a
/// PDF where a document must stay one result are refused, each by name.
#[cfg(feature = "pdf")]
#[test]
fn pdf_documents_are_one_result_per_page() {
    use sift::pdf::{PdfOptions, PdfPage};
    let pdfs = golden_dir().join("pdf");
    let report = data_uri(&pdfs.join("report.pdf"), "application/pdf");
    let pages = |file: &str, range: Option<&str>| {
        PdfPage::pages_of(&pdfs.join(file), file, range, &PdfOptions::default())
            .into_iter()
            .map(|page| Content::image(ImageSource::PdfPage(page)))
    };
    let mut expected_documents = vec![Content::text("a text")];
    expected_documents.extend(pages("report.pdf", Some("2,1")));
    expected_documents.extend(pages("slide.pdf", None));
    let expected = library_scores(QUERY, expected_documents);
    let server = TestServer::start(ServeOptions {
        media: MediaPolicy {
            root: Some(pdfs.clone()),
            ..MediaPolicy::default()
        },
        ..ServeOptions::default()
    });
    let (status, answer) = server.post(
        "/v1/rerank",
        &json!({
            "query": QUERY,
            "documents": ["a text", {"pdf": report, "pages": "2,1"}, {"pdf": "slide.pdf"}],
            "return_documents": true,
        }),
    );
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{answer}");
    // In the order the library was given them: the text, report pages 2 and 1, the slide.
    let order = [(0, None), (1, Some(2)), (1, Some(1)), (2, Some(1))];
    for result in results {
        let at = (result["index"].as_u64().unwrap(), result["page"].as_u64());
        let i = order.iter().position(|&o| o == at).expect("a known page");
        assert_eq!(
            result["relevance_score"].as_f64().unwrap() as f32,
            expected[i]
        );
        let echoed = match at {
            (0, _) => json!({"text": "a text"}),
            (1, Some(page)) => json!({"pdf": "data:application/pdf;base64,…", "page": page}),
            (_, page) => json!({"pdf": "slide.pdf", "page": page}),
        };
        assert_eq!(result["document"], echoed);
    }

    let refused = |document: Value, endpoint: &str, status: u16, says: &[&str]| {
        let body = match endpoint {
            "/score" => json!({"text_1": QUERY, "text_2": [document]}),
            _ => json!({"query": QUERY, "documents": ["a text", document]}),
        };
        let (code, answer) = server.post(endpoint, &body);
        assert_eq!(code, status, "{answer}");
        let message = answer.to_string();
        for part in says {
            assert!(message.contains(part), "{part}: {message}");
        }
    };
    let png = data_uri(&rerank_dir("image").join("red.png"), "application/pdf");
    refused(
        json!({"pdf": png}),
        "/v1/rerank",
        415,
        &["document 1", "not a PDF"],
    );
    refused(
        json!({"pdf": "data:image/png;base64,aGk="}),
        "/v1/rerank",
        415,
        &["application/pdf"],
    );
    refused(
        json!({"pdf": "slide.pdf", "text": "more"}),
        "/v1/rerank",
        400,
        &["only \\\"pdf\\\" and \\\"pages\\\""],
    );
    refused(
        json!({"pdf": "slide.pdf", "pages": "3"}),
        "/v1/rerank",
        422,
        &["document 1", "page 3 does not exist"],
    );
    refused(json!({"pdf": "slide.pdf"}), "/score", 400, &["/v1/rerank"]);
    server.stop();
}
