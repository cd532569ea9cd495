//! `Idempotency-Key`: the first answer to a (tenant, key) is stored with a digest of the
//! request; a retry of the same request replays it without running the command again, the
//! same key with another request is 422, and a retry while the first is still running is
//! 409. Answers are kept at least the configured time (default 24 h). 5xx answers are not
//! kept, so that a retry after an outage runs the command.
//!
//! The in-flight marker is a row without a status. A process that dies mid-request leaves
//! it behind; after [`ABANDONED_AFTER`] a retry takes it over.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{ApiState, body::MAX_BODY_BYTES, problem::ApiError};
use crate::tenants::Caller;

pub const HEADER: &str = "idempotency-key";
/// A pending record older than this belongs to a request that will never finish.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct IdempotencyStore {
    pool: PgPool,
    keep: Duration,
}

enum Begun {
    /// First time: run the request, then [`IdempotencyStore::finish`].
    Started,
    Replay {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    OtherRequest,
    InFlight,
}

#[derive(Debug, thiserror::Error)]
#[error("postgresql: {step}")]
struct StepError {
    step: &'static str,
    #[source]
    source: sqlx::Error,
}

fn pg(step: &'static str) -> impl FnOnce(sqlx::Error) -> StepError {
    move |source| StepError { step, source }
}

impl IdempotencyStore {
    pub fn new(pool: PgPool, keep: Duration) -> Self {
        Self { pool, keep }
    }

    #[tracing::instrument(skip(self, digest))]
    async fn begin(&self, tenant: Uuid, key: &str, digest: &[u8]) -> Result<Begun, StepError> {
        let keep = self.keep.as_secs_f64();
        let abandoned = ABANDONED_AFTER.as_secs_f64();
        // Insert, or take over a record that expired or was abandoned mid-request.
        let claimed = sqlx::query(
            "INSERT INTO idempotency_records (tenant_id, idem_key, request_digest) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, idem_key) DO UPDATE
                SET request_digest = EXCLUDED.request_digest, status = NULL, content_type = NULL,
                    body = NULL, created_at = now()
              WHERE idempotency_records.created_at < now() - make_interval(secs => $4)
                 OR (idempotency_records.status IS NULL
                     AND idempotency_records.created_at < now() - make_interval(secs => $5))
             RETURNING 1",
        )
        .bind(tenant)
        .bind(key)
        .bind(digest)
        .bind(keep)
        .bind(abandoned)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg("claim idempotency key"))?;
        if claimed.is_some() {
            return Ok(Begun::Started);
        }
        let row = sqlx::query(
            "SELECT request_digest, status, content_type, body FROM idempotency_records
              WHERE tenant_id = $1 AND idem_key = $2",
        )
        .bind(tenant)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg("read idempotency record"))?;
        // Deleted between the two statements (a 5xx of the first request): start afresh.
        let Some(row) = row else { return Box::pin(self.begin(tenant, key, digest)).await };
        let stored: Vec<u8> = row.get(0);
        if stored != digest {
            return Ok(Begun::OtherRequest);
        }
        Ok(match row.get::<Option<i16>, _>(1) {
            None => Begun::InFlight,
            Some(status) => Begun::Replay {
                status: status as u16,
                content_type: row.get(2),
                body: row.get::<Option<Vec<u8>>, _>(3).unwrap_or_default(),
            },
        })
    }

    #[tracing::instrument(skip(self, body))]
    async fn finish(
        &self,
        tenant: Uuid,
        key: &str,
        status: StatusCode,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), StepError> {
        if status.is_server_error() {
            sqlx::query("DELETE FROM idempotency_records WHERE tenant_id = $1 AND idem_key = $2")
                .bind(tenant)
                .bind(key)
                .execute(&self.pool)
                .await
                .map_err(pg("release idempotency key"))?;
            return Ok(());
        }
        sqlx::query(
            "UPDATE idempotency_records SET status = $3, content_type = $4, body = $5
              WHERE tenant_id = $1 AND idem_key = $2",
        )
        .bind(tenant)
        .bind(key)
        .bind(status.as_u16() as i16)
        .bind(content_type)
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(pg("store idempotent answer"))?;
        Ok(())
    }

    /// Deletes records older than the keeping time; returns how many.
    #[tracing::instrument(skip(self))]
    pub async fn purge(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM idempotency_records WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(self.keep.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Purges expired records hourly.
pub(crate) async fn purge_periodically(store: IdempotencyStore) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(e) = store.purge().await {
            tracing::warn!(error = format!("{e:#}"), "purging idempotency records failed; will retry");
        }
    }
}

pub(crate) async fn idempotency(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    match run(state, request, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(state: ApiState, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(key) = request.headers().get(HEADER) else { return Ok(next.run(request).await) };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "",
                "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
            )
        })?
        .to_owned();
    let caller = request.extensions().get::<Caller>().copied().ok_or(ApiError::Unauthorized)?;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!("the body is over the limit of {MAX_BODY_BYTES} bytes"))
    })?;
    let mut digest = Sha256::new();
    digest.update(parts.method.as_str());
    digest.update(b"\n");
    digest.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    digest.update(b"\n");
    digest.update(&bytes);
    let digest = digest.finalize();

    let unavailable =
        |e: StepError| ApiError::Unavailable { retry_after: Duration::from_secs(1), cause: e.into() };
    match state.idempotency.begin(caller.tenant_id, &key, &digest).await.map_err(unavailable)? {
        Begun::Replay { status, content_type, body } => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        Begun::OtherRequest => Err(ApiError::Unprocessable {
            detail: "this Idempotency-Key was already used with a different request".to_owned(),
            errors: Vec::new(),
        }),
        Begun::InFlight => {
            Err(ApiError::Conflict("a request with this Idempotency-Key is still being processed".to_owned()))
        }
        Begun::Started => {
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let (parts, body) = response.into_parts();
            // Our own answers are small JSON documents; the limit only guards against a bug.
            let body = axum::body::to_bytes(body, 16 * MAX_BODY_BYTES)
                .await
                .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("buffering the answer: {e}")))?;
            let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            if let Err(e) =
                state.idempotency.finish(caller.tenant_id, &key, parts.status, content_type, &body).await
            {
                // The command ran; its answer stands. A retry will find the key in flight
                // until it is abandoned, then run again (and change nothing).
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "storing the idempotent answer failed"
                );
            }
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}
