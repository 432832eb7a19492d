//! Prometheus metrics at `GET /metrics`: requests, documents, tokens, latency, queue depth,
//! connections, and the process's own (CPU, memory, open files) on Linux.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub documents: IntCounter,
    pub documents_cancelled: IntCounter,
    pub tokens: IntCounter,
    pub queue_depth: IntGauge,
    pub scoring: IntGauge,
    pub open_connections: IntGauge,
    pub connections_refused: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "sift_requests_total",
                "HTTP requests answered, by endpoint and status",
            ),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "sift_request_duration_seconds",
                "Time from a request's arrival to its answer, by endpoint",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["endpoint"],
        )
        .expect("valid metric");
        let documents =
            IntCounter::new("sift_documents_total", "Documents scored").expect("valid metric");
        let documents_cancelled = IntCounter::new(
            "sift_documents_cancelled_total",
            "Documents not scored because their client went away",
        )
        .expect("valid metric");
        let tokens = IntCounter::new(
            "sift_tokens_total",
            "Prompt tokens of the scored (query, document) pairs",
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new(
            "sift_queue_depth",
            "Requests waiting for the model (not counting the one being scored)",
        )
        .expect("valid metric");
        let scoring = IntGauge::new("sift_scoring", "1 while the model scores a request")
            .expect("valid metric");
        let open_connections =
            IntGauge::new("sift_open_connections", "HTTP connections open").expect("valid metric");
        let connections_refused = IntCounter::new(
            "sift_connections_refused_total",
            "Connections answered 503 and closed because --max-connections were open",
        )
        .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(documents.clone()),
            Box::new(documents_cancelled.clone()),
            Box::new(tokens.clone()),
            Box::new(queue_depth.clone()),
            Box::new(scoring.clone()),
            Box::new(open_connections.clone()),
            Box::new(connections_refused.clone()),
        ] {
            registry.register(metric).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metric names are unique");
        Self {
            registry,
            requests,
            latency,
            documents,
            documents_cancelled,
            tokens,
            queue_depth,
            scoring,
            open_connections,
            connections_refused,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("metrics encode to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
