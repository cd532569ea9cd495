//! # cortex-http — what the command and query APIs share
//!
//! DESIGN §1 keeps `cortex-query` independent of `cortex-command`; the HTTP contracts both
//! APIs must keep alike (DESIGN §6, §8) live here instead:
//!
//! - [`problem`]: the one error type, answered as RFC 9457 `application/problem+json`;
//! - [`tenants`]: tenants and their API keys, held in memory by the [`tenants::KeyRing`];
//! - [`auth`]: the bearer-key middleware and the per-key rate limit ([`auth::Auth`]), and
//!   the [`tenants::Caller`] it hands to the routes;
//! - [`ready`]: `/readyz`, each dependency's check;
//! - [`app`]: `/healthz`, `/readyz`, `/openapi.json`, the fallback, body limit, panic catcher and
//!   tracing around the `/v1` routes of whichever components a process serves.
//!
//! A request flows: tracing → panic catcher → [`auth::authenticate`] → the component's
//! route, whose errors become an [`problem::ApiError`].

pub mod app;
pub mod auth;
pub mod problem;
pub mod ready;
pub mod tenants;

pub use auth::{Auth, RateLimit};
pub use problem::ApiError;
pub use ready::Readiness;
pub use tenants::{Caller, KeyRing};
