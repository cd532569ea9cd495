//! The projection runner: follows `$all` from the projection's checkpoint (exclusive),
//! batches events by count and by time, and applies a batch and writes the checkpoint in
//! **one** transaction, so that the read model always equals the log up to its checkpoint —
//! stopped at any point and restarted, it resumes exactly where its last commit left it.
//! After each commit it publishes what changed and the new checkpoint ([`Notifier`]).
//!
//! One runner per projection is active across processes: the active one holds a session
//! advisory lock on a connection of its own; the others wait as standbys and try the lock
//! again every `standby_poll`, so when the active process dies (its connection closes and
//! PostgreSQL releases the lock) a standby takes over within that period. The lock is not
//! what makes writes safe, though: every commit moves the checkpoint only from the position
//! this runner last wrote (compare-and-set), so a runner that lost its lock without noticing
//! fails its next commit instead of applying events twice, and starts over from the
//! checkpoint it finds.
//!
//! Faults: a subscription that fails, ends, or goes silent while the log's head moves (the
//! watchdog) is opened again from the checkpoint, with a backoff doubling up to
//! `max_backoff`; so is a database that cannot be reached. An event the projector cannot
//! apply is different: the runner finds it (a failed batch is applied again one event at a
//! time), commits everything before it, records the error with the event's id, stream and
//! position in `projection_status`, and stops that projection. It never skips an event.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cortex_events::{EventStore, Position, RecordedEvent, StoreError, StreamName, SubscriptionItem};
use futures::{StreamExt, stream::BoxStream};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    notify::Notifier,
    projector::{ApplyError, Changes, Projector},
    status::{self, Failure, State},
};

/// The default of [`RunnerSettings::rebuild_batch_size`] (see `ops/bench/projections`).
pub const REBUILD_BATCH_SIZE: usize = 20_000;

#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// Events applied per transaction at most.
    pub batch_size: usize,
    /// Events applied per transaction at most by a rebuild's shadow runner. Nobody reads the
    /// shadow and nothing waits on its notices, so it takes the log in far larger bites:
    /// fewer round trips, and the events of one key fold into one row write.
    pub rebuild_batch_size: usize,
    /// How long the first event of a partial batch waits for more before the batch is applied.
    pub batch_wait: Duration,
    /// How often a standby tries to become the active runner.
    pub standby_poll: Duration,
    /// A subscription that delivers nothing for this long while the log's head is beyond
    /// what it delivered is considered stuck and opened again.
    pub watchdog: Duration,
    /// The longest wait between two attempts after a fault.
    pub max_backoff: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            rebuild_batch_size: REBUILD_BATCH_SIZE,
            batch_wait: Duration::from_millis(2),
            standby_poll: Duration::from_secs(1),
            watchdog: Duration::from_secs(5),
            max_backoff: Duration::from_secs(10),
        }
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
    #[error(
        "projection {projection}: the subscription went silent at {seen:?} while the log's head is at {head}"
    )]
    Stalled { projection: &'static str, seen: Option<Position>, head: Position },
    #[error("projection {projection}: a step failed that can succeed later")]
    Transient {
        projection: &'static str,
        #[source]
        cause: ApplyError,
    },
    #[error("projection {projection}: another runner moved the checkpoint")]
    Superseded { projection: &'static str },
    #[error("projection {projection}: postgresql: {step}")]
    Postgres {
        projection: &'static str,
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl RunnerError {
    /// An event that cannot be applied: retrying cannot help, the projection stops.
    pub fn is_poison(&self) -> bool {
        matches!(self, Self::Apply { .. })
    }
}

/// Where a runner writes: the live tables (`rm_<name>`, checkpoint `<name>`) or a rebuild's
/// shadow (`rm_<name>__shadow`, checkpoint `<name>@shadow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub schema: String,
    pub checkpoint: String,
}

impl Target {
    pub fn live(name: &str) -> Self {
        Self { schema: format!("rm_{name}"), checkpoint: name.to_owned() }
    }

    pub fn shadow(name: &str) -> Self {
        Self { schema: format!("rm_{name}__shadow"), checkpoint: format!("{name}@shadow") }
    }
}

/// Runs one projector against one target (its live tables by default).
pub struct Runner<P: ?Sized> {
    store: Arc<dyn EventStore>,
    pool: PgPool,
    projector: Arc<P>,
    settings: RunnerSettings,
    target: Target,
    notifier: Notifier,
    /// Events applied by this runner (a rebuild's progress).
    applied: Arc<AtomicU64>,
}

impl<P: Projector> Runner<P> {
    pub fn new(store: Arc<dyn EventStore>, pool: PgPool, projector: P, settings: RunnerSettings) -> Self {
        Self::shared(store, pool, Arc::new(projector), settings)
    }
}

impl<P: Projector + ?Sized> Runner<P> {
    pub fn shared(
        store: Arc<dyn EventStore>,
        pool: PgPool,
        projector: Arc<P>,
        settings: RunnerSettings,
    ) -> Self {
        let target = Target::live(projector.name());
        Self { store, pool, projector, settings, target, notifier: Notifier::Off, applied: Arc::default() }
    }

    /// Publishes change and checkpoint notices after each commit.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Writes into `target` instead of the live tables.
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    pub fn projector(&self) -> &P {
        &self.projector
    }

    /// Events applied by this runner so far.
    pub fn applied(&self) -> Arc<AtomicU64> {
        self.applied.clone()
    }

    fn name(&self) -> &'static str {
        self.projector.name()
    }

    fn pg(&self, step: &'static str) -> impl FnOnce(sqlx::Error) -> RunnerError + use<P> {
        let projection = self.projector.name();
        move |source| RunnerError::Postgres { projection, step, source }
    }

    /// The stored checkpoint: the last position applied (`None` before the first batch).
    #[tracing::instrument(skip(self), fields(projection = %self.target.checkpoint))]
    pub async fn checkpoint(&self) -> Result<Option<Position>, RunnerError> {
        status::checkpoint(&self.pool, &self.target.checkpoint).await.map_err(self.pg("read checkpoint"))
    }

    /// Waits to be the active runner of this projection (see the module doc), then follows
    /// the log for as long as the future lives, recovering from faults by itself. Returns
    /// only for an event that cannot be applied (recorded in `projection_status`) — or never.
    pub async fn run(&self, database_url: &str) -> Result<(), RunnerError> {
        let initial = Duration::from_millis(100).min(self.settings.max_backoff);
        let mut backoff = initial;
        loop {
            let outcome = match self.wait_for_lock(database_url).await {
                Err(e) => {
                    // Not the active runner: its status row belongs to whoever is.
                    tracing::warn!(error = %cause_chain(&e), retry_in_ms = backoff.as_millis() as u64, "cannot wait for the projection lock; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                    continue;
                }
                Ok(lock) => {
                    tracing::info!(projection = self.name(), "active runner");
                    let before = self.applied.load(Ordering::Relaxed);
                    let outcome = self.follow(false).await;
                    drop(lock);
                    if self.applied.load(Ordering::Relaxed) > before {
                        backoff = initial;
                    }
                    outcome
                }
            };
            let Err(error) = outcome else { continue };
            if error.is_poison() {
                self.report(State::Failed, Some(&error)).await;
                tracing::error!(error = %cause_chain(&error), "projection stopped");
                return Err(error);
            }
            self.report(State::Retrying, Some(&error)).await;
            tracing::warn!(error = %cause_chain(&error), retry_in_ms = backoff.as_millis() as u64, "projection runner fault; trying again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    /// The lock connection, once this runner holds the projection's advisory lock.
    async fn wait_for_lock(&self, database_url: &str) -> Result<PgConnection, RunnerError> {
        use sqlx::Connection;
        let mut lock = PgConnection::connect(database_url).await.map_err(self.pg("connect for the lock"))?;
        loop {
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(format!("cortex.projection.{}", self.target.checkpoint))
                .fetch_one(&mut lock)
                .await
                .map_err(self.pg("try the projection lock"))?;
            if held {
                return Ok(lock);
            }
            tokio::time::sleep(self.settings.standby_poll).await;
        }
    }

    /// Follows the log without the lock and without recovering: returns the first error.
    pub async fn follow_live(&self) -> Result<(), RunnerError> {
        self.follow(false).await
    }

    /// Applies everything committed when it starts, then returns.
    pub async fn run_until_caught_up(&self) -> Result<(), RunnerError> {
        self.follow(true).await
    }

    /// Applies what `subscription` yields until it reports `CaughtUp`, then returns. The
    /// subscription must start right after the stored checkpoint `from` and deliver only
    /// events of the projector's filter: a rebuild of several projections feeds each from one
    /// shared read of the log ([`crate::fan_out`]).
    pub async fn run_until_caught_up_with(
        &self,
        from: Option<Position>,
        subscription: BoxStream<'static, Result<SubscriptionItem, StoreError>>,
    ) -> Result<(), RunnerError> {
        self.follow_stream(from, subscription, true).await
    }

    async fn follow(&self, stop_when_caught_up: bool) -> Result<(), RunnerError> {
        let from = self.checkpoint().await?;
        let subscription = self.store.subscribe_all(from, self.projector.filter());
        self.follow_stream(from, subscription, stop_when_caught_up).await
    }

    async fn follow_stream(
        &self,
        from: Option<Position>,
        mut subscription: BoxStream<'static, Result<SubscriptionItem, StoreError>>,
        stop_when_caught_up: bool,
    ) -> Result<(), RunnerError> {
        let projection = self.name();
        let mut written = from;
        let mut batch: Vec<RecordedEvent> = Vec::with_capacity(self.settings.batch_size);
        let mut last: Option<Position> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut rate = Rate::new();
        let mut watchdog = tokio::time::interval(self.settings.watchdog);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        watchdog.tick().await;
        let (mut heard, mut seen, mut caught_up) = (false, from, false);
        let mut last_head =
            self.store.head().await.map_err(|cause| RunnerError::Subscription { projection, cause })?;
        self.report(State::CatchingUp, None).await;
        // Ticks no earlier than this (a projector whose tick leaves its next tick due must not
        // spin).
        let mut tick_floor = tokio::time::Instant::now();
        loop {
            let tick_at = if caught_up && !stop_when_caught_up {
                self.projector.next_tick().map(|at| {
                    let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                    (tokio::time::Instant::now() + wait).max(tick_floor)
                })
            } else {
                None
            };
            let next = tokio::select! {
                biased;
                next = subscription.next() => next,
                () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    deadline = None;
                    self.commit(&mut batch, last.take(), &mut written, &mut rate).await?;
                    continue;
                }
                () = tokio::time::sleep_until(tick_at.unwrap_or_else(tokio::time::Instant::now)), if tick_at.is_some() => {
                    deadline = None;
                    self.commit(&mut batch, last.take(), &mut written, &mut rate).await?;
                    self.tick_once(written).await?;
                    tick_floor = tokio::time::Instant::now() + Duration::from_secs(1);
                    continue;
                }
                _ = watchdog.tick() => {
                    // Silent although the log holds more than it delivered: while catching up,
                    // or, once caught up, when the head moved on. (A head that stays put after
                    // the catch-up, e.g. filtered-out events at the end of the log that a
                    // server never reports, is not a stall.)
                    let head = self.store.head().await.map_err(|cause| RunnerError::Subscription { projection, cause })?;
                    let expecting = !caught_up || head != last_head;
                    if !heard && expecting && let Some(head) = head.filter(|h| seen < Some(*h)) {
                        return Err(RunnerError::Stalled { projection, seen, head });
                    }
                    last_head = head;
                    heard = false;
                    if rate.due() {
                        self.report_rate(&mut rate).await;
                    }
                    continue;
                }
            };
            heard = true;
            match next {
                Some(Ok(SubscriptionItem::Event(event))) => {
                    seen = Some(event.position);
                    last = Some(event.position);
                    batch.push(*event);
                    if batch.len() >= self.settings.batch_size {
                        deadline = None;
                        self.commit(&mut batch, last.take(), &mut written, &mut rate).await?;
                    } else if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.settings.batch_wait);
                    }
                }
                Some(Ok(SubscriptionItem::Checkpoint(position))) => {
                    seen = Some(position);
                    last = Some(position);
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.settings.batch_wait);
                    }
                }
                Some(Ok(SubscriptionItem::CaughtUp)) => {
                    caught_up = true;
                    if stop_when_caught_up {
                        return self.commit(&mut batch, last.take(), &mut written, &mut rate).await;
                    }
                    self.report(State::Live, None).await;
                }
                Some(Err(cause)) => return Err(RunnerError::Subscription { projection, cause }),
                None => return Err(RunnerError::SubscriptionEnded { projection }),
            }
        }
    }

    /// Applies `batch` and moves the checkpoint from `written` to `to`, in one transaction,
    /// then publishes the notices. A batch that fails for an event the projector cannot apply
    /// is applied again one event at a time, so that the error names that event and what
    /// precedes it is kept.
    async fn commit(
        &self,
        batch: &mut Vec<RecordedEvent>,
        to: Option<Position>,
        written: &mut Option<Position>,
        rate: &mut Rate,
    ) -> Result<(), RunnerError> {
        let Some(to) = to else { return Ok(()) };
        match self.commit_once(batch, to, *written).await {
            Ok(()) => {}
            Err(e) if e.is_poison() && batch.len() > 1 => {
                tracing::debug!(
                    projection = self.name(),
                    events = batch.len(),
                    "a batch failed; applying it one event at a time"
                );
                for event in batch.iter() {
                    self.commit_once(std::slice::from_ref(event), event.position, *written).await?;
                    *written = Some(event.position);
                    self.applied.fetch_add(1, Ordering::Relaxed);
                }
                // Only the batch as a whole failed; one at a time, every event applied.
                self.commit_once(&[], to, *written).await?;
                *written = Some(to);
                batch.clear();
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        *written = Some(to);
        let n = batch.len() as u64;
        self.applied.fetch_add(n, Ordering::Relaxed);
        rate.add(n);
        batch.clear();
        if rate.due() {
            self.report_rate(rate).await;
        }
        Ok(())
    }

    /// An apply error of a batch starting with `first`: a transient database error, or an event
    /// that cannot be applied (`first` when the batch is one event; for more, [`Self::commit`]
    /// looks for the event).
    fn apply_error(&self, cause: ApplyError, first: &RecordedEvent) -> RunnerError {
        let projection = self.name();
        match cause {
            ApplyError::Postgres { step, source } if crate::projector::is_transient(&source) => {
                RunnerError::Postgres { projection, step, source }
            }
            cause @ ApplyError::Other { transient: true, .. } => RunnerError::Transient { projection, cause },
            cause => RunnerError::Apply {
                projection,
                event_id: first.event_id(),
                stream: first.stream.clone(),
                position: first.position,
                cause,
            },
        }
    }

    #[tracing::instrument(name = "projection.commit", skip(self, events, from), fields(projection = %self.target.checkpoint, events = events.len(), position = %to))]
    async fn commit_once(
        &self,
        events: &[RecordedEvent],
        to: Position,
        from: Option<Position>,
    ) -> Result<(), RunnerError> {
        let projection = self.name();
        let mut tx = cortex_events::postgres::begin(&self.pool).await.map_err(self.pg("begin"))?;
        self.enter_schema(&mut tx).await?;
        let mut changes = Changes::default();
        if let Some(first) = events.first() {
            self.projector
                .apply(&mut tx, events, &mut changes)
                .await
                .map_err(|c| self.apply_error(c, first))?;
        }
        let moved = status::move_checkpoint(&mut tx, &self.target.checkpoint, from, to, events.len() as u64)
            .await
            .map_err(self.pg("write checkpoint"))?;
        if !moved {
            return Err(RunnerError::Superseded { projection });
        }
        tx.commit().await.map_err(self.pg("commit"))?;
        self.notifier.committed(projection, to, &changes).await;
        Ok(())
    }

    /// Runs the projector's timed work in a transaction of its own; its changes are announced
    /// at the checkpoint `at`.
    #[tracing::instrument(name = "projection.tick", skip(self), fields(projection = %self.target.checkpoint))]
    async fn tick_once(&self, at: Option<Position>) -> Result<(), RunnerError> {
        let projection = self.name();
        let mut tx = cortex_events::postgres::begin(&self.pool).await.map_err(self.pg("begin"))?;
        self.enter_schema(&mut tx).await?;
        let mut changes = Changes::default();
        self.projector
            .tick(&mut tx, chrono::Utc::now(), &mut changes)
            .await
            .map_err(|cause| RunnerError::Transient { projection, cause })?;
        tx.commit().await.map_err(self.pg("commit"))?;
        if let Some(at) = at.filter(|_| !changes.is_empty()) {
            self.notifier.committed(projection, at, &changes).await;
        }
        Ok(())
    }

    /// `SET LOCAL search_path` to the target's schema (projectors name tables unqualified),
    /// and `synchronous_commit = off`: a read model is derived, so a database crash that
    /// loses its last commits loses their checkpoint with them, and the runner applies those
    /// events again — while no commit waits for its WAL flush. No parallel plans: a batch's
    /// statements are keyed lookups and upserts, and PostgreSQL picks a parallel plan for
    /// them only from a bad estimate (a generic plan, or tables not yet analysed), paying
    /// milliseconds of worker start-up for each statement (measured: 5.7 ms of a 8.7 ms
    /// compliance load that found nothing).
    async fn enter_schema(&self, conn: &mut PgConnection) -> Result<(), RunnerError> {
        // `set_config(…, true)` is `SET LOCAL`, here as one statement with a parameter. The
        // shared lock on the projection's swap key keeps every batch wholly before or wholly
        // after a rebuild's swap, which takes it exclusively: a batch that loaded rows from
        // the old tables can never write what it computed into the new ones.
        sqlx::query(
            "SELECT set_config('search_path', $1, true), set_config('synchronous_commit', 'off', true), \
                    set_config('max_parallel_workers_per_gather', '0', true), \
                    pg_advisory_xact_lock_shared(hashtextextended($2, 0))",
        )
        .bind(format!("{}, public", self.target.schema))
        .bind(swap_lock_key(self.name()))
        .execute(conn)
        .await
        .map_err(self.pg("set search_path"))?;
        Ok(())
    }

    /// Applies the events after `from` up to and including `to` inside `conn`'s transaction
    /// (which the caller commits, with whatever checkpoint it writes): a rebuild's last
    /// stretch, done under the swap's locks. Answers how many events it applied.
    #[tracing::instrument(name = "projection.apply_until", skip(self, conn), fields(projection = %self.target.checkpoint))]
    pub async fn apply_until(
        &self,
        conn: &mut PgConnection,
        from: Option<Position>,
        to: Position,
    ) -> Result<u64, RunnerError> {
        let projection = self.name();
        if from >= Some(to) {
            return Ok(0);
        }
        self.enter_schema(conn).await?;
        let mut subscription = self.store.subscribe_all(from, self.projector.filter());
        let mut batch = Vec::new();
        let mut changes = Changes::default();
        let mut applied = 0u64;
        loop {
            let position = match subscription.next().await {
                Some(Ok(SubscriptionItem::Event(event))) => {
                    let position = event.position;
                    if position <= to {
                        batch.push(*event);
                    }
                    position
                }
                Some(Ok(SubscriptionItem::Checkpoint(position))) => position,
                Some(Ok(SubscriptionItem::CaughtUp)) => to,
                Some(Err(cause)) => return Err(RunnerError::Subscription { projection, cause }),
                None => return Err(RunnerError::SubscriptionEnded { projection }),
            };
            let done = position >= to;
            if let Some(first) = batch.first().filter(|_| done || batch.len() >= self.settings.batch_size) {
                self.projector
                    .apply(conn, &batch, &mut changes)
                    .await
                    .map_err(|c| self.apply_error(c, first))?;
                applied += batch.len() as u64;
                batch.clear();
            }
            if done {
                sqlx::query("SET LOCAL search_path = public")
                    .execute(&mut *conn)
                    .await
                    .map_err(self.pg("reset search_path"))?;
                return Ok(applied);
            }
        }
    }

    async fn report(&self, state: State, error: Option<&RunnerError>) {
        let shadow = self.target != Target::live(self.name());
        let state = match state {
            State::CatchingUp | State::Live if shadow => State::Rebuilding,
            state => state,
        };
        let failure = error.map(Failure::of);
        if let Err(e) = status::report(&self.pool, &self.target.checkpoint, state, failure.as_ref()).await {
            tracing::warn!(projection = self.name(), error = %e, "cannot record the projection's status");
        }
    }

    async fn report_rate(&self, rate: &mut Rate) {
        let per_second = rate.take();
        if let Err(e) = status::heartbeat(&self.pool, &self.target.checkpoint, per_second).await {
            tracing::warn!(projection = self.name(), error = %e, "cannot record the projection's rate");
        }
    }
}

/// Events per second over the last reporting period (about a second).
struct Rate {
    since: Instant,
    events: u64,
}

impl Rate {
    const PERIOD: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Self { since: Instant::now(), events: 0 }
    }

    fn add(&mut self, n: u64) {
        self.events += n;
    }

    fn due(&self) -> bool {
        self.since.elapsed() >= Self::PERIOD
    }

    fn take(&mut self) -> f64 {
        let per_second = self.events as f64 / self.since.elapsed().as_secs_f64().max(1e-3);
        *self = Self::new();
        per_second
    }
}

/// The advisory lock key a rebuild's swap holds exclusively and every batch of the live
/// runner shares.
pub fn swap_lock_key(projection: &str) -> String {
    format!("cortex.swap.{projection}")
}

/// `error: cause: cause …`, for one log line.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
