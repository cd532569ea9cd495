//! The projection runner: follows `$all` from the projection's checkpoint (exclusive),
//! batches events by count and by time, and applies a batch and writes the checkpoint in
//! **one** transaction, so that the read model always equals the log up to its checkpoint —
//! stopped at any point and restarted, it resumes exactly where its last commit left it.
//!
//! One runner per projection is active across processes: the active one holds a session
//! advisory lock on a connection of its own; the others wait as standbys and try the lock
//! again every `standby_poll`, so when the active process dies (its connection closes and
//! PostgreSQL releases the lock) a standby takes over within that period. The lock is not
//! what makes writes safe, though: every commit moves the checkpoint only from the position
//! this runner last wrote (compare-and-set), so a runner that lost its lock without noticing
//! fails its next commit instead of applying events twice.

use std::{sync::Arc, time::Duration};

use cortex_events::{EventStore, Position, RecordedEvent, StoreError, StreamName, SubscriptionItem};
use futures::StreamExt;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::projector::{ApplyError, Projector};

#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// Events applied per transaction at most.
    pub batch_size: usize,
    /// How long a partial batch waits for more events before it is applied.
    pub batch_wait: Duration,
    /// How often a standby tries to become the active runner.
    pub standby_poll: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self { batch_size: 500, batch_wait: Duration::from_millis(20), standby_poll: Duration::from_secs(1) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("projection {projection} cannot apply event {event_id} ({stream} at {position})")]
    Apply {
        projection: &'static str,
        event_id: Uuid,
        stream: StreamName,
        position: Position,
        #[source]
        cause: ApplyError,
    },
    #[error("projection {projection}: the subscription failed")]
    Subscription {
        projection: &'static str,
        #[source]
        cause: StoreError,
    },
    #[error("projection {projection}: the subscription ended")]
    SubscriptionEnded { projection: &'static str },
    #[error("projection {projection}: another runner moved the checkpoint; this one stops")]
    Superseded { projection: &'static str },
    #[error("projection {projection}: postgresql: {step}")]
    Postgres {
        projection: &'static str,
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// Runs one projector against one schema (its live one by default).
pub struct Runner<P> {
    store: Arc<dyn EventStore>,
    pool: PgPool,
    projector: Arc<P>,
    settings: RunnerSettings,
    schema: String,
}

impl<P: Projector> Runner<P> {
    pub fn new(store: Arc<dyn EventStore>, pool: PgPool, projector: P, settings: RunnerSettings) -> Self {
        let schema = format!("rm_{}", projector.name());
        Self { store, pool, projector: Arc::new(projector), settings, schema }
    }

    fn pg(&self, step: &'static str) -> impl FnOnce(sqlx::Error) -> RunnerError + use<P> {
        let projection = self.projector.name();
        move |source| RunnerError::Postgres { projection, step, source }
    }

    /// The stored checkpoint: the last position applied (`None` before the first batch).
    #[tracing::instrument(skip(self), fields(projection = self.projector.name()))]
    pub async fn checkpoint(&self) -> Result<Option<Position>, RunnerError> {
        let row = sqlx::query(
            "SELECT position_major, position_minor FROM projection_checkpoints WHERE projection = $1",
        )
        .bind(self.projector.name())
        .fetch_optional(&self.pool)
        .await
        .map_err(self.pg("read checkpoint"))?;
        Ok(row.map(|r| Position::new(r.get::<i64, _>(0) as u64, r.get::<i64, _>(1) as u64)))
    }

    /// Waits to be the active runner of this projection (see the module doc), then follows
    /// the log until an error (returned) or the future is dropped, which releases the lock.
    pub async fn run(&self, database_url: &str) -> Result<(), RunnerError> {
        use sqlx::Connection;
        let mut lock =
            sqlx::PgConnection::connect(database_url).await.map_err(self.pg("connect for the lock"))?;
        loop {
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(format!("cortex.projection.{}", self.projector.name()))
                .fetch_one(&mut lock)
                .await
                .map_err(self.pg("try the projection lock"))?;
            if held {
                break;
            }
            tokio::time::sleep(self.settings.standby_poll).await;
        }
        tracing::info!(projection = self.projector.name(), "active runner");
        let result = self.follow(false).await;
        drop(lock);
        result
    }

    /// Applies everything committed when it starts, then returns.
    pub async fn run_until_caught_up(&self) -> Result<(), RunnerError> {
        self.follow(true).await
    }

    async fn follow(&self, stop_when_caught_up: bool) -> Result<(), RunnerError> {
        let projection = self.projector.name();
        let from = self.checkpoint().await?;
        let mut written = from;
        let mut subscription = self.store.subscribe_all(from, self.projector.filter());
        let mut batch: Vec<RecordedEvent> = Vec::with_capacity(self.settings.batch_size);
        let mut last: Option<Position> = None;
        loop {
            let next = if last.is_some() {
                match tokio::time::timeout(self.settings.batch_wait, subscription.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.commit(&mut batch, last.take(), &mut written).await?;
                        continue;
                    }
                }
            } else {
                subscription.next().await
            };
            match next {
                Some(Ok(SubscriptionItem::Event(event))) => {
                    last = Some(event.position);
                    batch.push(*event);
                    if batch.len() >= self.settings.batch_size {
                        self.commit(&mut batch, last.take(), &mut written).await?;
                    }
                }
                Some(Ok(SubscriptionItem::Checkpoint(position))) => last = Some(position),
                Some(Ok(SubscriptionItem::CaughtUp)) => {
                    if stop_when_caught_up {
                        return self.commit(&mut batch, last.take(), &mut written).await;
                    }
                }
                Some(Err(cause)) => return Err(RunnerError::Subscription { projection, cause }),
                None => return Err(RunnerError::SubscriptionEnded { projection }),
            }
        }
    }

    /// Applies `batch` and moves the checkpoint from `written` to `to`, in one transaction.
    #[tracing::instrument(skip(self, batch, written), fields(projection = self.projector.name(), events = batch.len()))]
    async fn commit(
        &self,
        batch: &mut Vec<RecordedEvent>,
        to: Option<Position>,
        written: &mut Option<Position>,
    ) -> Result<(), RunnerError> {
        let Some(to) = to else { return Ok(()) };
        let projection = self.projector.name();
        let mut tx = self.pool.begin().await.map_err(self.pg("begin"))?;
        // The schema name is ours (`rm_` + a static projection name), never user input.
        sqlx::query(&format!("SET LOCAL search_path = {}, public", self.schema))
            .execute(&mut *tx)
            .await
            .map_err(self.pg("set search_path"))?;
        let mut changes = crate::projector::Changes::default();
        if let Err(cause) = self.projector.apply(&mut tx, batch, &mut changes).await {
            let event = &batch[0];
            return Err(RunnerError::Apply {
                projection,
                event_id: event.event_id(),
                stream: event.stream.clone(),
                position: event.position,
                cause,
            });
        }
        // Compare-and-set: only from the checkpoint this runner last wrote (or read).
        let moved = match *written {
            None => sqlx::query(
                "INSERT INTO public.projection_checkpoints (projection, position_major, position_minor, events) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (projection) DO NOTHING",
            )
            .bind(projection)
            .bind(to.major as i64)
            .bind(to.minor as i64)
            .bind(batch.len() as i64),
            Some(from) => sqlx::query(
                "UPDATE public.projection_checkpoints SET position_major = $2, position_minor = $3, \
                        events = events + $4, updated_at = now() \
                  WHERE projection = $1 AND position_major = $5 AND position_minor = $6",
            )
            .bind(projection)
            .bind(to.major as i64)
            .bind(to.minor as i64)
            .bind(batch.len() as i64)
            .bind(from.major as i64)
            .bind(from.minor as i64),
        }
        .execute(&mut *tx)
        .await
        .map_err(self.pg("write checkpoint"))?
        .rows_affected();
        if moved != 1 {
            return Err(RunnerError::Superseded { projection });
        }
        tx.commit().await.map_err(self.pg("commit"))?;
        *written = Some(to);
        batch.clear();
        Ok(())
    }
}
