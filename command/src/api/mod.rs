//! The command HTTP API (DESIGN §8, command half): one router per route group, merged
//! around one shared [`ApiState`]; one error type ([`problem::ApiError`]) that answers
//! `application/problem+json`.
//!
//! A request passes, outermost first: tracing → panic catcher (a bug answers a problem
//! document, never a dropped connection) → authentication and the per-key rate limit
//! (`cortex_http`, shared with the query API) → `Idempotency-Key` replay → the route, which validates its body against
//! `schemas/commands/` and calls a handler in [`crate::handlers`].

pub mod auth;
pub mod body;
pub mod evaluations;
pub mod idempotency;
pub mod openapi;
pub mod policies;
pub mod problem;
pub mod resources;

use axum::{Router, middleware};
pub use cortex_http::Auth;
use futures::future::BoxFuture;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub use auth::RateLimit;
pub use idempotency::IdempotencyStore;
use problem::ApiError;

use crate::handlers::Commands;

/// What every request handler shares. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub commands: Commands,
    /// The key ring and rate limiter, shared with the query API when one process serves both.
    pub auth: Auth,
    pub idempotency: IdempotencyStore,
}

impl ApiState {
    pub fn new(commands: Commands, auth: Auth, idempotency: IdempotencyStore) -> Self {
        Self { commands, auth, idempotency }
    }

    /// The housekeeping tasks the command routes need while they serve: idempotency purging
    /// (the authentication's own tasks are [`Auth::background_tasks`], run once per process).
    /// The caller spawns and supervises them.
    pub fn background_tasks(&self) -> Vec<(&'static str, BoxFuture<'static, ()>)> {
        vec![("idempotency-purger", Box::pin(idempotency::purge_periodically(self.idempotency.clone())))]
    }
}

/// The command routes, authenticated, with their OpenAPI description; `cortex serve`
/// merges them with the query routes (see [`cortex_http::app`]).
pub fn routes(state: ApiState) -> OpenApiRouter {
    body::init_schemas();
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
        .layer(middleware::from_fn_with_state(state.auth.clone(), auth::authenticate))
        .with_state(state)
}

/// The command API alone: `/v1` routes, `/healthz`, `/openapi.json`.
pub fn router(state: ApiState) -> Router {
    let (v1, api) = routes(state).split_for_parts();
    cortex_http::app::finish(v1, openapi::document(api), cortex_http::Readiness::default())
}

/// A UUID from the path, or 400 naming the parameter.
pub(crate) fn path_uuid(name: &str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text)
        .map_err(|_| ApiError::invalid_field("", format!("{name} in the path is not a UUID: {text:?}")))
}
