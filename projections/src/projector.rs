//! What a projection is: a filter over `$all`, a schema of tables, and an `apply` that turns a
//! batch of events into statements inside the runner's transaction, saying what it changed.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use cortex_events::{EventFilter, RecordedEvent, catalog::DecodeError};
use sqlx::PgConnection;
use uuid::Uuid;

/// Why a batch could not be applied.
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
    /// A projector's own failure (the evaluator's appends): `transient` says whether trying
    /// again later can succeed.
    #[error("{source}")]
    Other {
        transient: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ApplyError {
    /// Whether trying again later can succeed (the database was unreachable, a deadlock, a
    /// serialization failure), as opposed to an event this projector cannot apply at all.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Decode(_) => false,
            Self::Postgres { source, .. } => is_transient(source),
            Self::Other { transient, .. } => *transient,
        }
    }
}

/// Errors of the connection rather than of the statement: retrying can succeed.
pub use cortex_events::postgres::is_transient_sqlx as is_transient;

/// Maps a sqlx error of one step to an [`ApplyError`].
pub fn pg(step: &'static str) -> impl FnOnce(sqlx::Error) -> ApplyError {
    move |source| ApplyError::Postgres { step, source }
}

/// What a batch changed, by tenant and read model: published after commit as the change
/// notices of DESIGN §6 (`cortex.changes.{tenant}.{model}`). An empty id set means "the whole
/// model of that tenant" (after a rebuild swap).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    by_model: BTreeMap<(Uuid, &'static str), BTreeSet<String>>,
}

impl Changes {
    /// Row `id` of `model` of `tenant` changed.
    pub fn record(&mut self, tenant: Uuid, model: &'static str, id: impl ToString) {
        self.by_model.entry((tenant, model)).or_default().insert(id.to_string());
    }

    /// Everything of `model` for `tenant` changed.
    pub fn whole(&mut self, tenant: Uuid, model: &'static str) {
        self.by_model.insert((tenant, model), BTreeSet::new());
    }

    pub fn is_empty(&self) -> bool {
        self.by_model.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_model.clear();
    }

    /// `(tenant, model, ids)` in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, &'static str, &BTreeSet<String>)> {
        self.by_model.iter().map(|((t, m), ids)| (*t, *m, ids))
    }
}

#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// The projection's name: its checkpoint key, and its schema `rm_<name>`.
    fn name(&self) -> &'static str;

    /// The events it reads (others pass as checkpoints).
    fn filter(&self) -> EventFilter;

    /// The model names its change notices use: after a rebuild swaps its tables, each of
    /// these is announced as changed as a whole for every tenant.
    fn models(&self) -> &'static [&'static str] {
        &[]
    }

    /// Applies `batch` (in log order, at least one event) and records in `changes` what it
    /// changed. `conn` is inside the runner's transaction, with `search_path` set to the
    /// projection's schema (live or shadow): statements name tables unqualified.
    ///
    /// The result must depend only on the tables and the events, never on how the log was cut
    /// into batches: the runner may apply the same events as one batch or one at a time
    /// (it does so to find the event a failed batch stumbled on).
    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[RecordedEvent],
        changes: &mut Changes,
    ) -> Result<(), ApplyError>;

    /// When the projector next wants [`Projector::tick`] called although no event arrived (a
    /// timer, e.g. an exemption's expiry); `None`: never. Asked after every commit and tick.
    fn next_tick(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        None
    }

    /// Work due at `now` that no event brings: run by the runner once it is caught up, in a
    /// transaction of its own (no checkpoint moves), never alongside a batch.
    async fn tick(
        &self,
        conn: &mut PgConnection,
        now: chrono::DateTime<chrono::Utc>,
        changes: &mut Changes,
    ) -> Result<(), ApplyError> {
        let _ = (conn, now, changes);
        Ok(())
    }
}
