//! The request context of a command: the authenticated caller (authentication and rate
//! limits are `cortex_http::auth`, shared with the query API), the correlation id and the
//! trace that every event of the decision records.

use axum::{extract::FromRequestParts, http::request::Parts};
use uuid::Uuid;

pub use cortex_http::auth::{RateLimit, authenticate};

use super::problem::ApiError;
use crate::{handlers::RequestContext, tenants::Caller};

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
