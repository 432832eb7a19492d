//! `sift serve` in front of clients that misbehave at the connection: slow headers, too many
//! connections, bodies that stall, a shutdown while a request is half sent, a request that runs
//! past its deadline. Each test starts the server on 127.0.0.1 with the golden tiny model and
//! checks that other clients are still served, and that memory and time stay bounded. The tests
//! run one at a time, so that their timings and the process's memory are their own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use sift_serve::{ConnectionLimits, Limits, ServeOptions};

mod common;
use common::TestServer;

/// One test at a time: each measures time and the process's memory.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Other clients are answered within a second while these many connections are open.
fn assert_others_served(server: &TestServer, why: &str) {
    for _ in 0..3 {
        let (status, _, took) = server.timed_get("/health");
        assert_eq!(status, 200, "{why}");
        assert!(
            took < Duration::from_secs(1),
            "{why}: /health took {took:?}"
        );
    }
}

/// Room for this test's connections: the soft open-file limit raised to the hard one.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// What a connection reads within `wait`: the server's answer, or "" if it closed or reset.
fn answer_of(stream: &mut TcpStream, wait: Duration) -> String {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// 1,000 connections that send part of a header and stall are all open while other clients are
/// served within a second, and are closed once `--header-timeout` passes.
#[test]
fn slow_headers_never_crowd_out_other_clients_and_are_cut_off() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    raise_open_file_limit();
    let server = TestServer::start(ServeOptions {
        connections: ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            ..ConnectionLimits::default()
        },
        ..ServeOptions::default()
    });
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut stream = TcpStream::connect(server.address).unwrap();
            stream
                .write_all(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the test opened its connections too slowly to check the timeout: {:?}",
        started.elapsed()
    );
    // (A loaded machine may delay a connect by a SYN retry of a second or more.)
    assert_others_served(&server, "1,000 slow connections open");
    assert!(server.metric("sift_open_connections") >= 1000.0);
    // Each is closed by the server once its header has taken 10 s (read: end of file or reset);
    // 30 s leaves room for a loaded 2-core machine to get round 1,000 closings, and is still
    // far short of a connection held for ever.
    for stream in &mut slow {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        let answer = answer_of(stream, left.max(Duration::from_millis(1)));
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "slow connections were held past --header-timeout"
    );
    // This request's connection, and perhaps the last one's, still closing.
    assert!(server.metric("sift_open_connections") <= 2.0);
    server.stop();
}

/// Past `--max-connections`, a new connection is answered 503 at once and closed; once
/// connections close, new ones are served again.
#[test]
fn connections_over_the_cap_are_refused_at_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = TestServer::start(ServeOptions {
        connections: ConnectionLimits {
            max_connections: 8,
            ..ConnectionLimits::default()
        },
        ..ServeOptions::default()
    });
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    // Let the server take them all before the one too many.
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut extra = TcpStream::connect(server.address).unwrap();
    let answer = answer_of(&mut extra, Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("--max-connections"), "{answer}");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ok = ureq::get(&server.url("/health")).call().is_ok();
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(server.metric("sift_connections_refused_total") >= 1.0);
    server.stop();
}

/// 100 clients declare 64 MiB bodies, send up to 60 MB and stall: the bodies held at once stay
/// within `--max-body-bytes-total` (the others are refused with 503), resident memory stays
/// under 1 GB, other clients are served, and the stalled ones get 408 at `--body-timeout`.
#[test]
fn stalled_bodies_are_bounded_in_memory_and_time() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    raise_open_file_limit();
    let body_timeout = Duration::from_secs(6);
    let server = TestServer::start(ServeOptions {
        connections: ConnectionLimits {
            body_timeout,
            ..ConnectionLimits::default()
        },
        ..ServeOptions::default()
    });
    let declared = Limits::default().max_body_bytes;
    let chunk = vec![b' '; 1 << 20];
    let written_whole = AtomicUsize::new(0);
    let done_writing = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let started = Instant::now();
    let answers: Vec<String> = thread::scope(|scope| {
        let clients: Vec<_> = (0..100)
            .map(|_| {
                let (chunk, written_whole, done_writing) = (&chunk, &written_whole, &done_writing);
                scope.spawn(move || {
                    let mut stream = TcpStream::connect(server.address).unwrap();
                    stream
                        .set_write_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    let head = format!(
                        "POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                         Content-Length: {declared}\r\n\r\n"
                    );
                    let mut sent = stream.write_all(head.as_bytes()).is_ok();
                    let mut bytes = 0;
                    while sent && bytes < 60_000_000 {
                        sent = stream.write_all(chunk).is_ok();
                        bytes += chunk.len();
                    }
                    if sent {
                        written_whole.fetch_add(1, Ordering::Relaxed);
                    }
                    done_writing.fetch_add(1, Ordering::Relaxed);
                    answer_of(&mut stream, body_timeout + Duration::from_secs(10))
                })
            })
            .collect();
        while done_writing.load(Ordering::Relaxed) < 100 {
            peak.fetch_max(resident_bytes() as usize, Ordering::Relaxed);
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "clients never stalled"
            );
            thread::sleep(Duration::from_millis(20));
        }
        peak.fetch_max(resident_bytes() as usize, Ordering::Relaxed);
        assert!(
            started.elapsed() < body_timeout,
            "sending took {:?}, past the body timeout, so the test shows nothing",
            started.elapsed()
        );
        assert_others_served(&server, "100 clients stalled mid-body");
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let peak = peak.into_inner();
    assert!(peak < 1 << 30, "resident memory reached {peak} bytes");
    let held = written_whole.into_inner();
    let budget = ConnectionLimits::default().max_body_bytes_total / declared;
    assert!(
        (1..=budget).contains(&held),
        "{held} bodies were taken whole; the budget holds {budget}"
    );
    let timed_out = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 408"))
        .count();
    assert_eq!(timed_out, held, "{answers:?}");
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .collect::<Vec<_>>();
    if let Some(answer) = refused.first() {
        assert!(answer.contains("--max-body-bytes-total"), "{answer}");
    }
    server.stop();
}

/// A shutdown while a client holds a half-sent request ends within `--shutdown-timeout`.
#[test]
fn shutdown_ends_within_its_deadline_despite_a_half_sent_request() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = TestServer::start(ServeOptions {
        connections: ConnectionLimits {
            shutdown_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        ..ServeOptions::default()
    });
    let mut half_sent = TcpStream::connect(server.address).unwrap();
    half_sent
        .write_all(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"query\"")
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let took = server.stop();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    drop(half_sent);
}

/// A request still scoring at `--request-timeout` gets 504 naming the flag, and its scoring
/// stops: the documents scored by then and those left add up to the request's.
#[test]
fn a_request_past_its_deadline_gets_504_and_its_scoring_stops() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = TestServer::start(ServeOptions {
        limits: Limits {
            max_documents: 10_000,
            ..Limits::default()
        },
        connections: ConnectionLimits {
            request_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        ..ServeOptions::default()
    });
    let documents: Vec<String> = (0..10_000).map(|i| format!("document {i}")).collect();
    let started = Instant::now();
    let result = ureq::post(&server.url("/v1/rerank"))
        .send_string(&json!({"query": "a red painting", "documents": documents}).to_string());
    let Err(ureq::Error::Status(504, response)) = result else {
        panic!("a request past its deadline must answer 504");
    };
    assert!(started.elapsed() < Duration::from_secs(3));
    let message = response.into_string().unwrap();
    assert!(message.contains("--request-timeout"), "{message}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let accounted =
        || server.metric("sift_documents_total") + server.metric("sift_documents_cancelled_total");
    while accounted() < 10_000.0 {
        assert!(Instant::now() < deadline, "the scoring never stopped");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(accounted(), 10_000.0);
    assert!(server.metric("sift_documents_cancelled_total") > 0.0);
    server.stop();
}
