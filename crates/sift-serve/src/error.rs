//! Errors a client gets: an HTTP status and a JSON body, `{"error": {"message", "type",
//! "code"}}` as vLLM and OpenAI-style servers send them (TEI's requests get TEI's
//! `{"error", "error_type"}`), the message naming the cause and the fix.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds a client should wait before retrying (503 when the queue is full).
    pub retry_after: Option<u64>,
    /// Per-document failures, when the request was scored but some documents failed.
    pub documents: Vec<(usize, String)>,
    /// In TEI's shape, `{"error": message, "error_type"}`, for TEI's requests.
    pub tei: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            documents: Vec::new(),
            tei: false,
        }
    }

    /// The error in TEI's shape.
    pub fn in_tei_shape(self) -> Self {
        Self { tei: true, ..self }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// The error type's name in the body, from the status.
    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "invalid_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::PAYLOAD_TOO_LARGE => "over_limit",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "document_error",
            StatusCode::SERVICE_UNAVAILABLE => "overloaded",
            StatusCode::BAD_GATEWAY => "remote_media_error",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            _ => "internal_error",
        }
    }
}

impl ApiError {
    fn with_retry_after(&self, mut response: Response) -> Response {
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.tei {
            // TEI's ErrorType names: Validation for the request's fault, Overloaded for a full
            // queue, Backend for the model's.
            let error_type = match self.status.as_u16() {
                503 => "Overloaded",
                500..=599 => "Backend",
                _ => "Validation",
            };
            let body = json!({"error": self.message, "error_type": error_type});
            return self.with_retry_after((self.status, axum::Json(body)).into_response());
        }
        let mut error = json!({
            "message": self.message,
            "type": self.kind(),
            "code": self.status.as_u16(),
        });
        if !self.documents.is_empty() {
            error["documents"] = self
                .documents
                .iter()
                .map(|(index, message)| json!({"index": index, "message": message}))
                .collect();
        }
        let response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        self.with_retry_after(response)
    }
}
