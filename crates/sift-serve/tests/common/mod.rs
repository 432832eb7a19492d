//! The server of the integration tests: `sift serve`'s library on 127.0.0.1 (a free port) with
//! the golden tiny model, on a runtime of its own, stopped as a Ctrl-C stops it. Shared by
//! `serve.rs` and `connections.rs`; each uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use sift::{RerankOptions, Reranker};
use sift_serve::{ServeOptions, Server};
use sift_tests::{TempDir, downloaded_model};

pub struct TestServer {
    pub address: SocketAddr,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    _model: TempDir,
}

impl TestServer {
    pub fn start(options: ServeOptions) -> Self {
        Self::start_with(options, RerankOptions::default())
    }

    pub fn start_with(options: ServeOptions, model_options: RerankOptions) -> Self {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// GET `path`: its status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let (status, body, _) = self.timed_get(path);
        (status, body)
    }

    /// GET `path` within 10 s: its status, its body and how long the answer took.
    pub fn timed_get(&self, path: &str) -> (u16, String, Duration) {
        let started = Instant::now();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let (status, body) = match agent.get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        };
        (status, body, started.elapsed())
    }

    /// A metric's value from /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Shuts the server down (if not begun already) and waits until it has stopped; how long
    /// that took.
    pub fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.thread.take().unwrap().join().unwrap();
        started.elapsed()
    }
}
