//! The PostgreSQL adapter of the [`EventStore`] port — the default store.
//!
//! - [`append`](self::append): validation, the hash chain, optimistic concurrency by the
//!   `(stream_name, stream_revision)` key, idempotency by the `event_id` key, and group
//!   commit (concurrent appends to different streams share one statement).
//! - [`read`](self::read): stream reads, `$all` pages under the visibility horizon, head.
//! - [`subscribe`](self::subscribe): catch-up then live tail, woken by LISTEN/NOTIFY.
//!
//! Tables: `migrations/0001_event_store.sql`; see it for the ordering technique.

mod append;
mod read;
mod rows;
mod subscribe;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::{
    AppendOutcome, Catalog, Direction, EventFilter, EventStore, ExpectedRevision, NewEvent, Position,
    RecordedEvent, StoreError, StreamName, SubscriptionItem,
};

/// Every migration of the PolicyCortex database (event store, read models, checkpoints,
/// tenants), embedded at build time from `migrations/`. One migrator for the whole
/// database, so a database is never half-migrated; `cortex migrate` and every test use it.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The NOTIFY channel of new events (see the migration's trigger).
pub(crate) const NOTIFY_CHANNEL: &str = "cortex_events";

/// How `$all` readers order and bound what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogOrder {
    /// `(tx_id, seq)` below the visibility horizon: gap-free under concurrent writers.
    #[default]
    Visibility,
    /// `seq` alone, no horizon — the classic bug (a lower `seq` committing after a higher
    /// one has been read is never delivered). Exists only so that the conformance suite can
    /// be shown to catch it (`CORTEX_ES_LOG_ORDER=sequence`); never use it.
    SequenceOnly,
}

/// Tuning of the adapter; the defaults suit a service, tests shrink them.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// Rows per `$all` page during catch-up.
    pub page_size: i64,
    /// Longest wait for a wake-up before a live subscriber looks anyway (covers a
    /// notification lost while its listener reconnected).
    pub idle_recheck: std::time::Duration,
    /// Concurrent group-commit workers.
    pub committers: usize,
    /// Most appends one group commit takes.
    pub max_group: usize,
    /// A filtered subscription sends a `Checkpoint` at least every this many scanned,
    /// filtered-out events.
    pub checkpoint_interval: u64,
    pub order: LogOrder,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            page_size: 2000,
            idle_recheck: std::time::Duration::from_secs(10),
            committers: 2,
            max_group: 256,
            checkpoint_interval: 1000,
            order: LogOrder::Visibility,
        }
    }
}

/// The store. Cheap to clone; clones share the pool, the committer and the listener.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The pool the store was given: the LISTEN connection and the count of the whole log.
    given: PgPool,
    /// Every other statement of the store, on connections that plan generically (see
    /// [`Inner::pool`]); made on first use, so that its upkeep runs on the runtime that uses it.
    statements: std::sync::OnceLock<Arc<Statements>>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) settings: PostgresSettings,
    committer: OnceCell<append::Committer>,
    wakeups: OnceCell<subscribe::Wakeups>,
    pub(crate) heads: Arc<append::HeadCache>,
}

impl PostgresEventStore {
    /// A store over an already migrated database. Starts no task and opens no connection:
    /// the group committer and the LISTEN connection start with the first append and the
    /// first subscription.
    pub fn new(pool: PgPool, catalog: Arc<Catalog>) -> Self {
        Self::with_settings(pool, catalog, PostgresSettings::default())
    }

    pub fn with_settings(pool: PgPool, catalog: Arc<Catalog>, settings: PostgresSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                given: pool,
                statements: std::sync::OnceLock::new(),
                catalog,
                settings,
                committer: OnceCell::new(),
                wakeups: OnceCell::new(),
                heads: Arc::default(),
            }),
        }
    }

    /// The pool the store was given.
    pub fn pool(&self) -> &PgPool {
        &self.inner.given
    }

    /// The pool the store's statements run on (all but the count of the whole log): the given
    /// pool's database, size and timeouts, on connections whose plans cannot scan the log
    /// (see [`PLAN_SETTINGS`]). `None` until the
    /// store has run a statement (it is made then, on the runtime running it).
    pub fn statement_pool(&self) -> Option<&PgPool> {
        self.inner.statements.get().map(|s| s.pool())
    }

    /// Appends without group commit: one statement for this append alone.
    pub async fn append_alone(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        crate::store::check_append(&self.inner.catalog, &events)?;
        append::append_single(self.inner.pool(), stream, expected, &events).await
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        // The canonical text is what is hashed and stored; computed once, it also gives the size.
        let texts: Vec<String> = events.iter().map(|e| crate::hash::canonical_json(&e.data)).collect();
        let lens: Vec<usize> = texts.iter().map(String::len).collect();
        crate::store::check_append_sized(&self.inner.catalog, &events, &lens)?;
        let committer =
            self.inner.committer.get_or_init(|| async { append::Committer::start(&self.inner) }).await;
        committer.submit(stream.clone(), expected, events, texts).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        dir: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_stream(&self.inner, stream, from, dir, max).await
    }

    async fn read_streams(
        &self,
        streams: &[StreamName],
    ) -> Result<std::collections::HashMap<StreamName, Vec<RecordedEvent>>, StoreError> {
        read::read_streams(&self.inner, streams).await
    }

    fn subscribe_all(
        &self,
        from: Option<Position>,
        filter: EventFilter,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        subscribe::subscribe_all(self.inner.clone(), from, filter)
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        read::last_committed(self.inner.pool()).await
    }

    async fn count_after(&self, from: Option<Position>) -> Result<Option<u64>, StoreError> {
        read::count_after(&self.inner, from).await.map(Some)
    }

    fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }
}

impl Inner {
    /// The pool of the store's statements: the given pool's database, size and timeouts, on
    /// connections whose plans cannot scan the log ([`PLAN_SETTINGS`]).
    ///
    /// Every one of these statements looks rows up by a key or walks an index from a
    /// position. Two things made PostgreSQL choose otherwise (`docs/decisions.md`, "Plans
    /// that hold as the log grows"):
    /// - Planning every execution anew (a custom plan) was most of what a `$all` page or a
    ///   stream read cost under load (0.19 ms to plan, 0.02 ms to run): PostgreSQL estimates
    ///   a generic `(tx_id, seq) > ($1, $2)` at a third of the log, so the generic plan never
    ///   wins its comparison with the custom ones, although it is the same index walk.
    /// - A plan made without statistics, or a generic one cached while the log was small,
    ///   scans the log: with autovacuum off nothing ever analyses `es_events`, and growth
    ///   alone never invalidates a cached plan. A command's stream read then took 1–2 s at
    ///   300,000 events (issue 22).
    ///
    /// So these connections plan generically, never by a sequential scan, and without JIT.
    pub(crate) fn pool(&self) -> &PgPool {
        self.statements().pool()
    }

    /// The pool the store was given.
    pub(crate) fn given(&self) -> &PgPool {
        &self.given
    }

    pub(crate) fn statements(&self) -> &Arc<Statements> {
        self.statements.get_or_init(|| Arc::new(Statements::new(&self.given)))
    }

    pub(crate) async fn wakeups(&self) -> Result<&subscribe::Wakeups, StoreError> {
        self.wakeups.get_or_try_init(|| subscribe::Wakeups::start(&self.given)).await
    }
}

/// The session settings of the store's connections ([`Inner::pool`]):
/// - `plan_cache_mode`: one plan per statement and connection, made at its first execution;
/// - `enable_seqscan`: that plan, and any made before `es_events` has statistics, takes an
///   index path (every statement of the store has one; a sequential scan is only priced
///   out, never forbidden, so a statement without one would still run);
/// - `jit`: without statistics PostgreSQL can price a keyed read of a large log above
///   `jit_above_cost` and compile it (tens of milliseconds) for a read that takes a few.
pub const PLAN_SETTINGS: [(&str, &str); 3] =
    [("plan_cache_mode", "force_generic_plan"), ("enable_seqscan", "off"), ("jit", "off")];

/// A pooled connection idle for less than this is handed out without a ping ([`pool_options`]).
pub const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The options of every long-lived pool of the workspace (the services' pool, the store's,
/// the tests'), before its size and timeouts.
///
/// sqlx 0.8 pings a connection when it goes back to the pool (`return_to_pool`) and, with
/// `test_before_acquire` (its default), again when it is taken: two round trips around every
/// statement run on the pool, so a command's stream read cost three where a raw client pays
/// one. Here a connection is pinged when it is taken only if it sat idle for
/// [`PING_WHEN_IDLE_FOR`] or more (HikariCP's `aliveBypassWindowMs` is the same idea), since
/// it answered the ping of its release less than that ago, or if a connection was found dead
/// in the last [`PING_WHEN_IDLE_FOR`] ([`note_if_lost`]). `ops/bench/commands` (issue 22):
/// single registrations 6,376/s → 8,947/s in one sitting.
///
/// What it costs: when PostgreSQL restarts (or ends backends), a connection used in the
/// second before is handed out unchecked, and the first statement on one fails as an
/// unreachable database does (a 503 to a client; a worker retries). That failure marks the
/// pools ([`note_if_lost`], called by the store on every error), so every connection taken
/// in the next second is pinged and the dead ones are dropped: one failure per restart, not
/// one per connection. The store retries a failed group append alone, so appends ride
/// through it.
pub fn pool_options() -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new().test_before_acquire(false).before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for >= PING_WHEN_IDLE_FOR || lost::recently() {
                sqlx::Connection::ping(conn).await?;
            }
            Ok(true)
        })
    })
}

/// Marks the pools of this process for a check of every connection taken in the next
/// [`PING_WHEN_IDLE_FOR`] when `e` says a connection was lost (an I/O error, a connection
/// exception, or the server ending the backend: SQLSTATE classes 08 and 57P); answers
/// whether it did.
pub fn note_if_lost(e: &sqlx::Error) -> bool {
    let found = match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        _ => false,
    };
    if found {
        lost::mark();
    }
    found
}

/// When a connection was last found lost, process-wide: one server restart concerns every
/// pool on it, and a needless ping in the second after costs little.
mod lost {
    use std::{
        sync::{
            OnceLock,
            atomic::{AtomicU64, Ordering},
        },
        time::Instant,
    };

    /// Milliseconds after [`base`] at which the check ends (0: none yet).
    static UNTIL: AtomicU64 = AtomicU64::new(0);

    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    fn now_ms() -> u64 {
        u64::try_from(base().elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn mark() {
        let until = now_ms().saturating_add(super::PING_WHEN_IDLE_FOR.as_millis() as u64);
        UNTIL.fetch_max(until, Ordering::Relaxed);
    }

    pub(super) fn recently() -> bool {
        let until = UNTIL.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }
}

/// The pool the store's statements run on ([`Inner::pool`]), made from the pool the store was
/// given.
pub(crate) struct Statements {
    given: PgPool,
    generic: PgPool,
}

impl Statements {
    /// The given pool's options (size, timeouts, how connections are checked: see
    /// [`pool_options`]) on connections with [`PLAN_SETTINGS`].
    fn new(given: &PgPool) -> Self {
        let connect = (*given.connect_options()).clone().options(PLAN_SETTINGS);
        let generic = given.options().clone().connect_lazy_with(connect);
        Self { given: given.clone(), generic }
    }

    /// The pool, closed once the given pool is: the store's statements then fail as they did
    /// on that pool. Closing marks it at once (no connection is handed out after); its idle
    /// connections go with the store.
    pub(crate) fn pool(&self) -> &PgPool {
        if self.given.is_closed() && !self.generic.is_closed() {
            let _closing = self.generic.close();
        }
        &self.generic
    }
}

/// Opens a transaction on a connection of `pool`, and finishes opening it even when the
/// caller is dropped meanwhile (a client hung up, a task was aborted, a timeout fired).
///
/// sqlx 0.8.6's `Pool::begin` sends `BEGIN` and then waits for the answer. Its guard for a
/// cancelled wait rolls back only what sqlx has already counted as open, and it counts the
/// transaction only once the answer has come. So a `begin` dropped in that wait gives the
/// connection back to the pool inside a transaction that sqlx does not know about. Every
/// later autocommit statement on that connection (an append, a checkpoint) then runs in
/// it, uncommitted, until some later `begin` on the same connection happens to commit it:
/// the writer has its answer, no reader sees the rows, and the open transaction holds back
/// the `$all` horizon of every subscriber.
///
/// Here the connection is taken in the caller (dropping that wait is safe, and a dropped
/// caller leaves nothing queued for the pool), and only the `BEGIN` runs in a task of its
/// own, so it always completes; when nobody takes the transaction, dropping it rolls it back
/// before the connection returns. Every transaction of the workspace is opened through this
/// (`clippy.toml` refuses `Pool::begin` and its variants).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn begin(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    use tracing::Instrument as _;
    let conn = pool.acquire().await?;
    // `Transaction::begin` is what `Pool::begin` calls once it has a connection: public, if
    // hidden from the docs, in sqlx 0.8 (the workspace pins the version).
    let opening = sqlx::Transaction::begin(conn, None).in_current_span();
    match tokio::spawn(opening).await {
        Ok(opened) => opened,
        Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
        // The runtime is shutting down.
        Err(_) => Err(sqlx::Error::PoolClosed),
    }
}

/// Errors of the connection or of the server's state rather than of the statement, so that
/// the same work may succeed later: I/O, TLS, protocol and pool failures, and SQLSTATE
/// classes 08 (connection exception), 53 (insufficient resources), 57 (operator
/// intervention, e.g. a shutdown), 40001 (serialization failure) and 40P01 (deadlock). The
/// one classification every PostgreSQL user in the workspace retries by.
pub fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    }
}

/// Maps a sqlx error to the step that failed.
pub(crate) fn pg(step: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| {
        note_if_lost(&source);
        StoreError::Postgres { step, source }
    }
}
