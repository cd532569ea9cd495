//! Reads: one function per query, from a typed query key (tenant + what was asked) to a
//! [`Prepared`] answer — the JSON body as bytes and its entity tag — straight from the
//! PostgreSQL read models or the event store.
//!
//! The routes call these functions and never SQL directly, so that a cache can sit between
//! the two: a [`Prepared`] is what it stores and serves, and the query keys
//! ([`ResourceQuery`], [`PolicyQuery`], …) are `Hash + Eq`, normalised so that two spellings
//! of one question are one key.
//!
//! Every statement is runtime-checked `sqlx::query` (see docs/decisions.md) in a function
//! with a `tracing` span. A read is a single statement where it reads several tables, so
//! that what it answers comes from one snapshot.

pub mod compliance;
pub mod history;
pub mod policies;
pub mod resources;

use std::sync::Arc;

use axum::http::HeaderValue;
use bytes::Bytes;
use cortex_events::{EventStore, Position, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

pub use compliance::{GroupBy, MAX_TREND_DAYS, SummaryQuery, TrendQuery};
pub use history::HistoryQuery;
pub use policies::PolicyQuery;
pub use resources::{ComplianceFilter, ResourceFilter, ResourceQuery, TagFilter};

/// An answer ready to send: the JSON body and its strong entity tag (quoted, as sent in
/// `ETag`), both sent from the cache as they are: a hit copies neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Prepared {
    /// `value` as JSON, tagged with a digest of the bytes.
    pub(crate) fn json<T: Serialize>(value: &T) -> Result<Self, ReadError> {
        let body = serde_json::to_vec(value).map_err(ReadError::Encode)?;
        let etag = quoted(&hex::encode(Sha256::digest(&body))[..32]);
        Ok(Self { body: Bytes::from(body), etag })
    }

    /// `value` as JSON with an entity tag the caller derived from what the body depends on.
    fn json_tagged<T: Serialize>(value: &T, tag: &str) -> Result<Self, ReadError> {
        let body = serde_json::to_vec(value).map_err(ReadError::Encode)?;
        Ok(Self { body: Bytes::from(body), etag: quoted(tag) })
    }
}

/// `"tag"` as a header value. Tags are hex digits and revision numbers; anything a header
/// cannot carry becomes the empty tag `""` (never matched by a client's `If-None-Match`
/// unless it sends `""` or `*`).
fn quoted(tag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{tag}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Why a read has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Unknown, or another tenant's (the two are indistinguishable by design, DESIGN §6).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("postgresql: {step}")]
    Postgres {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("event store")]
    Store(#[from] StoreError),
    #[error("encoding the answer")]
    Encode(#[source] serde_json::Error),
}

impl ReadError {
    /// Whether the same read may succeed later (a dependency is down or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Postgres { source, .. } => is_transient(source),
            Self::Store(e) => e.is_transient(),
            Self::NotFound { .. } | Self::Encode(_) => false,
        }
    }
}

use cortex_events::postgres::is_transient_sqlx as is_transient;

fn pg(step: &'static str) -> impl FnOnce(sqlx::Error) -> ReadError {
    move |source| ReadError::Postgres { step, source }
}

/// The read side's handles. Cheap to clone.
#[derive(Clone)]
pub struct Reads {
    pool: PgPool,
    store: Arc<dyn EventStore>,
}

impl Reads {
    /// The event store (histories and `as_of` answers read it).
    pub fn store(&self) -> &dyn EventStore {
        self.store.as_ref()
    }

    /// Reads the read models in `pool` and histories from `store`.
    pub fn new(pool: PgPool, store: Arc<dyn EventStore>) -> Self {
        Self { pool, store }
    }
}

impl Reads {
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The last position of the log.
    #[tracing::instrument(skip(self))]
    pub async fn head(&self) -> Result<Option<Position>, ReadError> {
        Ok(self.store.head().await?)
    }

    /// How many events of the log lie in `(from, to]`, when the store counts cheaply and
    /// answers within half a second (for the lag a read-your-writes timeout reports).
    #[tracing::instrument(skip(self))]
    pub async fn events_between(&self, from: Position, to: Position) -> Option<u64> {
        let count = async {
            let after_from = self.store.count_after(Some(from)).await.ok()??;
            let after_to = self.store.count_after(Some(to)).await.ok()??;
            Some(after_from.saturating_sub(after_to))
        };
        tokio::time::timeout(std::time::Duration::from_millis(500), count).await.ok().flatten()
    }
}
