//! `sift serve`: a rerank HTTP API over the sift library, in the shapes retrieval pipelines
//! already call (Cohere, Jina, vLLM, SGLang, Hugging Face TEI), so a client changes only its
//! base URL. The model is loaded once and scores one request at a time on its own thread
//! ([`scorer`]); requests wait in a bounded queue.
//!
//! | Endpoint | Shape |
//! |---|---|
//! | `POST /v1/rerank`, `/rerank` | Cohere v1 / Jina / vLLM: `{"query", "documents", "top_n"}` → `{"id", "model", "results", "usage"}` |
//! | `POST /v2/rerank` | Cohere v2: as above, with `meta` |
//! | `POST /rerank` with `texts` | TEI: `{"query", "texts"}` → `[{"index", "score"}]` |
//! | `POST /score` | vLLM: `{"text_1", "text_2"}` → `{"data": [{"index", "score"}]}` |
//! | `GET /health`, `/v1/models`, `/info`, `/metrics` | liveness, the model, TEI's info, Prometheus |

mod api;
mod error;
mod limits;
mod media;
mod metrics;
mod scorer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request as HttpRequest, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sift::{Reranker, VideoSampling};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::ApiError;
pub use limits::{ConnectionLimits, Limits};
pub use media::MediaPolicy;

use api::{RerankBody, ScoreBody, TeiBody, Truncation};
use media::MediaReader;
use metrics::Metrics;
use scorer::Scorer;

/// How the server behaves, besides its model.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model's name in responses and `/v1/models`.
    pub model_name: String,
    pub limits: Limits,
    pub connections: ConnectionLimits,
    pub media: MediaPolicy,
    /// Requests that may wait for the model; more get 503 (`--max-queue`).
    pub max_queue: usize,
    /// Required as `Authorization: Bearer <key>` on every endpoint but `/health`.
    pub api_key: Option<String>,
    /// Origins whose pages may call the server (`--cors-origin`, `*` for any); none, no CORS.
    pub cors_origins: Vec<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            model_name: "sift".into(),
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            media: MediaPolicy::default(),
            max_queue: 64,
            api_key: None,
            cors_origins: Vec::new(),
        }
    }
}

/// A loaded model behind the API.
#[derive(Clone)]
pub struct Server {
    state: Arc<AppState>,
}

struct AppState {
    options: ServeOptions,
    device: String,
    /// The model's settings that the API reports or checks against (`/info`, truncation).
    max_length: usize,
    /// Pixels a PDF page is rendered at (the model's image budget), counted against
    /// `--max-request-pixels` for each page of a request's PDFs.
    page_pixels: u64,
    precision: &'static str,
    scorer: Scorer,
    metrics: Arc<Metrics>,
    /// KiB of request bodies held now, out of `--max-body-bytes-total`.
    body_budget: Arc<Semaphore>,
    cors: Option<CorsLayer>,
    started: u64,
}

/// The request's id: its `X-Request-Id`, or one made when it arrives (its log line, its
/// response's header and its body's `id` carry it).
#[derive(Clone)]
struct RequestId(String);

/// What a request cost, for its log line.
#[derive(Clone, Copy, Default)]
struct Usage {
    documents: usize,
    tokens: usize,
}

/// Semaphore permits count KiB of body, so that a body up to 4 TiB is one `u32` of permits.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl Server {
    /// Starts the model's thread. Fails if the media root is not a readable directory, or the
    /// options contradict each other.
    pub fn new(reranker: Reranker, mut options: ServeOptions) -> Result<Self, String> {
        if let Some(root) = &options.media.root {
            let canonical = root.canonicalize().map_err(|e| {
                format!(
                    "--media-root {}: {e}; give an existing directory",
                    root.display()
                )
            })?;
            if !canonical.is_dir() {
                return Err(format!(
                    "--media-root {} is not a directory",
                    root.display()
                ));
            }
            options.media.root = Some(canonical);
        }
        let total = options.connections.max_body_bytes_total;
        if options.limits.max_body_bytes > total {
            return Err(format!(
                "--max-body-bytes {} is over --max-body-bytes-total {total}, so a body of the \
                 largest size would never be let in; raise --max-body-bytes-total",
                options.limits.max_body_bytes
            ));
        }
        let cors = cors_layer(&options.cors_origins)?;
        let metrics = Arc::new(Metrics::new());
        let device = reranker.device_name().to_string();
        let max_length = reranker.options().max_length;
        let page_pixels = reranker.options().image.max_pixels;
        let precision = match reranker.options().precision {
            sift::Precision::F32 => "float32",
            sift::Precision::F16 => "float16",
        };
        let scorer = Scorer::start(reranker, options.max_queue, metrics.clone());
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Self {
            state: Arc::new(AppState {
                body_budget: Arc::new(Semaphore::new(kib(total) as usize)),
                options,
                device,
                max_length,
                page_pixels,
                precision,
                scorer,
                metrics,
                cors,
                started,
            }),
        })
    }

    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let x_request_id = HeaderName::from_static("x-request-id");
        let router = Router::new()
            .route("/v1/rerank", post(rerank_endpoint::<false>))
            .route("/rerank", post(rerank_or_tei))
            .route("/v2/rerank", post(rerank_endpoint::<true>))
            .route("/score", post(score))
            .route("/v1/score", post(score))
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/info", get(info))
            .route("/metrics", get(metrics_text))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(state.clone(), authorize))
            .layer(middleware::from_fn_with_state(state.clone(), deadline))
            .layer(middleware::from_fn_with_state(state.clone(), observe))
            .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
            .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid));
        // Outermost, so that a browser's preflight is answered before the key is asked for.
        let router = match &state.cors {
            Some(cors) => router.layer(cors.clone()),
            None => router,
        };
        router.with_state(state)
    }
}

/// The CORS layer for `--cors-origin` values (`*` for any origin); none without them.
fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                    format!(
                        "--cors-origin {origin:?} is not a valid origin; give one like \
                         https://app.example.com, or * for any"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            // SDKs send headers of their own (Cohere's X-Fern-*); none grants anything here.
            .allow_headers(tower_http::cors::Any)
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    ))
}

/// Serves until `shutdown` completes, then stops accepting, lets the requests in flight finish
/// within `--shutdown-timeout` and drops those still running (their scoring stops before its
/// next pass).
pub async fn serve(
    listener: TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // axum::serve has no header-read timeout, connection cap or shutdown deadline, so the
    // connections are driven here by hyper's own HTTP/1 builder, which has the first, and a
    // count of open connections for the others.
    let state = &server.state;
    let connections = &state.options.connections;
    let max_connections = connection_room(connections.max_connections);
    let router = server.router();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper starts the header timer when it waits for a request, so it also bounds how long a
    // kept-alive connection may sit idle.
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(connections.header_timeout);
    let (stop, stopping) = tokio::sync::watch::channel(());
    let mut open = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while open.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was taken: the
                    // listener itself is fine, so wait a moment and go on.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.len() >= max_connections {
            state.metrics.connections_refused.inc();
            refuse(&stream, max_connections);
            continue;
        }
        let connection = http.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(router.clone()),
        );
        let mut stopping = stopping.clone();
        let counted = OpenConnection::new(state.metrics.clone());
        open.spawn(async move {
            let _counted = counted;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stop.send(());
    let deadline = connections.shutdown_timeout;
    let finished = tokio::time::timeout(deadline, async {
        while open.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            connections = open.len(),
            "--shutdown-timeout of {}s passed; closing the connections still open",
            deadline.as_secs_f64()
        );
        open.shutdown().await;
    }
    Ok(())
}

/// Counts a connection in `sift_open_connections` while it lives (a task aborted at shutdown
/// included).
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.open_connections.inc();
        Self(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.dec();
    }
}

/// Answers a connection over `--max-connections` with a 503 in one write that never waits, and
/// closes it: the client learns at once, and the server's file descriptors stay bounded.
fn refuse(stream: &tokio::net::TcpStream, max_connections: usize) {
    let body = json!({"error": {
        "message": format!(
            "the server has {max_connections} connections open, its limit \
             (--max-connections); retry after a second, reuse a connection, or run more replicas"
        ),
        "type": "overloaded",
        "code": 503,
    }})
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// File descriptors kept for what is not a connection: the model's files, media, fetches.
const RESERVED_FDS: u64 = 64;

/// The connections the process's open-file limit leaves room for, at most `wanted`; lower than
/// `wanted` (said in the log) where `ulimit -n` is too low, so that `accept` never fails for
/// lack of descriptors.
fn connection_room(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(limit) = limit {
            let room = limit.saturating_sub(RESERVED_FDS).max(1) as usize;
            if room < wanted {
                tracing::warn!(
                    "the open-file limit (ulimit -n) is {limit}, room for {room} connections: \
                     serving at most {room} instead of --max-connections {wanted}; raise the \
                     limit to {} to allow them all",
                    wanted as u64 + RESERVED_FDS
                );
                return room;
            }
        }
    }
    wanted
}

/// Raises the soft open-file limit toward the hard one, as far as `connections` need.
#[cfg(unix)]
fn raise_open_file_limit(connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = connections as u64 + RESERVED_FDS;
    if limit.current.is_some_and(|current| current < wanted) {
        let raised = limit.maximum.map_or(wanted, |max| max.min(wanted));
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            },
        );
    }
}

/// Runs the server at `address` until Ctrl-C or SIGTERM, logging one line per request.
pub fn run(address: SocketAddr, server: Server) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    #[cfg(unix)]
    raise_open_file_limit(server.state.options.connections.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    runtime.block_on(async {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}; choose another --port"))?;
        tracing::info!(
            model = %server.state.options.model_name,
            device = %server.state.device,
            media = %media_sources(&server.state.options.media),
            "listening on http://{address}"
        );
        serve(listener, server, shutdown_signal())
            .await
            .map_err(|e| format!("the server stopped: {e}"))?;
        tracing::info!("shut down");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: no new connections; answering the requests in flight");
}

/// Counts, times and logs each request under its id.
async fn observe(
    State(state): State<Arc<AppState>>,
    mut request: HttpRequest,
    next: Next,
) -> Response {
    let started = Instant::now();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status();
    let usage = response
        .extensions()
        .get::<Usage>()
        .copied()
        .unwrap_or_default();
    let metrics = &state.metrics;
    metrics
        .requests
        .with_label_values(&[endpoint.as_str(), status.as_str()])
        .inc();
    metrics
        .latency
        .with_label_values(&[endpoint.as_str()])
        .observe(seconds);
    tracing::info!(
        id,
        endpoint,
        status = status.as_u16(),
        documents = usage.documents,
        tokens = usage.tokens,
        ms = (seconds * 1000.0).round() as u64,
        "request"
    );
    response
}

/// Answers 504 once a request has taken `--request-timeout`; dropping its handler stops its
/// scoring before the next pass (the documents scored by then count in `sift_documents_total`).
async fn deadline(
    State(state): State<Arc<AppState>>,
    request: HttpRequest,
    next: Next,
) -> Response {
    let limit = state.options.connections.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request took over {}s, the server's limit (--request-timeout), and was \
                 stopped; send fewer or smaller documents per request, or raise the limit",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

async fn authorize(
    State(state): State<Arc<AppState>>,
    request: HttpRequest,
    next: Next,
) -> Response {
    if let Some(key) = &state.options.api_key
        && request.uri().path() != "/health"
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send the header Authorization: Bearer <key> with the \
                 key the server was started with (--api-key)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// A request's body, with its share of `--max-body-bytes-total`, held until it is answered
/// (what is made from the body, its JSON and decoded media, lives as long).
struct ReadBody {
    bytes: Bytes,
    _held: OwnedSemaphorePermit,
}

/// The body, up to the limits, within `--body-timeout`.
async fn read_body(state: &AppState, body: Body) -> Result<ReadBody, ApiError> {
    let limit = state.options.connections.body_timeout;
    tokio::time::timeout(limit, read_body_in_time(state, body))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {}s (--body-timeout); send it \
                     faster, or send fewer documents per request",
                    limit.as_secs_f64()
                ),
            ))
        })
}

async fn read_body_in_time(state: &AppState, mut body: Body) -> Result<ReadBody, ApiError> {
    let limit = state.options.limits.max_body_bytes;
    let declared = axum::body::HttpBody::size_hint(&body).exact();
    // A body whose Content-Length is over the limit is not kept at all; a chunked one is cut
    // where it passes the limit.
    let mut over = declared.is_some_and(|size| size > limit as u64);
    let reserve = |bytes: usize| {
        state
            .body_budget
            .clone()
            .try_acquire_many_owned(kib(bytes))
            .map_err(|_| body_budget_full(state))
    };
    let mut held = reserve(declared.map_or(0, |size| size.min(limit as u64) as usize))?;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    while !over && let Some(data) = next_data(&mut body).await? {
        over = bytes.len() + data.len() > limit;
        if !over {
            if declared.is_none() {
                held.merge(reserve(data.len())?);
            }
            bytes.extend_from_slice(&data);
        }
    }
    if over {
        drop(bytes);
        drain(body).await;
        let size = declared.map_or_else(String::new, |bytes| format!("{bytes} bytes, "));
        return Err(ApiError::too_large(format!(
            "the request body is {size}over the server's limit of {limit} bytes \
             (--max-body-bytes); send fewer or smaller documents per request"
        )));
    }
    Ok(ReadBody {
        bytes: Bytes::from(bytes),
        _held: held,
    })
}

fn body_budget_full(state: &AppState) -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server holds {} bytes of request bodies already, its limit \
                 (--max-body-bytes-total); retry after a second, or run more replicas",
                state.options.connections.max_body_bytes_total
            ),
        )
    }
}

/// The body's next chunk of data, skipping trailers.
async fn next_data(body: &mut Body) -> Result<Option<Bytes>, ApiError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            ApiError::bad_request(format!("the request body could not be read: {error}"))
        })?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Reads and drops what is left of a refused body, up to 64 MiB or 10 seconds: a client still
/// sending would otherwise meet a reset connection instead of reading the 413.
async fn drain(mut body: Body) {
    let cap = 64 << 20;
    let read_rest = async {
        let mut dropped = 0;
        while dropped <= cap
            && let Ok(Some(data)) = next_data(&mut body).await
        {
            dropped += data.len();
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read_rest).await;
}

fn media_reader(state: &AppState) -> MediaReader<'_> {
    MediaReader::new(&state.options.media, &state.options.limits)
}

/// A response carrying its usage for the request's log line.
fn answer(body: Value, usage: Usage) -> Response {
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(usage);
    response
}

/// `/v1/rerank` (Cohere v1, Jina, vLLM) and `/v2/rerank` (Cohere v2): the same request, the
/// response in Cohere v2's shape where `COHERE_V2`.
async fn rerank_endpoint<const COHERE_V2: bool>(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body).await?;
    rerank(&state, &id, api::parse(&body.bytes)?, COHERE_V2).await
}

/// `/rerank` is vLLM's and Jina's alias of `/v1/rerank`, and TEI's endpoint: TEI's body has
/// `texts` where the others have `documents`. TEI's requests get TEI's error shape.
async fn rerank_or_tei(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body).await?;
    let value: Value = api::parse(&body.bytes)?;
    if value.get("texts").is_some() {
        return tei_rerank(&state, value)
            .await
            .map_err(ApiError::in_tei_shape);
    }
    rerank(&state, &id, api::parse_value(value)?, false).await
}

/// The scores of `documents` (named `{label} i` in errors) against one query, each with the
/// document it came from and its page where that document is a PDF (one score per page).
#[allow(clippy::too_many_arguments)]
async fn score_documents(
    state: &AppState,
    query: &Value,
    documents: &[Value],
    label: &str,
    rank_fields: Option<&[String]>,
    instruction: Option<String>,
    sampling: &VideoSampling,
    pdfs: api::Pdfs,
) -> Result<(Vec<sift::Scored>, Vec<(usize, Option<u32>)>), ApiError> {
    api::check_documents(documents.len(), &state.options.limits)?;
    let mut media = media_reader(state);
    let query =
        api::read_item(query, "the query", api::Fields::Query, sampling, &mut media).await?;
    let items = api::read_items(documents, label, rank_fields, sampling, pdfs, &mut media).await?;
    api::check_pages(items.len(), &state.options.limits)?;
    let origins: Vec<(usize, Option<u32>)> = items.iter().map(|i| (i.index, i.page)).collect();
    let indices: Vec<usize> = items.iter().map(|i| i.index).collect();
    let documents = items.into_iter().map(|i| i.content).collect();
    let request = api::request(query, documents, instruction, sampling);
    let mut results = state.scorer.score(vec![request], media.temp_files).await?;
    let scores = api::scores(
        results.remove(0),
        &indices,
        state.options.media.root.as_deref(),
    )?;
    Ok((scores, origins))
}

async fn rerank(
    state: &AppState,
    id: &RequestId,
    body: RerankBody,
    cohere_v2: bool,
) -> Result<Response, ApiError> {
    let sampling = api::sampling(body.fps, body.max_frames)?;
    let top_n = api::top_n(body.top_n)?;
    let truncation = body.truncation(state.max_length)?;
    let pdfs = api::Pdfs::Pages {
        pixels: state.page_pixels,
    };
    let (scores, items) = score_documents(
        state,
        &body.query,
        &body.documents,
        "document",
        body.rank_fields.as_deref(),
        body.instruction,
        &sampling,
        pdfs,
    )
    .await?;
    truncation.check(&scores, "document")?;
    let model = body.model.as_deref().unwrap_or(&state.options.model_name);
    let return_documents = body.return_documents.unwrap_or(!cohere_v2);
    Ok(answer(
        api::rerank_response(
            &format!("rerank-{}", id.0),
            model,
            &body.documents,
            &scores,
            &items,
            top_n,
            return_documents,
            cohere_v2,
        ),
        usage(&scores),
    ))
}

async fn tei_rerank(state: &AppState, body: Value) -> Result<Response, ApiError> {
    let body: TeiBody = api::parse_value(body)?;
    let truncation = body.truncation(state.max_length)?;
    let texts: Vec<Value> = body.texts.iter().map(|t| json!(t)).collect();
    let sampling = api::sampling(None, None)?;
    // TEI's texts are strings, never PDFs.
    let (scores, _) = score_documents(
        state,
        &json!(body.query),
        &texts,
        "text",
        None,
        None,
        &sampling,
        api::Pdfs::Refused,
    )
    .await?;
    truncation.check(&scores, "text")?;
    Ok(answer(
        api::tei_response(&body.texts, &scores, &body),
        usage(&scores),
    ))
}

/// vLLM's `/score`: one query (`text_1`) against every document (`text_2`), or `text_1[i]`
/// against `text_2[i]` for lists of equal length.
async fn score(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Result<Response, ApiError> {
    let read = read_body(&state, body).await?;
    let body: ScoreBody = api::parse(&read.bytes)?;
    let truncation = Truncation::vllm(body.truncate_prompt_tokens, state.max_length)?;
    let queries = api::one_or_many(body.text_1);
    let documents = api::one_or_many(body.text_2);
    let limits = &state.options.limits;
    api::check_documents(documents.len(), limits)?;
    if queries.len() != 1 && queries.len() != documents.len() {
        return Err(ApiError::bad_request(format!(
            "text_1 has {} items and text_2 has {}: give one text_1, or as many as text_2",
            queries.len(),
            documents.len()
        )));
    }
    let sampling = api::sampling(body.fps, body.max_frames)?;
    let mut media = media_reader(&state);
    let mut read_queries =
        api::read_contents(&queries, "text_1 item", &sampling, &mut media).await?;
    let read_documents =
        api::read_contents(&documents, "text_2 item", &sampling, &mut media).await?;
    let requests = if read_queries.len() == 1 {
        let query = read_queries.remove(0);
        vec![api::request(
            query,
            read_documents,
            body.instruction,
            &sampling,
        )]
    } else {
        read_queries
            .into_iter()
            .zip(read_documents)
            .map(|(q, d)| api::request(q, vec![d], body.instruction.clone(), &sampling))
            .collect()
    };
    let results: Vec<_> = state
        .scorer
        .score(requests, media.temp_files)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let indices: Vec<usize> = (0..results.len()).collect();
    let scores = api::scores(results, &indices, state.options.media.root.as_deref())?;
    truncation.check(&scores, "text_2 item")?;
    let model = body.model.as_deref().unwrap_or(&state.options.model_name);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(answer(
        api::score_response(&format!("score-{}", id.0), model, created, &scores),
        usage(&scores),
    ))
}

fn usage(scores: &[sift::Scored]) -> Usage {
    Usage {
        documents: scores.len(),
        tokens: scores.iter().map(|s| s.tokens).sum(),
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let body = json!({
        "status": if state.scorer.alive() { "ok" } else { "stopped" },
        "model": state.options.model_name,
        "device": state.device,
    });
    let status = if state.scorer.alive() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.options.model_name,
            "object": "model",
            "created": state.started,
            "owned_by": "sift",
        }],
    }))
}

/// TEI's `GET /info`, in its fields: a reranker with one label, sift's own limits.
async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let limits = &state.options.limits;
    Json(json!({
        "model_id": state.options.model_name,
        "model_sha": null,
        "model_dtype": state.precision,
        "model_type": {"reranker": {
            "id2label": {"0": "LABEL_0"},
            "label2id": {"LABEL_0": 0},
        }},
        "max_concurrent_requests": state.options.max_queue,
        "max_input_length": state.max_length + api::PROMPT_SUFFIX_TOKENS,
        "max_batch_tokens": state.max_length + api::PROMPT_SUFFIX_TOKENS,
        "max_batch_requests": null,
        "max_client_batch_size": limits.max_documents,
        "auto_truncate": false,
        "tokenization_workers": 1,
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
    }))
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(request: HttpRequest) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {} {}; sift serves POST /v1/rerank, /rerank, /v2/rerank, /score and \
             GET /health, /v1/models, /info, /metrics",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Where the server reads media from, for its start-up line.
fn media_sources(policy: &MediaPolicy) -> String {
    let mut sources = vec!["data URIs".to_string()];
    if let Some(root) = &policy.root {
        sources.push(format!("paths under {}", root.display()));
    }
    if policy.allow_remote {
        sources.push(if policy.allow_private {
            "any http(s) URL".into()
        } else {
            "public http(s) URLs".into()
        });
    }
    sources.join(", ")
}
