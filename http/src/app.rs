//! What every PolicyCortex HTTP listener has around its `/v1` routes: `/healthz`, `/readyz`,
//! `/openapi.json`, a problem+json 404 for unknown routes, the 1 MiB body limit, a panic
//! catcher (a bug answers a problem document, never a dropped connection) and request
//! tracing. `cortex serve` merges the routes of the components it runs and finishes them
//! here once, so that one document describes them all.

use std::sync::Arc;

use axum::{Json, Router, extract::DefaultBodyLimit, response::IntoResponse, routing::get};
use serde_json::{Value, json};
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

use crate::{problem::ApiError, ready::Readiness};

/// Largest request body accepted (DESIGN §8: 413 above it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3.1 document of `api` with what every route shares: the title, the problem
/// convention, bearer authentication.
pub fn openapi_document(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or_else(|_| json!({}));
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": "PolicyCortex API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Event-sourced cloud governance. Errors are application/problem+json (RFC 9457); \
                        every command answers a `position` token for read-your-writes (`X-Cortex-After`).",
    });
    doc["components"]["securitySchemes"] = json!({"bearer": {"type": "http", "scheme": "bearer"}});
    doc["security"] = json!([{"bearer": []}]);
    doc
}

/// `v1` (already authenticated and with its state) with the routes and layers every
/// listener has; `document` is served at `/openapi.json`.
pub fn finish(v1: Router, document: Value, readiness: Readiness) -> Router {
    let document = Arc::new(document);
    let routes = Router::new()
        .merge(v1)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(move || readiness.clone().respond()))
        .route("/openapi.json", get(move || async move { Json((*document).clone()) }))
        .fallback(|| async { ApiError::NotFound { what: "route" } });
    // Around the whole router once, outermost first. `Router::layer` would wrap every route
    // on its own, one boxed service per layer, and each request would clone and box its way
    // through all of them: with three layers, some 4 % of a cached GET's CPU.
    let layered = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Unexpected(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(routes);
    Router::new().fallback_service(layered)
}
