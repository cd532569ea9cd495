//! The one error type of both HTTP APIs: each variant is one HTTP status and an RFC 9457
//! `application/problem+json` body. 5xx answers are logged here, once, with their cause
//! chain; their bodies never show internals. Each API converts its own errors into it
//! (`cortex-command`: domain and handler errors; `cortex-query`: read errors).

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cortex_events::StoreError;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://policycortex.dev/problems/";

/// One bad field, by JSON pointer into the request body — or, for a query parameter, into
/// the query string read as an object (`/limit`, `/tag/1` for the second `tag`) (RFC 9457
/// §3 "errors" extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Invalid { detail: String, errors: Vec<FieldError> },
    #[error("missing or unknown api key")]
    Unauthorized,
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{0}")]
    Conflict(String),
    #[error("the {what} is at revision {actual}, not {expected}")]
    PreconditionFailed { what: &'static str, expected: String, actual: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("the body must be JSON (content-type application/json)")]
    UnsupportedMediaType,
    #[error("{detail}")]
    Unprocessable { detail: String, errors: Vec<FieldError> },
    #[error("rate limit exceeded")]
    TooManyRequests { retry_after: Duration },
    /// Read-your-writes (DESIGN §5): the read models a query reads have not reached the
    /// client's position within the wait bound. `lag` says how far behind each one is.
    #[error("{detail}")]
    NotCaughtUp { retry_after: Duration, detail: String, lag: serde_json::Value },
    #[error("a dependency is unavailable")]
    Unavailable {
        retry_after: Duration,
        #[source]
        cause: anyhow::Error,
    },
    #[error("unexpected error")]
    Unexpected(#[source] anyhow::Error),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(skip_serializing_if = "Option::is_none")]
    lag: Option<&'a serde_json::Value>,
}

impl ApiError {
    pub fn invalid_field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let pointer = pointer.into();
        Self::Invalid {
            detail: format!("{}: {detail}", if pointer.is_empty() { "/" } else { &pointer }),
            errors: vec![FieldError { pointer, detail }],
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::NotCaughtUp { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem `type` slug and `title`.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::Invalid { .. } => ("invalid-request", "The request is invalid"),
            Self::Unauthorized => ("unauthorized", "Authentication required"),
            Self::NotFound { .. } => ("not-found", "Not found"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::PreconditionFailed { .. } => ("stale-revision", "Precondition failed"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::Unprocessable { .. } => ("unprocessable", "Unprocessable request"),
            Self::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            Self::Unavailable { .. } => ("unavailable", "Service unavailable"),
            Self::NotCaughtUp { .. } => {
                ("not-caught-up", "The read models have not reached that position yet")
            }
            Self::Unexpected(_) => ("internal", "Internal error"),
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid { errors, .. } | Self::Unprocessable { errors, .. } => errors,
            _ => &[],
        }
    }

    /// The problem document, also used for the per-item errors of a batch.
    pub fn to_problem_json(&self) -> serde_json::Value {
        let (slug, title) = self.kind();
        let problem = Problem {
            problem_type: format!("{TYPE_BASE}{slug}"),
            title,
            status: self.status().as_u16(),
            detail: self.to_string(),
            errors: self.field_errors(),
            lag: match self {
                Self::NotCaughtUp { lag, .. } => Some(lag),
                _ => None,
            },
        };
        serde_json::to_value(problem).unwrap_or_default()
    }

    /// Logs a 5xx once, with its cause chain (client errors are the client's business).
    pub fn log(&self) {
        match self {
            Self::Unexpected(cause) => tracing::error!(error = format!("{cause:#}"), "request failed"),
            Self::Unavailable { cause, .. } => {
                tracing::warn!(error = format!("{cause:#}"), "request failed: dependency unavailable")
            }
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let body = self.to_problem_json().to_string();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Self::TooManyRequests { retry_after }
        | Self::Unavailable { retry_after, .. }
        | Self::NotCaughtUp { retry_after, .. } = &self
        {
            // Whole seconds, rounded up: a client that waits this long is allowed again.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // An append too large is the client's doing: the events carry what it sent.
            StoreError::AppendTooLarge { size, limit } => Self::PayloadTooLarge(format!(
                "the change would append {size} bytes of events, over the limit of {limit}"
            )),
            StoreError::WrongExpectedRevision { .. } => {
                Self::Conflict(format!("{e}; the change was not applied, retry it"))
            }
            e if e.is_transient() => {
                Self::Unavailable { retry_after: Duration::from_secs(1), cause: anyhow::Error::new(e) }
            }
            e => Self::Unexpected(anyhow::Error::new(e)),
        }
    }
}

/// `pointer: detail; …` for a problem's `detail`.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", if e.pointer.is_empty() { "/" } else { &e.pointer }, e.detail))
        .collect::<Vec<_>>()
        .join("; ")
}
