//! The `sift` command from the outside: requests made of files in, the reference's scores out;
//! the quick form, batches, the Hugging Face cache, and every kind of bad input a user can give.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sift_tests::{RERANK_CASES, RerankCase, TempDir, downloaded_model, golden_dir};

fn sift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "sift failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn rerank_prints_the_reference_scores_best_first() {
    let model = downloaded_model();
    for name in RERANK_CASES {
        let case = RerankCase::load(name);
        let max_length = case.max_length.to_string();
        let out = stdout_json(&sift(&[
            "rerank",
            "--model",
            path(model.path()),
            "--max-length",
            &max_length,
            path(&case.request_path()),
        ]));
        let results = out["results"].as_array().unwrap();
        assert_eq!(results.len(), case.documents.len());
        let scores: Vec<f64> = results
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "{name}: not sorted: {scores:?}"
        );
        for result in results {
            let index = result["index"].as_u64().unwrap() as usize;
            let expected = case.documents[index].score;
            let score = result["score"].as_f64().unwrap();
            assert!(
                (score - expected).abs() <= 1e-5,
                "{name} document {index}: {score} vs {expected}"
            );
        }
    }
}

#[test]
fn top_n_and_stdin() {
    let model = downloaded_model();
    let case = RerankCase::load("image");
    let request = std::fs::read_to_string(case.request_path()).unwrap();
    // Relative image paths resolve against the working directory when the request is on stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["rerank", "--model", path(model.path()), "--top-n", "2", "-"])
        .current_dir(&case.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = stdout_json(&child.wait_with_output().unwrap());
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let best = case
        .documents
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
        .unwrap()
        .0;
    assert_eq!(results[0]["index"].as_u64().unwrap() as usize, best);
}

#[test]
fn the_quick_form_prints_a_table_of_files_and_texts() {
    let model = downloaded_model();
    let image = golden_dir().join("rerank/image/red.png");
    let out = sift(&[
        "rerank",
        "--model",
        path(model.path()),
        "--query",
        "a red painting",
        path(&image),
        "a text about paintings",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("rank  score   document\n"), "{table}");
    assert!(
        table.contains("red.png") && table.contains("a text about paintings"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn the_quick_form_takes_a_video_file() {
    let model = downloaded_model();
    let clip = golden_dir().join("video/clips/one_second.mp4");
    let out = sift(&[
        "rerank",
        "--model",
        path(model.path()),
        "--query",
        "a square",
        path(&clip),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("one_second.mp4"), "{table}");
}

#[test]
fn quantize_writes_a_checked_four_bit_directory() {
    let model = downloaded_model();
    let out_dir = TempDir::new().unwrap();
    let target = out_dir.path().join("q4");
    let out = sift(&[
        "quantize",
        "--model",
        path(model.path()),
        "--out",
        path(&target),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("in Q4") && summary.contains("1 shard"),
        "{summary}"
    );
    sift::quantize::QuantizedModel::open(&target)
        .unwrap()
        .verify()
        .unwrap();
    // A model directory without weights is refused with the reason.
    let empty = TempDir::new().unwrap();
    std::fs::copy(
        model.path().join("tokenizer.json"),
        empty.path().join("tokenizer.json"),
    )
    .unwrap();
    let out = sift(&[
        "quantize",
        "--model",
        path(empty.path()),
        "--out",
        path(&target),
    ]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && err.contains("model.safetensors"),
        "{err}"
    );
}

/// `sift rerank --batch` over `batch` (JSON Lines): its result lines.
fn run_batch(model: &Path, batch: &str) -> Vec<Value> {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("requests.jsonl");
    std::fs::write(&file, batch).unwrap();
    let out = sift(&["rerank", "--model", path(model), "--batch", path(&file)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_batch_streams_one_line_per_request_and_survives_bad_lines() {
    let model = downloaded_model();
    let text_request = std::fs::read_to_string(RerankCase::load("text").request_path()).unwrap();
    let one_line: Value = serde_json::from_str(&text_request).unwrap();
    let batch = format!("{one_line}\n{{\"query\": 1}}\n\n{one_line}\n");
    let lines = run_batch(model.path(), &batch);
    // Numbered by input line: the blank third line counts but gives no result.
    let numbers: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 4]);
    assert_eq!(lines[0]["results"], lines[2]["results"]);
    assert_eq!(lines[0]["results"].as_array().unwrap().len(), 6);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("request 2:"),
        "{}",
        lines[1]
    );
}

/// A request for every frame of a 36,000-frame video: that document gets a named error from the
/// file's header, the other document is scored, the batch goes on, and no `sift` process of this
/// test binary peaks over 1 GB (decoding the sample would take tens of gigabytes).
#[cfg(feature = "video")]
#[test]
fn a_video_sample_over_the_token_limit_fails_alone_before_decoding() {
    let model = downloaded_model();
    let clip = golden_dir().join("video/bad/ten_hours.mp4");
    let long = serde_json::json!({
        "query": {"text": "a clock"},
        "documents": [{"video": {"path": path(&clip), "fps": 1.0, "max_frames": 100000}},
                      {"text": "a clock on a wall"}],
    });
    let short = serde_json::json!({"query": {"text": "a clock"}, "documents": [{"text": "time"}]});
    let lines = run_batch(model.path(), &format!("{long}\n{short}\n"));
    let first = lines[0]["results"].as_array().unwrap();
    assert_eq!(first[0]["index"], 1);
    assert!(first[0]["score"].is_number());
    let error = first[1]["error"].as_str().unwrap();
    assert!(
        error.contains("sampling 36000 frames") && error.contains("over the limit of 32768"),
        "{error}"
    );
    assert!(lines[1]["results"][0]["score"].is_number());
    // The largest resident set of any child this process has waited for (Linux: kilobytes).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    assert!(
        usage.ru_maxrss < 1_000_000,
        "a sift process peaked at {} kB",
        usage.ru_maxrss
    );
}

/// `sift serve` answers a request with `sift rerank`'s scores, and SIGTERM stops it cleanly.
#[test]
fn serve_answers_with_the_scores_of_rerank_and_stops_on_sigterm() {
    let model = downloaded_model();
    let request_path = RerankCase::load("text").request_path();
    let expected = stdout_json(&sift(&[
        "rerank",
        "--model",
        path(model.path()),
        path(&request_path),
    ]));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let server = Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["serve", "--model", path(model.path()), "--port", &port])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while ureq::get(&format!("{base}/health")).call().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "sift serve never answered /health"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The request file's documents are texts: the API takes them as they are.
    let request: Value =
        serde_json::from_str(&std::fs::read_to_string(&request_path).unwrap()).unwrap();
    let body = serde_json::json!({"query": request["query"], "documents": request["documents"]});
    let answer: Value = serde_json::from_str(
        &ureq::post(&format!("{base}/v1/rerank"))
            .send_string(&body.to_string())
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let served: Vec<(u64, f64)> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["relevance_score"].as_f64().unwrap(),
            )
        })
        .collect();
    let printed: Vec<(u64, f64)> = expected["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["score"].as_f64().unwrap()))
        .collect();
    assert_eq!(served, printed);
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("listening on http://127.0.0.1:") && log.contains("shut down"),
        "{log}"
    );
}

/// `--model Qwen/...` finds a model already in the Hugging Face cache, with the hub offline.
#[test]
fn a_hub_id_resolves_through_a_prefilled_cache_offline() {
    let model = downloaded_model();
    let home = TempDir::new().unwrap();
    let repo = home.path().join("hub/models--Qwen--Qwen3-VL-Reranker-2B");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for entry in std::fs::read_dir(model.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
    let case = RerankCase::load("text");
    let run = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_sift"))
            .args(["rerank", "--model", id, path(&case.request_path())])
            .env("HF_HOME", home.path())
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let out = stdout_json(&run("Qwen/Qwen3-VL-Reranker-2B"));
    assert_eq!(
        out["results"].as_array().unwrap().len(),
        case.documents.len()
    );
    let missing = run("Qwen/Qwen3-VL-Reranker-8B");
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("not complete in the Hugging Face cache")
            && stderr.contains("HF_HUB_OFFLINE"),
        "{stderr}"
    );
}

#[test]
fn bad_documents_are_reported_last_and_the_rest_still_scored() {
    let model = downloaded_model();
    let bad = golden_dir().join("bad_inputs");
    let dir = TempDir::new().unwrap();
    let request = serde_json::json!({
        "query": {"text": "anything"},
        "documents": [
            {"image": path(&bad.join("corrupt.jpg"))},
            {"text": "fine"},
            {"image": path(&bad.join("bomb_30000x30000.png"))},
            {"image": "does-not-exist.png"},
        ]
    });
    let file = dir.path().join("request.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let out = stdout_json(&sift(&[
        "rerank",
        "--model",
        path(model.path()),
        path(&file),
    ]));
    let results = out["results"].as_array().unwrap();
    assert_eq!(results[0]["index"], 1);
    assert!(results[0]["score"].is_f64());
    let failed: Vec<u64> = results[1..]
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [0, 2, 3]);
    for r in &results[1..] {
        assert!(
            r["score"].is_null() && r["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{r}"
        );
    }
    assert!(
        results[3]["error"]
            .as_str()
            .unwrap()
            .contains("does-not-exist.png")
    );
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let model = downloaded_model();
    let dir = TempDir::new().unwrap();
    let latin1 = golden_dir().join("bad_inputs/latin1_request.json");
    let out = sift(&["rerank", "--model", path(model.path()), path(&latin1)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));

    let malformed = dir.path().join("malformed.json");
    std::fs::write(
        &malformed,
        r#"{"query": {"text": "q"}, "documents": [{"text": "a"}"#,
    )
    .unwrap();
    let out = sift(&["rerank", "--model", path(model.path()), path(&malformed)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));

    let out = sift(&[
        "rerank",
        "--model",
        path(&dir.path().join("no-model")),
        path(&malformed),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such directory"));
}

/// A PDF is a document per page: in the quick form each page gets its row, named by file and
/// page; in a request file each result names its file and page, and a PDF that cannot be
/// opened is its document's error alone.
#[test]
fn pdf_pages_are_ranked_as_documents() {
    let model = downloaded_model();
    let pdfs = golden_dir().join("pdf");
    let report = pdfs.join("report.pdf");
    let out = sift(&[
        "rerank",
        "--model",
        path(model.path()),
        "--query",
        "quarterly revenue",
        path(&report),
        "a text",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in 1..=4 {
        assert!(
            table.contains(&format!("report.pdf · page {page}")),
            "{table}"
        );
    }
    assert_eq!(table.lines().count(), 1 + 4 + 1, "{table}");

    let dir = TempDir::new().unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(
        &request,
        serde_json::json!({
            "query": {"text": "quarterly revenue"},
            "documents": [{"pdf": path(&report), "pages": "2-3"}, {"pdf": path(&pdfs.join("encrypted.pdf"))}],
        })
        .to_string(),
    )
    .unwrap();
    let out = stdout_json(&sift(&[
        "rerank",
        "--model",
        path(model.path()),
        path(&request),
    ]));
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let pages: Vec<Value> = results[..2].iter().map(|r| r["page"].clone()).collect();
    assert!(
        pages.contains(&2.into()) && pages.contains(&3.into()),
        "{out}"
    );
    assert_eq!(results[0]["pdf"], path(&report));
    let encrypted = &results[2];
    assert!(
        encrypted["score"].is_null() && encrypted.get("page").is_none(),
        "{out}"
    );
    assert!(
        encrypted["error"]
            .as_str()
            .unwrap()
            .contains("protected by a password"),
        "{out}"
    );
}

/// `--memory-budget` takes sizes as people write them; a budget under the limits' worst case
/// refuses to load, naming the flags to change, and a size that is not one says how to write it.
#[test]
fn a_memory_budget_below_the_limits_is_refused_by_name() {
    let model = downloaded_model();
    let case = RerankCase::load("text");
    let run = |budget: &str| {
        sift(&[
            "rerank",
            "--model",
            path(model.path()),
            "--memory-budget",
            budget,
            path(&case.request_path()),
        ])
    };
    let out = run("1GiB");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("over the memory budget of 1.0 GiB")
            && stderr.contains("--max-image-pixels"),
        "{stderr}"
    );
    let out = run("lots");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("such as 3GiB"));
    stdout_json(&run("4 GiB"));
}

/// `sift bench` on a model directory: one measurement per workload and document count, each
/// with the prompt length of the workload (timings themselves are not checked: they are what
/// the command reports, not what a test can assert).
#[test]
fn bench_measures_each_workload_and_document_count() {
    let model = downloaded_model();
    let output = sift(&[
        "bench",
        "--model",
        path(model.path()),
        "--device",
        "cpu",
        "--workloads",
        "text,image",
        "--documents",
        "1,3",
        "--rounds",
        "1",
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let shape: Vec<(&str, u64, u64)> = rows
        .iter()
        .map(|r| {
            assert!(r["ms_per_pair"].as_f64().unwrap() > 0.0, "{r}");
            (
                r["workload"].as_str().unwrap(),
                r["documents"].as_u64().unwrap(),
                r["tokens_per_pair"].as_u64().unwrap(),
            )
        })
        .collect();
    // The image is 1024×768: 768 visual tokens in a prompt of 850.
    assert_eq!(
        shape,
        [
            ("text", 1, 342),
            ("text", 3, 342),
            ("image", 1, 850),
            ("image", 3, 850)
        ]
    );
}
