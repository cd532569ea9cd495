//! Authentication (`Authorization: Bearer <key>`, checked in memory by the key ring) and
//! the per-key rate limit (GCRA, `governor`), as one middleware in front of every `/v1`
//! route. The caller lands in the request's extensions for the handlers.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts},
    middleware::Next,
    response::Response,
};
use governor::{Quota, RateLimiter, clock::Clock};
use uuid::Uuid;

use super::{ApiState, problem::ApiError};
use crate::{handlers::RequestContext, tenants::Caller};

/// Requests per second per key, and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

pub(crate) type KeyLimiter =
    RateLimiter<Uuid, governor::state::keyed::DefaultKeyedStateStore<Uuid>, governor::clock::DefaultClock>;

pub(crate) fn limiter(limit: RateLimit) -> Arc<KeyLimiter> {
    Arc::new(RateLimiter::keyed(Quota::per_second(limit.per_second).allow_burst(limit.burst)))
}

/// Forgets the state of keys that are back to a full allowance, so the limiter's memory
/// stays bounded by the keys active in the last moments.
pub(crate) async fn prune_limiter(limiter: Arc<KeyLimiter>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let caller = state
        .keys
        .authenticate(key)
        .await
        .map_err(|e| ApiError::Unavailable { retry_after: Duration::from_secs(1), cause: e.into() })?
        .ok_or(ApiError::Unauthorized)?;
    if let Err(not_until) = state.limiter.check_key(&caller.key_id) {
        let retry_after = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        return Err(ApiError::TooManyRequests { retry_after });
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The request's caller, correlation id and trace, for the handlers.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().copied().ok_or(ApiError::Unauthorized)?;
        let correlation_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::try_parse(v).ok())
            .unwrap_or_else(Uuid::now_v7);
        let incoming = parts.headers.get("traceparent").and_then(|v| v.to_str().ok());
        Ok(Ctx(RequestContext { caller, correlation_id, traceparent: Some(traceparent(incoming)) }))
    }
}

/// A W3C `traceparent` for this request's decision: the caller's trace continued with a new
/// span id when it sent a valid one, otherwise a new sampled trace.
fn traceparent(incoming: Option<&str>) -> String {
    let trace_id = incoming
        .and_then(|t| {
            let parts: Vec<&str> = t.split('-').collect();
            let valid = parts.len() == 4
                && parts[0] == "00"
                && parts[1].len() == 32
                && parts[1].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && parts[1] != "0".repeat(32);
            valid.then(|| parts[1].to_owned())
        })
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
    let span_id = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace_id}-{span_id}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_incoming_trace_is_continued_and_a_bad_one_replaced() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(traceparent(Some(incoming)).starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        let fresh = traceparent(Some("garbage"));
        assert_eq!(fresh.len(), 55);
        assert!(!fresh.contains("garbage"));
    }
}
