//! The command HTTP API (DESIGN §8, command half): one router per route group, merged
//! around one shared [`ApiState`]; one error type ([`problem::ApiError`]) that answers
//! `application/problem+json`.
//!
//! A request passes, outermost first: tracing → panic catcher (a bug answers a problem
//! document, never a dropped connection) → authentication and the per-key rate limit →
//! `Idempotency-Key` replay → the route, which validates its body against
//! `schemas/commands/` and calls a handler in [`crate::handlers`].

pub mod auth;
pub mod body;
pub mod evaluations;
pub mod idempotency;
pub mod openapi;
pub mod policies;
pub mod problem;
pub mod resources;

use std::{sync::Arc, time::Duration};

use axum::{Json, Router, extract::DefaultBodyLimit, middleware, response::IntoResponse, routing::get};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub use auth::RateLimit;
pub use idempotency::IdempotencyStore;
use problem::ApiError;

use crate::{handlers::Commands, tenants::KeyRing};

/// What every request handler shares. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub commands: Commands,
    pub keys: KeyRing,
    pub idempotency: IdempotencyStore,
    pub(crate) limiter: Arc<auth::KeyLimiter>,
}

impl ApiState {
    pub fn new(
        commands: Commands,
        keys: KeyRing,
        idempotency: IdempotencyStore,
        rate_limit: RateLimit,
    ) -> Self {
        Self { commands, keys, idempotency, limiter: auth::limiter(rate_limit) }
    }

    /// The housekeeping tasks the API needs while it serves: rate-limiter pruning, the
    /// key ring's periodic reload, idempotency purging. The caller spawns and supervises them.
    pub fn background_tasks(&self) -> Vec<(&'static str, futures::future::BoxFuture<'static, ()>)> {
        let keys = self.keys.clone();
        vec![
            ("rate-limiter-pruner", Box::pin(auth::prune_limiter(self.limiter.clone()))),
            ("idempotency-purger", Box::pin(idempotency::purge_periodically(self.idempotency.clone()))),
            (
                "key-ring-reloader",
                Box::pin(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(30));
                    loop {
                        tick.tick().await;
                        if let Err(e) = keys.reload().await {
                            // The ring keeps its last contents; the next tick tries again.
                            tracing::warn!(
                                error = format!("{:#}", anyhow::Error::new(e)),
                                "reloading the API keys failed"
                            );
                        }
                    }
                }),
            ),
        ]
    }
}

/// The command routes with their OpenAPI description.
fn command_routes(state: ApiState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(resources::register))
        .routes(routes!(resources::register_batch))
        .routes(routes!(resources::delete))
        .routes(routes!(policies::create))
        .routes(routes!(policies::update, policies::delete))
        .routes(routes!(policies::enable))
        .routes(routes!(policies::disable))
        .routes(routes!(policies::grant_exemption))
        .routes(routes!(policies::revoke_exemption))
        .routes(routes!(evaluations::record))
        .layer(middleware::from_fn_with_state(state.clone(), idempotency::idempotency))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .with_state(state)
}

/// The whole command API: `/v1` routes, `/healthz`, `/openapi.json`.
pub fn router(state: ApiState) -> Router {
    body::init_schemas();
    let (v1, api) = command_routes(state).split_for_parts();
    let document = Arc::new(openapi::document(api));
    Router::new()
        .merge(v1)
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/openapi.json", get(move || async move { Json((*document).clone()) }))
        .fallback(|| async { ApiError::NotFound { what: "route" } })
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Unexpected(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(TraceLayer::new_for_http())
}

/// A UUID from the path, or 400 naming the parameter.
pub(crate) fn path_uuid(name: &str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text)
        .map_err(|_| ApiError::invalid_field("", format!("{name} in the path is not a UUID: {text:?}")))
}
