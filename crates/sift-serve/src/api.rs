//! The wire shapes of the rerank APIs that retrieval pipelines already speak, and their reading
//! into sift's requests.
//!
//! A query or document is a string, or an object with any of `text`, `image`, `video` (each one
//! value or a list; images and videos as data URIs, URLs or paths) or vLLM's `content` list of
//! `{"type": "text" | "image_url" | "video_url", ...}` parts.

use serde::Deserialize;
use serde_json::{Value, json};
use sift::{Content, DocError, ImageError, Request, Scored, VideoError, VideoSampling};

use crate::error::ApiError;
use crate::limits::Limits;
use crate::media::MediaReader;

/// `POST /v1/rerank`, `/rerank` and `/v2/rerank`: Cohere's, Jina's, vLLM's and SGLang's body.
#[derive(Deserialize)]
pub struct RerankBody {
    #[serde(default)]
    pub model: Option<String>,
    pub query: Value,
    pub documents: Vec<Value>,
    pub top_n: Option<usize>,
    pub return_documents: Option<bool>,
    /// sift's name; SGLang's is `instruct`.
    #[serde(alias = "instruct")]
    pub instruction: Option<String>,
    /// Video sampling, as in sift's own requests.
    pub fps: Option<f64>,
    pub max_frames: Option<usize>,
}

/// `POST /rerank` in Hugging Face TEI's shape.
#[derive(Deserialize)]
pub struct TeiBody {
    pub query: String,
    pub texts: Vec<String>,
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub return_text: bool,
}

/// `POST /score` in vLLM's shape: one query against each document, or pairs of equal lists.
#[derive(Deserialize)]
pub struct ScoreBody {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(alias = "queries")]
    pub text_1: Value,
    #[serde(alias = "documents")]
    pub text_2: Value,
    #[serde(alias = "instruct")]
    pub instruction: Option<String>,
    pub fps: Option<f64>,
    pub max_frames: Option<usize>,
}

/// Parses a JSON body, naming what is wrong with it.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(not_for_this_endpoint)
}

/// [`parse`] for a body already read as JSON.
pub fn parse_value<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(not_for_this_endpoint)
}

fn not_for_this_endpoint(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!(
        "the request body is not valid JSON for this endpoint: {e}"
    ))
}

/// A list field's items: a list, or one value standing for a list of one.
pub fn one_or_many(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        one => vec![one],
    }
}

pub fn sampling(fps: Option<f64>, max_frames: Option<usize>) -> Result<VideoSampling, ApiError> {
    let default = VideoSampling::default();
    let fps = fps.unwrap_or(default.fps);
    if !(fps.is_finite() && fps > 0.0) {
        return Err(ApiError::bad_request(format!(
            "fps {fps} is not a positive number of frames per second"
        )));
    }
    Ok(VideoSampling {
        fps,
        max_frames: max_frames.unwrap_or(default.max_frames),
    })
}

/// Checks the number of documents against the limit.
pub fn check_documents(count: usize, limits: &Limits) -> Result<(), ApiError> {
    if count == 0 {
        return Err(ApiError::bad_request(
            "the request has no documents; give at least one in \"documents\"",
        ));
    }
    if count > limits.max_documents {
        return Err(ApiError::too_large(format!(
            "the request has {count} documents, over the server's limit of {} (--max-documents); \
             split it into several requests",
            limits.max_documents
        )));
    }
    Ok(())
}

/// Reads one query or document (`at` names it in errors: "the query", "document 3").
pub async fn read_item(
    value: &Value,
    at: &str,
    sampling: &VideoSampling,
    media: &mut MediaReader<'_>,
) -> Result<Content, ApiError> {
    let mut content = Content::default();
    match value {
        Value::String(text) => content.texts.push(text.clone()),
        Value::Object(fields) => {
            for (key, field) in fields {
                match key.as_str() {
                    "text" => {
                        for text in strings(field, at, "text")? {
                            content.texts.push(text);
                        }
                    }
                    "image" => {
                        for image in strings(field, at, "image")? {
                            content.images.push(media.image(&image, at).await?);
                        }
                    }
                    "video" => {
                        for video in strings(field, at, "video")? {
                            content
                                .videos
                                .push(media.video(&video, sampling, at).await?);
                        }
                    }
                    "content" => read_parts(field, at, sampling, media, &mut content).await?,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "{at} has an unknown field \"{other}\"; a query or document is a \
                             string or an object with \"text\", \"image\", \"video\" or \
                             \"content\""
                        )));
                    }
                }
            }
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "{at} is neither a string nor an object with \"text\", \"image\", \"video\" or \
                 \"content\""
            )));
        }
    }
    check_content(&content, at, media.limits)?;
    Ok(content)
}

/// Reads a list of queries or documents, named `{label} {i}` in errors.
pub async fn read_items(
    values: &[Value],
    label: &str,
    sampling: &VideoSampling,
    media: &mut MediaReader<'_>,
) -> Result<Vec<Content>, ApiError> {
    let mut items = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        items.push(read_item(value, &format!("{label} {i}"), sampling, media).await?);
    }
    Ok(items)
}

/// vLLM's `content` list: `{"type": "text", "text"}`, `{"type": "image_url", "image_url":
/// {"url"}}`, `{"type": "video_url", "video_url": {"url"}}`.
async fn read_parts(
    parts: &Value,
    at: &str,
    sampling: &VideoSampling,
    media: &mut MediaReader<'_>,
    content: &mut Content,
) -> Result<(), ApiError> {
    let Value::Array(parts) = parts else {
        return Err(ApiError::bad_request(format!(
            "{at}: \"content\" must be a list of parts"
        )));
    };
    for (i, part) in parts.iter().enumerate() {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        let url = |field: &str| {
            let value = part.get(field);
            value
                .and_then(Value::as_str)
                .or_else(|| value.and_then(|v| v.get("url")).and_then(Value::as_str))
                .map(str::to_string)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{at}: content part {i} of type {kind} has no \"{field}\" URL"
                    ))
                })
        };
        match kind {
            "text" => match part.get("text").and_then(Value::as_str) {
                Some(text) => content.texts.push(text.to_string()),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "{at}: content part {i} of type text has no \"text\" string"
                    )));
                }
            },
            "image_url" => content
                .images
                .push(media.image(&url("image_url")?, at).await?),
            "image" => content.images.push(media.image(&url("image")?, at).await?),
            "video_url" => content
                .videos
                .push(media.video(&url("video_url")?, sampling, at).await?),
            "video" => content
                .videos
                .push(media.video(&url("video")?, sampling, at).await?),
            other => {
                return Err(ApiError::unsupported_media(format!(
                    "{at}: content part {i} has type \"{other}\"; sift reads text, image_url and \
                     video_url parts"
                )));
            }
        }
    }
    Ok(())
}

fn strings(field: &Value, at: &str, name: &str) -> Result<Vec<String>, ApiError> {
    one_or_many(field.clone())
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err(ApiError::bad_request(format!(
                "{at}: \"{name}\" must be a string or a list of strings"
            ))),
        })
        .collect()
}

fn check_content(content: &Content, at: &str, limits: &Limits) -> Result<(), ApiError> {
    for text in &content.texts {
        let chars = text.chars().count();
        if chars > limits.max_text_chars {
            return Err(ApiError::too_large(format!(
                "{at} has a text of {chars} characters, over the server's limit of {} \
                 (--max-text-chars); shorten it (the model reads at most about 10,000 tokens)",
                limits.max_text_chars
            )));
        }
    }
    let media = content.images.len() + content.videos.len();
    if media > limits.max_media_per_item {
        return Err(ApiError::too_large(format!(
            "{at} has {media} images and videos, over the server's limit of {} \
             (--max-media-per-item)",
            limits.max_media_per_item
        )));
    }
    Ok(())
}

/// A sift request of one query and its documents.
pub fn request(
    query: Content,
    documents: Vec<Content>,
    instruction: Option<String>,
    sampling: &VideoSampling,
) -> Request {
    Request {
        instruction,
        query,
        documents,
        fps: Some(sampling.fps),
        max_frames: Some(sampling.max_frames),
    }
}

/// The scores, or the error naming every document that failed: 413 over a limit, 415 an
/// unreadable format, 500 the model itself, else 422.
pub fn scores(results: Vec<Result<Scored, DocError>>) -> Result<Vec<Scored>, ApiError> {
    let mut failures = Vec::new();
    let mut codes = Vec::new();
    for (index, result) in results.iter().enumerate() {
        if let Err(error) = result {
            codes.push(doc_status(error));
            let mut message = error.to_string();
            if is_image_too_large(error) {
                message.push_str(" (the server's limit: --max-image-pixels)");
            }
            failures.push((index, message));
        }
    }
    let Some(&first) = codes.first() else {
        return Ok(results
            .into_iter()
            .map(|r| r.expect("no failures"))
            .collect());
    };
    // The model's own failure wins: it is the server's fault, not the request's.
    let status = if codes.contains(&500) { 500 } else { first };
    if let Some(Err(DocError::Query(_))) = results.first() {
        let (_, message) = failures.swap_remove(0);
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            message,
        ));
    }
    let summary = failures
        .iter()
        .map(|(i, m)| format!("document {i}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError {
        documents: failures,
        ..ApiError::new(
            axum::http::StatusCode::from_u16(status).expect("a valid status"),
            format!("no scores, since documents failed (fix or remove them): {summary}"),
        )
    })
}

fn doc_status(error: &DocError) -> u16 {
    match error {
        DocError::TooManyVisualTokens { .. }
        | DocError::TooManyVisuals { .. }
        | DocError::Video {
            error: VideoError::TooManyTokens { .. },
            ..
        } => 413,
        _ if is_image_too_large(error) => 413,
        DocError::Image { error, .. }
            if matches!(root(error), ImageError::UnsupportedFormat { .. }) =>
        {
            415
        }
        DocError::Model(_) | DocError::Crashed(_) => 500,
        _ => 422,
    }
}

fn is_image_too_large(error: &DocError) -> bool {
    matches!(error, DocError::Image { error, .. } if matches!(root(error), ImageError::TooLarge { .. }))
}

/// The error inside a file's error.
fn root(error: &ImageError) -> &ImageError {
    match error {
        ImageError::File { source, .. } => root(source),
        other => other,
    }
}

/// A document as the response echoes it: `{"text": ...}` for a string, else as given.
fn echo(document: &Value) -> Value {
    match document {
        Value::String(text) => json!({ "text": text }),
        other => other.clone(),
    }
}

/// The body of `/v1/rerank`, `/rerank` and `/v2/rerank` (the latter with Cohere's `meta`).
pub fn rerank_response(
    id: &str,
    model: &str,
    documents: &[Value],
    scores: &[Scored],
    top_n: Option<usize>,
    return_documents: bool,
    cohere_v2: bool,
) -> Value {
    let ranked: Vec<Result<f32, ()>> = scores.iter().map(|s| Ok(s.score)).collect();
    let results: Vec<Value> = sift::rank(&ranked)
        .into_iter()
        .take(top_n.unwrap_or(usize::MAX))
        .map(|i| {
            let mut result = json!({ "index": i, "relevance_score": scores[i].score });
            if return_documents {
                result["document"] = echo(&documents[i]);
            }
            result
        })
        .collect();
    let total_tokens: usize = scores.iter().map(|s| s.tokens).sum();
    let mut body = json!({
        "id": id,
        "model": model,
        "results": results,
        "usage": { "total_tokens": total_tokens },
    });
    if cohere_v2 {
        body["meta"] = json!({
            "api_version": { "version": "2" },
            "billed_units": { "search_units": 1 },
        });
    }
    body
}

/// TEI's `/rerank` answer: `[{"index", "score", "text"?}]`, best first.
pub fn tei_response(texts: &[String], scores: &[Scored], body: &TeiBody) -> Value {
    let ranked: Vec<Result<f32, ()>> = scores.iter().map(|s| Ok(s.score)).collect();
    sift::rank(&ranked)
        .into_iter()
        .map(|i| {
            let p = f64::from(scores[i].score).clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON);
            // TEI's raw score is the logit before the sigmoid.
            let score = if body.raw_scores {
                json!((p / (1.0 - p)).ln())
            } else {
                json!(scores[i].score)
            };
            let mut result = json!({ "index": i, "score": score });
            if body.return_text {
                result["text"] = json!(texts[i]);
            }
            result
        })
        .collect()
}

/// vLLM's `/score` answer, in document order.
pub fn score_response(id: &str, model: &str, created: u64, scores: &[Scored]) -> Value {
    let data: Vec<Value> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "index": i, "object": "score", "score": s.score }))
        .collect();
    let tokens: usize = scores.iter().map(|s| s.tokens).sum();
    json!({
        "id": id,
        "object": "list",
        "created": created,
        "model": model,
        "data": data,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0 },
    })
}
