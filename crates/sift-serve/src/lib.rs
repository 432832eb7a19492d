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
//! | `GET /health`, `/v1/models`, `/metrics` | liveness, the model, Prometheus |

mod api;
mod error;
mod limits;
mod media;
mod metrics;
mod scorer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request as HttpRequest, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sift::{Reranker, VideoSampling};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use limits::Limits;
pub use media::MediaPolicy;

use api::{RerankBody, ScoreBody, TeiBody};
use media::MediaReader;
use metrics::Metrics;
use scorer::Scorer;

/// How the server behaves, besides its model.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model's name in responses and `/v1/models`.
    pub model_name: String,
    pub limits: Limits,
    pub media: MediaPolicy,
    /// Requests that may wait for the model; more get 503 (`--max-queue`).
    pub max_queue: usize,
    /// Required as `Authorization: Bearer <key>` on every endpoint but `/health`.
    pub api_key: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            model_name: "sift".into(),
            limits: Limits::default(),
            media: MediaPolicy::default(),
            max_queue: 64,
            api_key: None,
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
    scorer: Scorer,
    metrics: Arc<Metrics>,
    started: u64,
}

/// The request's id, made when it arrives (its log line and its response carry it).
#[derive(Clone)]
struct RequestId(String);

/// What a request cost, for its log line.
#[derive(Clone, Copy, Default)]
struct Usage {
    documents: usize,
    tokens: usize,
}

impl Server {
    /// Starts the model's thread. Fails if the media root is not a readable directory.
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
        let metrics = Arc::new(Metrics::new());
        let device = reranker.device_name().to_string();
        let scorer = Scorer::start(reranker, options.max_queue, metrics.clone());
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Self {
            state: Arc::new(AppState {
                options,
                device,
                scorer,
                metrics,
                started,
            }),
        })
    }

    pub fn router(&self) -> Router {
        let state = self.state.clone();
        Router::new()
            .route("/v1/rerank", post(rerank_endpoint::<false>))
            .route("/rerank", post(rerank_or_tei))
            .route("/v2/rerank", post(rerank_endpoint::<true>))
            .route("/score", post(score))
            .route("/v1/score", post(score))
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/metrics", get(metrics_text))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(state.clone(), authorize))
            .layer(middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state)
    }
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, server.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs the server at `address` until Ctrl-C or SIGTERM, logging one line per request.
pub fn run(address: SocketAddr, server: Server) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
        tracing::info!("shut down; requests in flight were answered");
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
    tracing::info!("shutting down: answering the requests in flight");
}

/// Gives each request an id, then counts, times and logs it.
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
    let id = uuid::Uuid::new_v4().simple().to_string();
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

/// The body, up to the limit.
async fn read_body(state: &AppState, mut body: Body) -> Result<Bytes, ApiError> {
    let limit = state.options.limits.max_body_bytes;
    let declared = axum::body::HttpBody::size_hint(&body).exact();
    let mut bytes = Vec::new();
    // A body whose Content-Length is over the limit is not kept at all; a chunked one is cut
    // where it passes the limit.
    let mut over = declared.is_some_and(|size| size > limit as u64);
    while !over && let Some(data) = next_data(&mut body).await? {
        over = bytes.len() + data.len() > limit;
        if !over {
            bytes.extend_from_slice(&data);
        }
    }
    if over {
        drain(body).await;
        let size = declared.map_or_else(String::new, |bytes| format!("{bytes} bytes, "));
        return Err(ApiError::too_large(format!(
            "the request body is {size}over the server's limit of {limit} bytes \
             (--max-body-bytes); send fewer or smaller documents per request"
        )));
    }
    Ok(Bytes::from(bytes))
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
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read_rest).await;
}

fn media_reader(state: &AppState) -> MediaReader<'_> {
    MediaReader {
        policy: &state.options.media,
        limits: &state.options.limits,
        temp_files: Vec::new(),
    }
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
    rerank(&state, &id, api::parse(&body)?, COHERE_V2).await
}

/// `/rerank` is vLLM's and Jina's alias of `/v1/rerank`, and TEI's endpoint: TEI's body has
/// `texts` where the others have `documents`.
async fn rerank_or_tei(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body).await?;
    let value: Value = api::parse(&body)?;
    if value.get("texts").is_some() {
        return tei_rerank(&state, api::parse_value(value)?).await;
    }
    rerank(&state, &id, api::parse_value(value)?, false).await
}

/// The scores of `documents` (named `{label} i` in errors) against one query.
async fn score_documents(
    state: &AppState,
    query: &Value,
    documents: &[Value],
    label: &str,
    instruction: Option<String>,
    sampling: &VideoSampling,
) -> Result<Vec<sift::Scored>, ApiError> {
    api::check_documents(documents.len(), &state.options.limits)?;
    let mut media = media_reader(state);
    let query = api::read_item(query, "the query", sampling, &mut media).await?;
    let documents = api::read_items(documents, label, sampling, &mut media).await?;
    let request = api::request(query, documents, instruction, sampling);
    let mut results = state.scorer.score(vec![request], media.temp_files).await?;
    api::scores(results.remove(0))
}

async fn rerank(
    state: &AppState,
    id: &RequestId,
    body: RerankBody,
    cohere_v2: bool,
) -> Result<Response, ApiError> {
    let sampling = api::sampling(body.fps, body.max_frames)?;
    let scores = score_documents(
        state,
        &body.query,
        &body.documents,
        "document",
        body.instruction,
        &sampling,
    )
    .await?;
    let model = body.model.as_deref().unwrap_or(&state.options.model_name);
    let return_documents = body.return_documents.unwrap_or(!cohere_v2);
    Ok(answer(
        api::rerank_response(
            &format!("rerank-{}", id.0),
            model,
            &body.documents,
            &scores,
            body.top_n,
            return_documents,
            cohere_v2,
        ),
        usage(&scores),
    ))
}

async fn tei_rerank(state: &AppState, body: TeiBody) -> Result<Response, ApiError> {
    let texts: Vec<Value> = body.texts.iter().map(|t| json!(t)).collect();
    let sampling = api::sampling(None, None)?;
    let scores =
        score_documents(state, &json!(body.query), &texts, "text", None, &sampling).await?;
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
    let body = read_body(&state, body).await?;
    let body: ScoreBody = api::parse(&body)?;
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
    let mut read_queries = api::read_items(&queries, "text_1 item", &sampling, &mut media).await?;
    let read_documents = api::read_items(&documents, "text_2 item", &sampling, &mut media).await?;
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
    let results = state.scorer.score(requests, media.temp_files).await?;
    let scores = api::scores(results.into_iter().flatten().collect())?;
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
             GET /health, /v1/models, /metrics",
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
