//! Google's error model: every non-2xx answer is
//! `{"error":{"code":N,"message":"…","status":"…"}}` (spec §6).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An API error with Google's code, status and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Canonical status (`INVALID_ARGUMENT`, ...).
    pub status: &'static str,
    /// Message text.
    pub message: String,
    /// Optional `details` array.
    pub details: Option<Value>,
    /// Optional `Retry-After` seconds (off by default; Google sends none).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(code: u16, status: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            status,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 INVALID_ARGUMENT.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }

    /// 400 `Unable to parse range: <range>`.
    pub fn unparsable_range(range: &str) -> Self {
        Self::bad_request(format!("Unable to parse range: {range}"))
    }

    /// 404 `Requested entity was not found.`
    pub fn not_found() -> Self {
        Self::new(404, "NOT_FOUND", "Requested entity was not found.")
    }

    /// 400 `This action would increase the number of cells in the workbook above the limit of
    /// N cells.`
    pub fn over_cell_limit(limit: u64) -> Self {
        Self::bad_request(format!(
            "This action would increase the number of cells in the workbook above the limit of {limit} cells."
        ))
    }

    /// 403 `The caller does not have permission`.
    pub fn permission_denied() -> Self {
        Self::new(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        )
    }

    /// The canonical status name for an HTTP code (for injected faults).
    pub fn status_for(code: u16) -> &'static str {
        match code {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ABORTED",
            429 => "RESOURCE_EXHAUSTED",
            500 => "INTERNAL",
            501 => "NOT_IMPLEMENTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "UNKNOWN",
        }
    }

    /// The default message for an injected status.
    pub fn message_for(code: u16) -> &'static str {
        match code {
            429 => "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:0'.",
            500 => "Internal error encountered.",
            502 => "Bad Gateway",
            503 => "The service is currently unavailable.",
            504 => "The request timed out. Please try again.",
            _ => "Injected fault.",
        }
    }

    /// An injected error for a status code.
    pub fn injected(code: u16) -> Self {
        Self::new(code, Self::status_for(code), Self::message_for(code))
    }

    /// Prefixes the message (`Invalid requests[0].addSheet: …`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message, "status": self.status});
        if let Some(d) = &self.details {
            e["details"] = d.clone();
        }
        json!({ "error": e })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A JSON response with Google's content type.
pub fn json_response(status: u16, body: &Value) -> Response {
    let mut text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text,
    )
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.code, &self.body());
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
