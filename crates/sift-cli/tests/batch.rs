//! `sift rerank --batch` loses nothing: requests are numbered by their input line and carry
//! their id, stdin is scored line by line as it arrives, a stopped batch resumes where it
//! stopped, Ctrl-C finishes the request in progress, and an over-long line is its own error.
//! Outside a batch, Ctrl-C says that the request was interrupted.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sift_tests::{TempDir, downloaded_model};

/// Longer than any step of these tests takes on 2 cores, model loading included.
const PATIENCE: Duration = Duration::from_secs(180);

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `sift rerank --model MODEL --batch ARGS...`, run to its end.
fn batch(model: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["rerank", "--model", path(model), "--batch"])
        .args(args)
        .output()
        .unwrap()
}

/// Writes `requests` to DIR/requests.jsonl and runs the batch over it to a successful end: the
/// file and the result lines.
fn batch_over(model: &Path, dir: &Path, requests: &str) -> (PathBuf, Vec<Value>) {
    let input = dir.join("requests.jsonl");
    std::fs::write(&input, requests).unwrap();
    let out = batch(model, &[path(&input)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (input, parse_lines(&out.stdout))
}

/// `sift rerank --model MODEL --batch ARGS...`, started with piped stdin, stdout and stderr.
fn start_batch(model: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["rerank", "--model", path(model), "--batch"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Result lines parsed; each must end in `\n`.
fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "a partial last line: {}",
        String::from_utf8_lossy(bytes)
    );
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The same documents in the same order with the same scores (within 1e-5: two processes).
fn assert_same_scores(a: &Value, b: &Value) {
    let scores = |v: &Value| -> Vec<(u64, f64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["index"].as_u64().unwrap(), r["score"].as_f64().unwrap()))
            .collect()
    };
    let (a, b) = (scores(a), scores(b));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x.0 == y.0 && (x.1 - y.1).abs() <= 1e-5, "{a:?} vs {b:?}");
    }
}

fn line_numbers(results: &[Value]) -> Vec<u64> {
    results
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect()
}

/// Every line the child writes, `\n` included, as it comes (a partial last line too).
fn stdout_lines(stdout: ChildStdout) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap() == 0 || sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn next_line(lines: &Receiver<Vec<u8>>, child: &mut Child) -> Value {
    match lines.recv_timeout(PATIENCE) {
        Ok(line) => serde_json::from_slice(&line).unwrap(),
        Err(e) => {
            let _ = child.kill();
            panic!("no result line came: {e}");
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Waits for the child to exit, killing it (and failing) if it does not within PATIENCE.
fn wait_for(child: &mut Child) -> (ExitStatus, String) {
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sift did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

fn request(id: Option<Value>, documents: usize) -> Value {
    let mut request = json!({
        "query": {"text": "a red painting"},
        "documents": (0..documents)
            .map(|i| json!({"text": format!("document {i} about paintings")}))
            .collect::<Vec<_>>(),
    });
    if let Some(id) = id {
        request["id"] = id;
    }
    request
}

/// A request of `documents` documents of about 1,000 tokens each: 24 take about a second on
/// 2 cores.
fn slow_request(id: u64, documents: usize) -> Value {
    let text: Vec<String> = (0..200).map(|j| format!("word{j}")).collect();
    json!({
        "id": id,
        "query": {"text": "a red painting"},
        "documents": (0..documents).map(|i| json!({"text": format!("{i} {}", text.join(" "))}))
            .collect::<Vec<_>>(),
    })
}

#[test]
fn blank_lines_keep_the_numbering_and_ids_are_echoed() {
    let model = downloaded_model();
    let dir = TempDir::new().unwrap();
    let lines = [
        request(Some(json!("first")), 2).to_string(),
        String::new(),
        r#"{"query": 1, "id": 3}"#.to_string(),
        "  \r".to_string(),
        request(None, 2).to_string(),
        request(Some(json!({"not": "a string"})), 2).to_string(),
        format!("{}\r", request(Some(json!(7.5)), 1)),
    ];
    let (_, results) = batch_over(model.path(), dir.path(), &lines.join("\n"));
    assert_eq!(line_numbers(&results), [1, 3, 5, 6, 7]);
    let ids: Vec<&Value> = results.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        ids,
        [
            &json!("first"),
            &json!(3),
            &Value::Null,
            &Value::Null,
            &json!(7.5)
        ]
    );
    assert_eq!(results[0]["results"], results[2]["results"]);
    assert_eq!(results[0]["results"].as_array().unwrap().len(), 2);
    assert_eq!(results[4]["results"].as_array().unwrap().len(), 1);
    let error = |i: usize| results[i]["error"].as_str().unwrap().to_string();
    assert!(error(1).starts_with("request 3: "), "{}", error(1));
    assert!(
        error(3).starts_with("request 6: \"id\" must be a string or a number"),
        "{}",
        error(3)
    );
}

/// `--batch -` answers each line as it arrives: the result of a line is read while stdin is
/// still open (a reader that waited for the end of stdin would never answer). SIGTERM while
/// it waits for the next line stops it with 143 and says how to resume.
#[test]
fn stdin_is_scored_line_by_line_and_sigterm_stops_it() {
    let model = downloaded_model();
    let mut child = start_batch(model.path(), &["-"]);
    let mut stdin = child.stdin.take().unwrap();
    let lines = stdout_lines(child.stdout.take().unwrap());

    writeln!(stdin, "{}", request(Some(json!("one")), 2)).unwrap();
    stdin.flush().unwrap();
    let first = next_line(&lines, &mut child);
    assert_eq!((&first["line"], &first["id"]), (&json!(1), &json!("one")));
    assert_eq!(first["results"].as_array().unwrap().len(), 2);

    write!(stdin, "\n{}\n", request(Some(json!(3)), 1)).unwrap();
    stdin.flush().unwrap();
    let third = next_line(&lines, &mut child);
    assert_eq!((&third["line"], &third["id"]), (&json!(3), &json!(3)));

    signal(&child, libc::SIGTERM);
    let (status, stderr) = wait_for(&mut child);
    drop(stdin);
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("stopped by SIGTERM: 2 requests done")
            && stderr.contains("up to 3")
            && stderr.contains("--resume"),
        "{stderr}"
    );
    assert!(lines.recv().is_err(), "a result after the stop");
}

/// A results file with two whole lines and a partial third: `--resume` cuts the partial line,
/// keeps the whole ones as they are (not scored again), and appends the rest, printing nothing.
#[test]
fn resume_skips_the_lines_done_and_drops_a_partial_last_line() {
    let model = downloaded_model();
    let dir = TempDir::new().unwrap();
    let requests: Vec<String> = (1..=3)
        .map(|i| request(Some(json!(i)), i).to_string())
        .collect();
    let (input, expected) = batch_over(
        model.path(),
        dir.path(),
        &format!(
            "{}\n{}\n{}\n\n{}\n",
            requests[0], requests[1], requests[2], requests[0]
        ),
    );
    assert_eq!(line_numbers(&expected), [1, 2, 3, 5]);

    // Line 1 as a marker: were it scored again, its score would be back.
    let mut marked = expected[0].clone();
    marked["results"][0]["score"] = json!(-1.0);
    let third = expected[2].to_string();
    let results_file = dir.path().join("results.jsonl");
    std::fs::write(
        &results_file,
        format!("{marked}\n{}\n{}", expected[1], &third[..third.len() / 2]),
    )
    .unwrap();
    let resumed = batch(
        model.path(),
        &[path(&input), "--resume", path(&results_file)],
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(resumed.stdout.is_empty());
    assert!(stderr.contains("dropped its last line"), "{stderr}");
    let results = parse_lines(&std::fs::read(&results_file).unwrap());
    assert_eq!(line_numbers(&results), [1, 2, 3, 5]);
    assert_eq!(results[0], marked);
    for i in 1..4 {
        assert_eq!(results[i]["id"], expected[i]["id"]);
        assert_same_scores(&results[i]["results"], &expected[i]["results"]);
    }

    // Run again on a finished batch: nothing is added.
    let before = std::fs::read(&results_file).unwrap();
    let again = batch(
        model.path(),
        &[path(&input), "--resume", path(&results_file)],
    );
    assert!(again.status.success());
    assert_eq!(std::fs::read(&results_file).unwrap(), before);

    // A file that is not a batch's results (here the input) is refused and left as it was.
    let wrong = batch(model.path(), &[path(&input), "--resume", path(&input)]);
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("is not a result of"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&input).unwrap().lines().count(), 5);
}

/// Ctrl-C while the second of three slow requests is scored: it is finished and written, the
/// batch stops with 130 and names --resume, and every line written is whole. Resuming from
/// those lines scores the third request only.
#[test]
fn sigint_mid_batch_finishes_the_request_in_progress() {
    let model = downloaded_model();
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("requests.jsonl");
    let requests: Vec<String> = (1..=3).map(|i| slow_request(i, 24).to_string()).collect();
    std::fs::write(&input, requests.join("\n")).unwrap();
    let mut child = start_batch(model.path(), &[path(&input)]);
    let lines = stdout_lines(child.stdout.take().unwrap());
    let first = next_line(&lines, &mut child);
    assert_eq!(first["line"], 1);
    // The second request (about a second) is under way.
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    let (status, stderr) = wait_for(&mut child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    let rest: Vec<u8> = lines.iter().flatten().collect();
    let mut written = first.to_string().into_bytes();
    written.push(b'\n');
    written.extend_from_slice(&rest);
    let results = parse_lines(&written);
    assert_eq!(line_numbers(&results), [1, 2], "{stderr}");
    assert_eq!(results[1]["results"].as_array().unwrap().len(), 24);
    assert!(
        stderr.contains("SIGINT: finishing the request on line 2")
            && stderr.contains("stopped by SIGINT: 2 requests done")
            && stderr.contains("--resume"),
        "{stderr}"
    );

    let results_file = dir.path().join("results.jsonl");
    std::fs::write(&results_file, &written).unwrap();
    let resumed = batch(
        model.path(),
        &[path(&input), "--resume", path(&results_file)],
    );
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let results = parse_lines(&std::fs::read(&results_file).unwrap());
    assert_eq!(line_numbers(&results), [1, 2, 3]);
    assert_eq!(results[2]["id"], 3);
}

/// A line over 64 MiB (a request whose id alone is 64 MiB: valid, and quick to score were it
/// read) is that request's error, and the next line is still scored.
#[test]
fn an_over_long_line_is_its_own_error() {
    let model = downloaded_model();
    let dir = TempDir::new().unwrap();
    let long = request(Some(json!("x".repeat(64 << 20))), 1).to_string();
    let short = request(Some(json!("short")), 1).to_string();
    let (_, results) = batch_over(
        model.path(),
        dir.path(),
        &format!("{short}\n{long}\n{short}\n"),
    );
    assert_eq!(line_numbers(&results), [1, 2, 3]);
    let error = results[1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("request 2: the line is longer than 64 MiB"),
        "{error}"
    );
    assert_eq!(results[2]["id"], "short");
    assert!(results[2]["results"][0]["score"].is_number());
}

/// Ctrl-C during a single request (96 slow documents, several seconds) ends it with 130 and a
/// line saying so, and prints no partial result.
#[test]
fn sigint_during_one_request_says_it_was_interrupted() {
    let model = downloaded_model();
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("request.json");
    let mut request = slow_request(1, 96);
    request.as_object_mut().unwrap().remove("id");
    std::fs::write(&file, request.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["rerank", "--model", path(model.path()), path(&file)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGINT);
    let (status, stderr) = wait_for(&mut child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(stdout.is_empty(), "{}", String::from_utf8_lossy(&stdout));
}
