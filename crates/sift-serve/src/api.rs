//! The wire shapes of the rerank APIs that retrieval pipelines already speak, and their reading
//! into sift's requests.
//!
//! A query or document is a string, or an object with any of `text`, `image`, `video` (each one
//! value or a list; images and videos as data URIs, URLs or paths) or vLLM's `content` list of
//! `{"type": "text" | "image_url" | "video_url", ...}` parts. A document `{"pdf": ..., "pages":
//! "1-5,9"}` (feature `pdf`) is one document per page of the PDF, each a result of its own.

use std::path::Path;

use axum::http::StatusCode;
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
    /// vLLM's meaning: 0 or none for all; negative is refused.
    pub top_n: Option<i64>,
    pub return_documents: Option<bool>,
    /// Cohere v1: the fields of object documents to rank on, in order.
    pub rank_fields: Option<Vec<String>>,
    /// Cohere v2: tokens kept of each document.
    pub max_tokens_per_doc: Option<i64>,
    /// Cohere v1: long documents split into chunks, scored by their best; sift does not chunk.
    pub max_chunks_per_doc: Option<Value>,
    /// vLLM: tokens kept of each prompt (-1: the model's limit).
    pub truncate_prompt_tokens: Option<i64>,
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
    /// Cut a text over the model's limit (true), or refuse it (false, TEI's default).
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Which end a cut removes: `right` (sift's and TEI's default) or `left`.
    pub truncation_direction: Option<String>,
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
    pub truncate_prompt_tokens: Option<i64>,
}

/// The tokens after the cut that every prompt keeps (the reranker's answer template).
pub const PROMPT_SUFFIX_TOKENS: usize = 5;

/// How a request asks for long prompts to be cut, in its API's terms. sift cuts every prompt at
/// the server's `--max-length` and cannot cut one request's shorter, so a request's own limit is
/// honoured where it changes nothing (no prompt reaches it, checked on the scored prompts'
/// lengths) and answered with an error that says so where it would.
pub enum Truncation {
    /// The server's own cut (TEI `truncate: true`, vLLM `-1`, or no field).
    Server,
    /// At most this many tokens per prompt (vLLM `truncate_prompt_tokens`) or per document
    /// (Cohere `max_tokens_per_doc`, checked on the whole prompt, which holds the document).
    Within { tokens: usize, field: &'static str },
    /// No cut at all: a text that reaches the server's limit is refused (TEI's default).
    Refuse { limit: usize },
}

impl RerankBody {
    pub fn truncation(&self, max_length: usize) -> Result<Truncation, ApiError> {
        if self.max_chunks_per_doc.is_some() {
            return Err(ApiError::bad_request(
                "max_chunks_per_doc is not supported: sift scores each document whole, cut at the \
                 server's --max-length tokens, instead of in chunks; leave the field out",
            ));
        }
        if let Some(tokens) = self.max_tokens_per_doc {
            if self.truncate_prompt_tokens.is_some() {
                return Err(ApiError::bad_request(
                    "give max_tokens_per_doc (Cohere) or truncate_prompt_tokens (vLLM), not both",
                ));
            }
            let tokens = usize::try_from(tokens)
                .ok()
                .filter(|&t| t > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "max_tokens_per_doc {tokens} is not a positive number of tokens"
                    ))
                })?;
            return Ok(Truncation::Within {
                tokens,
                field: "max_tokens_per_doc",
            });
        }
        Truncation::vllm(self.truncate_prompt_tokens, max_length)
    }
}

impl TeiBody {
    pub fn truncation(&self, max_length: usize) -> Result<Truncation, ApiError> {
        if !self.truncate.unwrap_or(false) {
            return Ok(Truncation::Refuse {
                limit: max_length + PROMPT_SUFFIX_TOKENS,
            });
        }
        match self.truncation_direction.as_deref() {
            None => Ok(Truncation::Server),
            Some(d) if d.eq_ignore_ascii_case("right") => Ok(Truncation::Server),
            Some(other) => Err(ApiError::bad_request(format!(
                "truncation_direction \"{other}\" is not supported: sift cuts the end of a long \
                 text (\"right\"); send \"right\" or leave the field out"
            ))),
        }
    }
}

impl Truncation {
    /// vLLM's `truncate_prompt_tokens`: -1 is the model's limit; above it, an error (as vLLM).
    pub fn vllm(tokens: Option<i64>, max_length: usize) -> Result<Self, ApiError> {
        let limit = max_length + PROMPT_SUFFIX_TOKENS;
        match tokens {
            None | Some(-1) => Ok(Self::Server),
            Some(t) if t < 1 => Err(ApiError::bad_request(format!(
                "truncate_prompt_tokens {t} is neither -1 (the model's limit) nor a positive \
                 number of tokens"
            ))),
            Some(t) if t as u64 > limit as u64 => Err(ApiError::bad_request(format!(
                "truncate_prompt_tokens {t} is over the server's prompt limit of {limit} tokens \
                 (--max-length {max_length} and the {PROMPT_SUFFIX_TOKENS}-token suffix); give \
                 at most {limit}, or -1"
            ))),
            Some(t) => Ok(Self::Within {
                tokens: t as usize,
                field: "truncate_prompt_tokens",
            }),
        }
    }

    /// Checks the scored prompts' lengths against the request's own limit.
    pub fn check(&self, scores: &[Scored], label: &str) -> Result<(), ApiError> {
        let longest = scores.iter().enumerate().max_by_key(|(_, s)| s.tokens);
        let Some((index, scored)) = longest else {
            return Ok(());
        };
        match *self {
            Self::Server => Ok(()),
            Self::Within { tokens, field } if scored.tokens > tokens => {
                Err(ApiError::bad_request(format!(
                    "{label} {index}'s prompt has {} tokens, over {field} {tokens}; sift cuts \
                     every prompt at the server's --max-length and cannot cut one request's \
                     shorter: leave {field} out, shorten the document, or run a server with a \
                     lower --max-length",
                    scored.tokens
                )))
            }
            Self::Within { .. } => Ok(()),
            Self::Refuse { limit } if scored.tokens >= limit => Err(ApiError::too_large(format!(
                "{label} {index} reaches the server's limit of {limit} tokens per prompt \
                 (--max-length and the {PROMPT_SUFFIX_TOKENS}-token suffix), and truncate is \
                 false; send \"truncate\": true to cut it, or shorten it"
            ))),
            Self::Refuse { .. } => Ok(()),
        }
    }
}

/// vLLM's `top_n`: 0 or none for all documents.
pub fn top_n(top_n: Option<i64>) -> Result<Option<usize>, ApiError> {
    match top_n {
        None | Some(0) => Ok(None),
        Some(n) => usize::try_from(n).map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "top_n {n} is negative; give the number of best documents to return, or 0 or \
                 nothing for all"
            ))
        }),
    }
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

/// Checks the number of documents once each page of a PDF counts as one.
pub fn check_pages(count: usize, limits: &Limits) -> Result<(), ApiError> {
    if count > limits.max_documents {
        return Err(ApiError::too_large(format!(
            "the request has {count} documents, counting each page of its PDFs as one, over the \
             server's limit of {} (--max-documents); choose fewer pages with \"pages\", or split \
             the request",
            limits.max_documents
        )));
    }
    Ok(())
}

/// Which fields of an object a query or document is read from.
#[derive(Clone, Copy)]
pub enum Fields<'a> {
    /// The query: `text`, `image`, `video`, `content`, and no others.
    Query,
    /// A document: those, with any others echoed but not scored (Cohere's object documents), or
    /// else the fields `rank_fields` names.
    Document(Option<&'a [String]>),
}

/// Reads one query or document (`at` names it in errors: "the query", "document 3").
pub async fn read_item(
    value: &Value,
    at: &str,
    fields_read: Fields<'_>,
    sampling: &VideoSampling,
    media: &mut MediaReader<'_>,
) -> Result<Content, ApiError> {
    let mut content = Content::default();
    match value {
        Value::String(text) => content.texts.push(text.clone()),
        Value::Object(fields) => {
            if let Fields::Document(Some(rank_fields)) = fields_read {
                read_rank_fields(fields, rank_fields, at, sampling, media, &mut content).await?;
            } else {
                let mut unknown = Vec::new();
                for (key, field) in fields {
                    match key.as_str() {
                        "text" | "image" | "video" | "content" => {
                            read_field(key, field, at, sampling, media, &mut content).await?;
                        }
                        other => unknown.push(other),
                    }
                }
                let empty = content.texts.is_empty()
                    && content.images.is_empty()
                    && content.videos.is_empty();
                if let Some(other) = unknown.first()
                    && (matches!(fields_read, Fields::Query) || empty)
                {
                    return Err(ApiError::bad_request(format!(
                        "{at} has an unknown field \"{other}\"; a query or document is a string \
                         or an object with \"text\", \"image\", \"video\" or \"content\" (a \
                         document's other fields are echoed, or ranked on when named in \
                         rank_fields)"
                    )));
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

/// One of a query's or document's own fields: `text`, `image`, `video` or `content`.
async fn read_field(
    key: &str,
    field: &Value,
    at: &str,
    sampling: &VideoSampling,
    media: &mut MediaReader<'_>,
    content: &mut Content,
) -> Result<(), ApiError> {
    match key {
        "image" => {
            for image in strings(field, at, key)? {
                content.images.push(media.image(&image, at).await?);
            }
        }
        "video" => {
            for video in strings(field, at, key)? {
                content
                    .videos
                    .push(media.video(&video, sampling, at).await?);
            }
        }
        "content" => read_parts(field, at, sampling, media, content).await?,
        _ => content.texts.extend(strings(field, at, key)?),
    }
    Ok(())
}

/// Cohere's `rank_fields`: the named fields of an object document, in the order named. One
/// field is ranked on as its value; several as one text of `name: value` lines. `image`,
/// `video` and `content` are read as media, as in a document of sift's own shape.
async fn read_rank_fields(
    fields: &serde_json::Map<String, Value>,
    rank_fields: &[String],
    at: &str,
    sampling: &VideoSampling,
    media: &mut MediaReader<'_>,
    content: &mut Content,
) -> Result<(), ApiError> {
    let mut lines = Vec::new();
    for name in rank_fields {
        let Some(field) = fields.get(name) else {
            continue;
        };
        let text = match (name.as_str(), field) {
            ("image" | "video" | "content", _) => {
                read_field(name, field, at, sampling, media, content).await?;
                continue;
            }
            (_, Value::String(text)) => text.clone(),
            (_, Value::Number(_) | Value::Bool(_)) => field.to_string(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{at}: the rank field \"{name}\" is not a string, number or boolean; rank \
                     on text fields only"
                )));
            }
        };
        lines.push(if rank_fields.len() == 1 {
            text
        } else {
            format!("{name}: {text}")
        });
    }
    if lines.is_empty() && content.images.is_empty() && content.videos.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{at} has none of the rank_fields {rank_fields:?}; give each document at least one"
        )));
    }
    if !lines.is_empty() {
        content.texts.push(lines.join("\n"));
    }
    Ok(())
}

/// A document as it is scored, and where it came from: the index of its entry in the request's
/// list, and its page where that entry is a PDF.
pub struct ReadItem {
    pub content: Content,
    pub index: usize,
    pub page: Option<u32>,
}

/// Whether an endpoint takes PDF documents: `Pages` with the pixels each page is counted at
/// (the model's budget, at which a page is rendered); `Refused` where a document must stay one
/// result (vLLM's `/score` pairs `text_1[i]` with `text_2[i]`).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "pdf"), allow(dead_code))]
pub enum Pdfs {
    Pages { pixels: u64 },
    Refused,
}

/// Items that are one content each (vLLM's `/score` pairs: no PDFs, no rank fields).
pub async fn read_contents(
    values: &[Value],
    label: &str,
    sampling: &VideoSampling,
    media: &mut MediaReader<'_>,
) -> Result<Vec<Content>, ApiError> {
    let items = read_items(values, label, None, sampling, Pdfs::Refused, media).await?;
    Ok(items.into_iter().map(|item| item.content).collect())
}

/// Reads a list of queries or documents, named `{label} {i}` in errors; a PDF document is one
/// item per page.
pub async fn read_items(
    values: &[Value],
    label: &str,
    rank_fields: Option<&[String]>,
    sampling: &VideoSampling,
    pdfs: Pdfs,
    media: &mut MediaReader<'_>,
) -> Result<Vec<ReadItem>, ApiError> {
    let mut items = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let at = format!("{label} {index}");
        if let Value::Object(fields) = value
            && fields.contains_key("pdf")
        {
            for (content, page) in read_pdf(fields, &at, pdfs, media).await? {
                items.push(ReadItem {
                    content,
                    index,
                    page,
                });
            }
            continue;
        }
        let content = read_item(value, &at, Fields::Document(rank_fields), sampling, media).await?;
        items.push(ReadItem {
            content,
            index,
            page: None,
        });
    }
    Ok(items)
}

/// A PDF document, `{"pdf": FILE, "pages": RANGE}`: one content per selected page, each with
/// its page number (none for a file that could not be opened: its error is that document's).
#[cfg(feature = "pdf")]
async fn read_pdf(
    fields: &serde_json::Map<String, Value>,
    at: &str,
    pdfs: Pdfs,
    media: &mut MediaReader<'_>,
) -> Result<Vec<(Content, Option<u32>)>, ApiError> {
    let Pdfs::Pages { pixels } = pdfs else {
        return Err(ApiError::bad_request(format!(
            "{at} is a PDF, and this endpoint scores each document as one result; send PDFs to \
             /v1/rerank, /v2/rerank or /rerank, where each page is a result of its own"
        )));
    };
    if let Some(other) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "pdf" | "pages"))
    {
        return Err(ApiError::bad_request(format!(
            "{at} has \"pdf\" and \"{other}\"; a PDF document holds only \"pdf\" and \"pages\" \
             (each page is ranked as a document of its own): send \"{other}\" as a document of \
             its own"
        )));
    }
    let Some(Value::String(reference)) = fields.get("pdf") else {
        return Err(ApiError::bad_request(format!(
            "{at}: \"pdf\" must be a string: a data URI (data:application/pdf;base64,...) or a \
             path under the media root"
        )));
    };
    let pages = match fields.get("pages") {
        None => None,
        Some(Value::String(pages)) => Some(pages.as_str()),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "{at}: \"pages\" must be a string of pages and ranges, e.g. \"1-5,9\""
            )));
        }
    };
    let pages = media.pdf(reference, pages, pixels, at).await?;
    Ok(pages
        .into_iter()
        .map(|page| {
            let number = page.page;
            (Content::image(sift::ImageSource::PdfPage(page)), number)
        })
        .collect())
}

#[cfg(not(feature = "pdf"))]
async fn read_pdf(
    _: &serde_json::Map<String, Value>,
    at: &str,
    _: Pdfs,
    _: &mut MediaReader<'_>,
) -> Result<Vec<(Content, Option<u32>)>, ApiError> {
    Err(ApiError::unsupported_media(format!(
        "{at} is a PDF, and this server was built without PDF support; rebuild sift with the \
         `pdf` feature, or send each page as an image"
    )))
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
/// unreadable format, 500 the model itself, else 422. The media root's place on the server's
/// disk is left out of the messages.
///
/// `indices[i]` is the request's entry that result `i` came from (several results share one for
/// the pages of a PDF, whose errors name the page).
pub fn scores(
    results: Vec<Result<Scored, DocError>>,
    indices: &[usize],
    media_root: Option<&Path>,
) -> Result<Vec<Scored>, ApiError> {
    let mut failures = Vec::new();
    let mut codes = Vec::new();
    for (result, &index) in results.iter().zip(indices) {
        if let Err(error) = result {
            codes.push(doc_status(error));
            let mut message = error.to_string();
            if let Some(root) = media_root {
                let root = format!("{}{}", root.display(), std::path::MAIN_SEPARATOR);
                message = message.replace(&root, "");
            }
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
    let status = |code| StatusCode::from_u16(code).expect("a valid status");
    // The query's failure is every document's: one message. (An image over the pixel limit never
    // gets here: the media reader refuses it from its header.)
    if let Some(Err(DocError::Query(_))) = results.first() {
        let (_, message) = failures.swap_remove(0);
        return Err(ApiError::new(status(first), message));
    }
    // The model's own failure wins: it is the server's fault, not the request's.
    let code = if codes.contains(&500) { 500 } else { first };
    let summary = failures
        .iter()
        .map(|(i, m)| format!("document {i}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError {
        documents: failures,
        ..ApiError::new(
            status(code),
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

/// A PDF page as the response echoes it: the file as given (a data URI without its data) and
/// the page, not the PDF's bytes once per page.
fn echo_page(document: &Value, page: u32) -> Value {
    let file = document["pdf"].as_str().unwrap_or_default().trim();
    let file = match file.split_once(',') {
        Some((header, _)) if file.starts_with("data:") => format!("{header},…"),
        _ => file.to_string(),
    };
    json!({ "pdf": file, "page": page })
}

/// The body of `/v1/rerank`, `/rerank` and `/v2/rerank` (the latter with Cohere's `meta`).
/// `items[i]` says which document, and which page of a PDF, score `i` is.
#[allow(clippy::too_many_arguments)]
pub fn rerank_response(
    id: &str,
    model: &str,
    documents: &[Value],
    scores: &[Scored],
    items: &[(usize, Option<u32>)],
    top_n: Option<usize>,
    return_documents: bool,
    cohere_v2: bool,
) -> Value {
    let ranked: Vec<Result<f32, ()>> = scores.iter().map(|s| Ok(s.score)).collect();
    let results: Vec<Value> = sift::rank(&ranked)
        .into_iter()
        .take(top_n.unwrap_or(usize::MAX))
        .map(|i| {
            let (index, page) = items[i];
            let mut result = json!({ "index": index, "relevance_score": scores[i].score });
            if let Some(page) = page {
                result["page"] = json!(page);
            }
            if return_documents {
                result["document"] = match page {
                    Some(page) => echo_page(&documents[index], page),
                    None => echo(&documents[index]),
                };
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
            // TEI's raw score is the logit before the sigmoid.
            let score = if body.raw_scores {
                scores[i].logit
            } else {
                scores[i].score
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
