//! What a projection is: a filter over `$all`, a schema of tables, and an `apply` that turns a
//! batch of events into statements inside the runner's transaction.

use async_trait::async_trait;
use cortex_events::{EventFilter, RecordedEvent, catalog::DecodeError};
use sqlx::PgConnection;

/// Why a batch could not be applied. The runner stops the projection on it, naming the
/// event, its stream and position (never skipped silently).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the event does not decode")]
    Decode(#[from] DecodeError),
    #[error("postgresql: {step}")]
    Postgres {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

pub(crate) fn pg(step: &'static str) -> impl FnOnce(sqlx::Error) -> ApplyError {
    move |source| ApplyError::Postgres { step, source }
}

#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// The projection's name: its checkpoint key, and its schema `rm_<name>`.
    fn name(&self) -> &'static str;

    /// The events it reads (others pass as checkpoints).
    fn filter(&self) -> EventFilter;

    /// Applies one event. `conn` is inside the runner's transaction, with `search_path` set
    /// to the projection's schema (live or shadow): statements name tables unqualified.
    async fn apply(&self, conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), ApplyError>;
}
