//! The query HTTP API (DESIGN §8, query half): one router per route group around one
//! [`QueryState`]. A route checks its parameters ([`params`]), asks [`crate::reads`] for the
//! prepared answer, and sends it with its `ETag` — or 304 when the client's `If-None-Match`
//! already names it.
//!
//! Authentication and rate limits are `cortex_http::auth`'s, shared with the command API;
//! errors are its problem+json [`ApiError`]s.

pub mod changes;
pub mod compliance;
pub mod params;
pub mod policies;
pub mod resources;

use std::{sync::Arc, time::Duration};

use std::future::Future;

use axum::{
    Router,
    extract::FromRequestParts,
    http::{HeaderName, HeaderValue, StatusCode, header, request::Parts},
    middleware,
    response::{IntoResponse, Response},
};
use cortex_events::Position;
use cortex_http::{Auth, auth::authenticate, problem::ApiError};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    cache::{Cache, CacheKey, CacheSettings},
    fresh::{Freshness, FreshnessSettings, Projection},
    reads::{Prepared, ReadError, Reads},
};

/// The read-your-writes header (DESIGN §5); the `after` query parameter is its twin.
pub const AFTER_HEADER: &str = "x-cortex-after";

/// How the query side waits and streams.
#[derive(Debug, Clone, Copy)]
pub struct QuerySettings {
    /// Longest a read-your-writes query waits for the read models (default 2 s).
    pub after_wait: Duration,
    /// Interval of the live stream's heartbeat comments (default 15 s).
    pub heartbeat: Duration,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self { after_wait: Duration::from_secs(2), heartbeat: Duration::from_secs(15) }
    }
}

/// What every query route shares. Cheap to clone: one reference count (axum clones the
/// state for every request; field by field that was a dozen, and the cache's L2 client
/// copied its connection strings).
#[derive(Clone)]
pub struct QueryState(Arc<Shared>);

/// The contents of a [`QueryState`].
pub struct Shared {
    pub reads: Reads,
    /// The key ring and rate limiter, shared with the command API when one process serves both.
    pub auth: Auth,
    pub cache: Cache,
    pub settings: QuerySettings,
}

impl std::ops::Deref for QueryState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl QueryState {
    /// Without a notice source: every read goes to PostgreSQL, read-your-writes polls the
    /// checkpoints, and the live stream stays silent. `cortex serve` uses [`Self::with_cache`].
    pub fn new(reads: Reads, auth: Auth) -> Self {
        let fresh = Freshness::new(reads.pool().clone(), FreshnessSettings::default());
        let cache = Cache::new(fresh, CacheSettings::default(), None).expect("no L2 URL to parse");
        Self::with_cache(reads, auth, cache, QuerySettings::default())
    }

    pub fn with_cache(reads: Reads, auth: Auth, cache: Cache, settings: QuerySettings) -> Self {
        Self(Arc::new(Shared { reads, auth, cache, settings }))
    }

    /// Waits for `after` (when given) on the projections in `of`, then answers from the
    /// cache or `build`, as 200 with its `ETag` or 304.
    pub async fn answer<F, Fut>(
        &self,
        tenant_id: Uuid,
        headers: &ReadHeaders,
        after: Option<Position>,
        key: CacheKey,
        of: &[Projection],
        build: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Prepared, ReadError>>,
    {
        if let Some(after) = after {
            self.caught_up(of, after).await?;
        }
        Ok(respond(headers, self.cache.get_or_build(tenant_id, key, of, after, build).await?))
    }

    /// Read-your-writes: waits until every projection in `of` passed `after`, up to the
    /// bound, else 503 naming how far behind each one is.
    pub async fn caught_up(&self, of: &[Projection], after: Position) -> Result<(), ApiError> {
        let fresh = self.cache.freshness();
        // A position beyond the log's head was never answered by a command of this store: a
        // client error, not a wait.
        if !crate::fresh::reaches(&fresh.checkpoints(), &[after; 2], of)
            && let Ok(Some(head)) = self.reads.head().await
            && after > head
        {
            return Err(ApiError::invalid_field(
                "X-Cortex-After",
                format!(
                    "position {} is beyond the end of the log: not a position this service answered",
                    after.token()
                ),
            ));
        }
        let Err(known) = fresh.wait_for(of, after, self.settings.after_wait).await else {
            return Ok(());
        };
        let lagging: Vec<Projection> = of.iter().copied().filter(|p| known[*p as usize] < after).collect();
        let counts = futures::future::join_all(
            lagging.iter().map(|p| self.reads.events_between(known[*p as usize], after)),
        )
        .await;
        let behind: Vec<_> = lagging
            .iter()
            .zip(counts)
            .map(|(p, events)| json!({"projection": p.name(), "position": known[*p as usize].token(), "events_behind": events}))
            .collect();
        let names: Vec<&str> = lagging.iter().map(|p| p.name()).collect();
        Err(ApiError::NotCaughtUp {
            retry_after: RETRY_AFTER,
            detail: format!(
                "the read models ({}) have not reached position {} within {} ms; retry, or read without X-Cortex-After",
                names.join(", "),
                after.token(),
                self.settings.after_wait.as_millis()
            ),
            lag: json!({"after": after.token(), "projections": behind}),
        })
    }
}

/// The request headers a read looks at: `If-None-Match` and `X-Cortex-After`, every value
/// of each. Taken out of the request on their own: axum's `HeaderMap` extractor copies the
/// whole map, on every request.
#[derive(Debug, Default)]
pub struct ReadHeaders {
    pub if_none_match: Vec<HeaderValue>,
    pub after: Vec<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for ReadHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        const AFTER: HeaderName = HeaderName::from_static(AFTER_HEADER);
        let all = |name| parts.headers.get_all(name).iter().cloned().collect();
        Ok(Self { if_none_match: all(header::IF_NONE_MATCH), after: all(AFTER) })
    }
}

/// The read-your-writes position of a request: `X-Cortex-After` or the `after` parameter
/// (one of them), a position token as commands answer it.
pub fn read_after(raw: Option<&str>, headers: &ReadHeaders) -> Result<Option<Position>, ApiError> {
    let from_query: Vec<String> = raw
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "after")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    let (pointer, text) = match (headers.after.as_slice(), from_query.as_slice()) {
        ([], []) => return Ok(None),
        ([one], []) => ("X-Cortex-After", one.to_str().unwrap_or("\u{fffd}").to_owned()),
        ([], [one]) => ("/after", one.clone()),
        _ => {
            return Err(ApiError::invalid_field(
                "X-Cortex-After",
                "give the read-your-writes position once: either the X-Cortex-After header or the after parameter",
            ));
        }
    };
    text.trim().parse::<Position>().map(Some).map_err(|e| ApiError::invalid_field(pointer, e.to_string()))
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
        .routes(routes!(changes::stream))
        .layer(middleware::from_fn_with_state(state.auth.clone(), authenticate))
        .with_state(state)
}

/// The query API alone: `/v1` routes, `/healthz`, `/readyz`, `/openapi.json`.
pub fn router(state: QueryState) -> Router {
    let readiness = readiness(&state);
    let (v1, api) = routes(state).split_for_parts();
    cortex_http::app::finish(v1, cortex_http::app::openapi_document(api), readiness)
}

/// The query side's dependencies for `/readyz`: PostgreSQL (required), the notice stream
/// and the shared cache (optional: without them reads go to PostgreSQL).
pub fn readiness(state: &QueryState) -> cortex_http::Readiness {
    use cortex_http::ready::Status;
    let mut r = cortex_http::Readiness::default();
    r.add_postgres(state.reads.pool().clone());
    let fresh = state.cache.freshness().clone();
    r.add("notices", false, move || {
        let live = fresh.is_live();
        Box::pin(async move {
            if live {
                Status::ok("change notices live; caches in use")
            } else {
                Status::degraded(
                    "change notices not live (NATS unreachable or not configured): caches bypassed",
                )
            }
        })
    });
    let cache = state.cache.clone();
    r.add("cache", false, move || {
        let cache = cache.clone();
        Box::pin(async move {
            match cache.l2_status().await {
                None => Status::ok("no shared cache configured (CORTEX_CACHE_URL unset)"),
                Some(Ok(())) => Status::ok("shared cache answers"),
                Some(Err(e)) => {
                    Status::degraded(format!("shared cache unreachable ({e}): reading PostgreSQL"))
                }
            }
        })
    });
    r
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

/// An `as_of` replay that failed: the store's faults as a read's, the rest unexpected.
pub(crate) fn as_of_error(e: crate::audit::as_of::AsOfError) -> ApiError {
    match e {
        crate::audit::as_of::AsOfError::Store(e) => ApiError::from(ReadError::Store(e)),
        e => ApiError::Unexpected(e.into()),
    }
}

/// 200 with the body and its `ETag`, or 304 when `If-None-Match` names that tag (or is `*`).
/// Answers are per tenant: shared caches must not keep them, and a client revalidates.
pub fn respond(request_headers: &ReadHeaders, prepared: Prepared) -> Response {
    respond_with(request_headers, prepared, "private, no-cache")
}

/// [`respond`] for an answer that never changes (a past time's, `as_of`): a client may keep
/// it for a year without asking again.
pub fn respond_immutable(request_headers: &ReadHeaders, prepared: Prepared) -> Response {
    respond_with(request_headers, prepared, "private, max-age=31536000, immutable")
}

fn respond_with(request_headers: &ReadHeaders, prepared: Prepared, cache: &'static str) -> Response {
    let etag = prepared.etag;
    let cache_control = (header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Tags are visible ASCII (`Prepared`, and the cache's decoding checks it).
    if etag.to_str().is_ok_and(|ours| none_match(&request_headers.if_none_match, ours)) {
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

/// Whether `If-None-Match` (its values) matches `etag` (RFC 9110 §13.1.2: weak comparison,
/// `*`, lists).
fn none_match(if_none_match: &[HeaderValue], etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = strip(etag);
    if_none_match
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> Vec<HeaderValue> {
        vec![HeaderValue::from_str(value).unwrap()]
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        assert!(none_match(&headers("\"a\""), "\"a\""));
        assert!(none_match(&headers("W/\"a\""), "\"a\""));
        assert!(none_match(&headers("\"x\", \"a\""), "\"a\""));
        assert!(none_match(&headers("*"), "\"a\""));
        assert!(!none_match(&headers("\"b\""), "\"a\""));
        assert!(!none_match(&[], "\"a\""));
    }
}
