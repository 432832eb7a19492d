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
use sift_serve::{Limits, MediaPolicy, ServeOptions, Server};
use sift_tests::{TempDir, downloaded_model, golden_dir};

struct TestServer {
    address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    _model: TempDir,
}

impl TestServer {
    fn start(options: ServeOptions) -> Self {
        Self::start_with(options, RerankOptions::default())
    }

    fn start_with(options: ServeOptions, model_options: RerankOptions) -> Self {
        let model = downloaded_model();
        let reranker = Reranker::load(model.path(), options.limits.apply(model_options)).unwrap();
        let server = Server::new(reranker, options).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            runtime
                .block_on(sift_serve::serve(listener, server, async {
                    let _ = stop.await;
                }))
                .unwrap();
        });
        Self {
            address,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _model: model,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

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

    fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// A metric's value from /metrics.
    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    fn wait_for_metric(&self, name: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.metric(name) < at_least {
            assert!(Instant::now() < deadline, "{name} never reached {at_least}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Shuts the server down (if not begun already) and waits until it has stopped.
    fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.thread.take().unwrap().join().unwrap();
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
