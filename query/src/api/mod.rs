//! The query HTTP API (DESIGN §8, query half): one router per route group around one
//! [`QueryState`]. A route checks its parameters ([`params`]), asks [`crate::reads`] for the
//! prepared answer, and sends it with its `ETag` — or 304 when the client's `If-None-Match`
//! already names it.
//!
//! Authentication and rate limits are `cortex_http::auth`'s, shared with the command API;
//! errors are its problem+json [`ApiError`]s.

pub mod compliance;
pub mod params;
pub mod policies;
pub mod resources;

use std::time::Duration;

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
};
use cortex_http::{Auth, auth::authenticate, problem::ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::reads::{Prepared, ReadError, Reads};

/// What every query route shares. Cheap to clone.
#[derive(Clone)]
pub struct QueryState {
    pub reads: Reads,
    /// The key ring and rate limiter, shared with the command API when one process serves both.
    pub auth: Auth,
}

impl QueryState {
    pub fn new(reads: Reads, auth: Auth) -> Self {
        Self { reads, auth }
    }
}

/// The query routes, authenticated, with their OpenAPI description; `cortex serve` merges
/// them with the command routes (see `cortex_http::app`).
pub fn routes(state: QueryState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(resources::list))
        .routes(routes!(resources::get))
        .routes(routes!(resources::history))
        .routes(routes!(policies::list))
        .routes(routes!(policies::get))
        .routes(routes!(compliance::summary))
        .routes(routes!(compliance::trend))
        .layer(middleware::from_fn_with_state(state.auth.clone(), authenticate))
        .with_state(state)
}

/// The query API alone: `/v1` routes, `/healthz`, `/openapi.json`.
pub fn router(state: QueryState) -> Router {
    let (v1, api) = routes(state).split_for_parts();
    cortex_http::app::finish(v1, cortex_http::app::openapi_document(api))
}

/// How long a client should wait after a 503 from an unreachable database.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::NotFound { what } => Self::NotFound { what },
            e if e.is_transient() => Self::Unavailable { retry_after: RETRY_AFTER, cause: e.into() },
            e => Self::Unexpected(e.into()),
        }
    }
}

/// 200 with the body and its `ETag`, or 304 when `If-None-Match` names that tag (or is `*`).
/// Answers are per tenant: shared caches must not keep them, and a client revalidates.
pub fn respond(request_headers: &HeaderMap, prepared: Prepared) -> Response {
    let etag = HeaderValue::from_str(&prepared.etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let cache_control = (header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if none_match(request_headers, &prepared.etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), cache_control]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::ETAG, etag),
            cache_control,
        ],
        prepared.body,
    )
        .into_response()
}

/// Whether `If-None-Match` matches `etag` (RFC 9110 §13.1.2: weak comparison, `*`, lists).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = strip(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        assert!(none_match(&headers("\"a\""), "\"a\""));
        assert!(none_match(&headers("W/\"a\""), "\"a\""));
        assert!(none_match(&headers("\"x\", \"a\""), "\"a\""));
        assert!(none_match(&headers("*"), "\"a\""));
        assert!(!none_match(&headers("\"b\""), "\"a\""));
        assert!(!none_match(&HeaderMap::new(), "\"a\""));
    }
}
