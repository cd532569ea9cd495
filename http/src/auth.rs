//! Authentication (`Authorization: Bearer <key>`, checked in memory by the key ring) and
//! the per-key rate limit (GCRA, `governor`), as one middleware in front of every `/v1`
//! route of both APIs. The caller lands in the request's extensions, where handlers take
//! it as a [`Caller`] argument.
//!
//! One [`Auth`] serves a whole process: the command and query routes of one `cortex serve`
//! share the key ring and count against the same per-key allowance.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts},
    middleware::Next,
    response::Response,
};
use futures::future::BoxFuture;
use governor::{Quota, RateLimiter, clock::Clock};
use uuid::Uuid;

use crate::{
    problem::ApiError,
    tenants::{Caller, KeyRing},
};

/// Requests per second per key, and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

type KeyLimiter =
    RateLimiter<Uuid, governor::state::keyed::DefaultKeyedStateStore<Uuid>, governor::clock::DefaultClock>;

/// The key ring and the rate limiter. Cheap to clone: one reference count, as the
/// middleware clones it for every request (field by field that was three counts taken and
/// dropped, shared by every core).
#[derive(Clone)]
pub struct Auth(Arc<Shared>);

struct Shared {
    keys: KeyRing,
    limiter: Arc<KeyLimiter>,
}

impl Auth {
    pub fn new(keys: KeyRing, limit: RateLimit) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Self(Arc::new(Shared { keys, limiter: Arc::new(RateLimiter::keyed(quota)) }))
    }

    /// The API keys this process accepts.
    pub fn keys(&self) -> &KeyRing {
        &self.0.keys
    }

    /// The housekeeping the authentication needs while the API serves: rate-limiter pruning
    /// and the key ring's periodic reload. The caller spawns and supervises them.
    pub fn background_tasks(&self) -> Vec<(&'static str, BoxFuture<'static, ()>)> {
        vec![
            ("rate-limiter-pruner", Box::pin(prune_limiter(self.0.limiter.clone()))),
            ("key-ring-reloader", Box::pin(reload_keys(self.0.keys.clone()))),
        ]
    }
}

/// Forgets the state of keys that are back to a full allowance, so the limiter's memory
/// stays bounded by the keys active in the last moments.
async fn prune_limiter(limiter: Arc<KeyLimiter>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// Reloads the ring every 30 s: how a revoked key stops working.
async fn reload_keys(keys: KeyRing) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        if let Err(e) = keys.reload().await {
            // The ring keeps its last contents; the next tick tries again.
            tracing::warn!(error = format!("{:#}", anyhow::Error::new(e)), "reloading the API keys failed");
        }
    }
}

/// The middleware: 401 without a valid key, 429 over the key's allowance, else the request
/// goes on with its [`Caller`] in the extensions.
pub async fn authenticate(
    State(auth): State<Auth>,
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
    let caller = auth
        .keys()
        .authenticate(key)
        .await
        .map_err(|e| ApiError::Unavailable { retry_after: Duration::from_secs(1), cause: e.into() })?
        .ok_or(ApiError::Unauthorized)?;
    if let Err(not_until) = auth.0.limiter.check_key(&caller.key_id) {
        let retry_after = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        return Err(ApiError::TooManyRequests { retry_after });
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The authenticated caller of a route behind [`authenticate`].
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().copied().ok_or(ApiError::Unauthorized)
    }
}
