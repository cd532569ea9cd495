//! Blue/green rebuild of a projection (DESIGN §4).
//!
//! 1. The shadow schema `rm_<name>__shadow` gets a copy of every live table's definition
//!    (`LIKE … INCLUDING ALL`: columns, defaults, generated columns, constraints, indexes), so
//!    the migrations stay the one place tables are defined.
//! 2. A runner writes the shadow from position zero under its own checkpoint `<name>@shadow`,
//!    while the live tables keep serving and their runner keeps following the log. The shadow
//!    and its checkpoint survive an interruption: the next rebuild resumes from them.
//! 3. The swap, in one transaction: lock the live tables against writes (`EXCLUSIVE`: reads go
//!    on), which waits for the live runner's open batch; apply to the shadow whatever the live
//!    checkpoint has that the shadow has not; compare every table (row count and digest); then
//!    rename the live schema away and the shadow into its place, and give the live checkpoint
//!    the shadow's position. Queries see the old tables or the new ones, never a mix. The live
//!    runner's next commit lands in the new tables (it resolves names by `search_path`), and
//!    its compare-and-set checkpoint makes it start over if the shadow was ahead of it.
//! 4. The old tables are dropped, and every tenant is told its models changed as a whole.
//!
//! Differences between live and shadow are reported, not refused: a rebuild is also how a
//! fixed projector replaces rows a faulty one wrote.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use cortex_events::{EventStore, Position, StoreError, SubscriptionItem};
use futures::stream::BoxStream;
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::{
    notify::Notifier,
    projector::{Changes, Projector},
    runner::{Runner, RunnerError, RunnerSettings, Target},
    status::{self, State},
};

/// Index builds of one rebuild that run side by side.
const INDEX_BUILDS_AT_ONCE: usize = 2;
/// Sort memory of one index build (`SET LOCAL`, so only that transaction's).
const INDEX_BUILD_MEMORY: &str = "SET LOCAL maintenance_work_mem = '256MB'";

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(&'static str),
    #[error("projection {0} has no tables in schema rm_{0}: run `cortex migrate`")]
    NoTables(&'static str),
    #[error("rebuilding {projection}: postgresql: {step}")]
    Postgres {
        projection: &'static str,
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("rebuilding {projection}: the event store")]
    Store {
        projection: &'static str,
        #[source]
        source: cortex_events::StoreError,
    },
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

/// How far a rebuild has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Events of the log the shadow has passed.
    pub done: u64,
    /// Events of the log at the start (`None` when the store cannot count).
    pub total: Option<u64>,
    pub events_per_second: f64,
    pub eta: Option<Duration>,
}

/// One table compared at the swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableComparison {
    pub table: String,
    pub live_rows: i64,
    pub shadow_rows: i64,
    pub live_digest: String,
    pub shadow_digest: String,
}

impl TableComparison {
    pub fn differs(&self) -> bool {
        self.live_rows != self.shadow_rows || self.live_digest != self.shadow_digest
    }
}

/// What a finished (swapped) rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projection: &'static str,
    /// Events the shadow applied in this run (a resumed rebuild counts only its own).
    pub events: u64,
    pub seconds: f64,
    pub resumed_from: Option<String>,
    pub position: Option<String>,
    /// `false` when the live tables were behind the shadow at the swap (no runner was
    /// following the log): the comparison then covers different stretches of the log.
    pub compared_at_same_position: bool,
    pub tables: Vec<TableComparison>,
}

/// A rebuild between [`Rebuild::start`] and [`Rebuild::finish`]: lock held, shadow ready.
struct Started<P: ?Sized> {
    /// Holds the session advisory lock `cortex.rebuild.<name>` until the rebuild ends.
    lock: PgConnection,
    runner: Runner<P>,
    live: Target,
    shadow: Target,
    tables: Vec<String>,
    resumed_from: Option<Position>,
    began: Instant,
}

/// Rebuilds several projections at once (`cortex projections rebuild --all`). Their first
/// passes — the bulk of the log — are fed by one shared read of it ([`crate::fan_out`]):
/// reading and decoding the log is about half of a projection's catch-up, so each further
/// projection costs only its own writes. Each builds on a task of its own (side by side on
/// a machine with more than one core) and swaps as soon as it is done; one that fails leaves
/// the others going. Answers each outcome in the order given; `progress` gets each one's
/// progress with its name.
pub async fn rebuild_all(
    rebuilds: Vec<Rebuild<dyn Projector>>,
    restart: bool,
    progress: Arc<dyn Fn(&'static str, Progress) + Send + Sync>,
) -> Vec<Result<RebuildReport, RebuildError>> {
    let mut outcomes: Vec<Option<Result<RebuildReport, RebuildError>>> =
        rebuilds.iter().map(|_| None).collect();
    let mut ready = Vec::new();
    for (i, rebuild) in rebuilds.into_iter().enumerate() {
        match rebuild.start(restart).await {
            Ok(started) => ready.push((i, rebuild, started)),
            Err(e) => outcomes[i] = Some(Err(e)),
        }
    }
    if let Some((_, first, _)) = ready.first() {
        let subscribers = ready.iter().map(|(_, r, s)| (s.resumed_from, r.projector.filter())).collect();
        // Half a batch in flight per projection: while one commits a batch, the others can
        // take half a batch each from the read before it waits.
        let depth = first.settings.rebuild_batch_size / 2;
        let streams = crate::fan_out::fan_out(&first.store, subscribers, depth);
        let tasks: Vec<_> = ready
            .into_iter()
            .zip(streams)
            .map(|((i, rebuild, started), stream)| {
                let progress = progress.clone();
                let task = tokio::spawn(async move {
                    let name = rebuild.name();
                    rebuild.finish(started, Some(stream), move |p| progress(name, p)).await
                });
                (i, task)
            })
            .collect();
        for (i, task) in tasks {
            outcomes[i] = Some(match task.await {
                Ok(outcome) => outcome,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            });
        }
    }
    // Every slot was filled: by its start's error or by its task.
    outcomes.into_iter().flatten().collect()
}

pub struct Rebuild<P: ?Sized> {
    store: Arc<dyn EventStore>,
    pool: PgPool,
    database_url: String,
    projector: Arc<P>,
    settings: RunnerSettings,
    notifier: Notifier,
}

impl<P: Projector + ?Sized> Rebuild<P> {
    pub fn new(
        store: Arc<dyn EventStore>,
        pool: PgPool,
        database_url: &str,
        projector: Arc<P>,
        settings: RunnerSettings,
        notifier: Notifier,
    ) -> Self {
        Self { store, pool, database_url: database_url.to_owned(), projector, settings, notifier }
    }

    fn name(&self) -> &'static str {
        self.projector.name()
    }

    fn pg(&self, step: &'static str) -> impl FnOnce(sqlx::Error) -> RebuildError + use<P> {
        let projection = self.projector.name();
        move |source| RebuildError::Postgres { projection, step, source }
    }

    /// Builds the shadow (resuming one left by an interrupted rebuild unless `restart`),
    /// swaps it in, and reports. `progress` is called about twice a second while building.
    pub async fn run(
        &self,
        restart: bool,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<RebuildReport, RebuildError> {
        let started = self.start(restart).await?;
        self.finish(started, None, progress).await
    }

    /// Takes the rebuild's lock and readies the shadow: what comes before reading the log.
    async fn start(&self, restart: bool) -> Result<Started<P>, RebuildError> {
        let name = self.name();
        let began = Instant::now();
        let mut lock =
            PgConnection::connect(&self.database_url).await.map_err(self.pg("connect for the lock"))?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(format!("cortex.rebuild.{name}"))
            .fetch_one(&mut lock)
            .await
            .map_err(self.pg("take the rebuild lock"))?;
        if !held {
            return Err(RebuildError::AlreadyRunning(name));
        }
        let live = Target::live(name);
        let shadow = Target::shadow(name);
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {}__retired CASCADE", live.schema))
            .execute(&self.pool)
            .await
            .map_err(self.pg("drop a retired schema"))?;
        let tables = self.tables(&live.schema).await?;
        if tables.is_empty() {
            return Err(RebuildError::NoTables(name));
        }
        self.prepare_shadow(&live, &shadow, &tables, restart).await?;

        let settings =
            RunnerSettings { batch_size: self.settings.rebuild_batch_size.max(1), ..self.settings };
        let runner = Runner::shared(self.store.clone(), self.pool.clone(), self.projector.clone(), settings)
            .with_target(shadow.clone());
        let resumed_from = runner.checkpoint().await?;
        if let Some(p) = resumed_from {
            tracing::info!(projection = name, position = %p, "resuming the shadow build");
        }
        if let Err(e) = status::report(&self.pool, &shadow.checkpoint, State::Rebuilding, None).await {
            tracing::warn!(projection = name, error = %e, "cannot record the rebuild's status");
        }
        Ok(Started { lock, runner, live, shadow, tables, resumed_from, began })
    }

    /// Builds the shadow — its first pass from `shared` when a read of the log is shared
    /// with other rebuilds, else from a subscription of its own — reporting progress, then
    /// swaps it in.
    async fn finish(
        &self,
        started: Started<P>,
        shared: Option<BoxStream<'static, Result<SubscriptionItem, StoreError>>>,
        progress: impl Fn(Progress) + Send + Sync,
    ) -> Result<RebuildReport, RebuildError> {
        let name = self.name();
        let Started { lock, runner, live, shadow, tables, resumed_from, began } = started;
        let total = self.count_after(None).await?;
        let before = match resumed_from {
            None => total,
            Some(_) => self.count_after(resumed_from).await?,
        };
        let applied = runner.applied();
        // Two passes: the first takes the bulk, the second what came meanwhile; the swap
        // applies the last few events under its locks.
        let build = async {
            match shared {
                Some(stream) => runner.run_until_caught_up_with(resumed_from, stream).await?,
                None => runner.run_until_caught_up().await?,
            }
            self.create_deferred_indexes(&live, &shadow, &tables).await?;
            runner.run_until_caught_up().await.map_err(RebuildError::from)
        };
        let report_progress = async {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let building_since = Instant::now();
            // Counting what is left of the log scans it, so counts are spaced twenty times
            // their own duration apart (at least a second): they take at most about 5% of the
            // rebuild. In between, the remainder shrinks at the rate measured so far.
            let mut counted: Option<(Instant, u64)> = before.map(|b| (building_since, b));
            let mut rate = 0.0;
            let mut next_count = building_since + Duration::from_secs(1);
            loop {
                tick.tick().await;
                if Instant::now() >= next_count {
                    let at = Instant::now();
                    let remaining = match runner.checkpoint().await {
                        Ok(checkpoint) => self.count_after(checkpoint).await.ok().flatten(),
                        Err(_) => None,
                    };
                    next_count = Instant::now() + (at.elapsed() * 20).max(Duration::from_secs(1));
                    if let (Some(r), Some(b)) = (remaining, before) {
                        rate = b.saturating_sub(r) as f64
                            / at.duration_since(building_since).as_secs_f64().max(1e-3);
                        counted = Some((at, r));
                    }
                }
                let update = match (total, counted) {
                    (Some(t), Some((at, r))) => {
                        let left = (r as f64 - rate * at.elapsed().as_secs_f64()).max(0.0);
                        let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left / rate));
                        Progress {
                            done: t.saturating_sub(left.round() as u64),
                            total,
                            events_per_second: rate,
                            eta,
                        }
                    }
                    // A store that cannot count: the events this projection applied.
                    _ => {
                        let n = applied.load(Ordering::Relaxed);
                        let rate = n as f64 / building_since.elapsed().as_secs_f64().max(1e-3);
                        Progress { done: n, total, events_per_second: rate, eta: None }
                    }
                };
                progress(update);
            }
        };
        tokio::select! {
            built = build => {
                if let Err(RebuildError::Runner(e)) = &built {
                    let state = if e.is_poison() { State::Failed } else { State::Retrying };
                    let failure = status::Failure::of(e);
                    if let Err(report) = status::report(&self.pool, &shadow.checkpoint, state, Some(&failure)).await {
                        tracing::warn!(projection = name, error = %report, "cannot record the rebuild's status");
                    }
                }
                built?
            }
            () = report_progress => {}
        }
        let swap = self.swap(&runner, &live, &shadow, &tables).await?;
        progress(Progress {
            done: total.unwrap_or(0),
            total,
            events_per_second: 0.0,
            eta: Some(Duration::ZERO),
        });
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {}__retired CASCADE", live.schema))
            .execute(&self.pool)
            .await
            .map_err(self.pg("drop the retired tables"))?;
        self.announce(swap.position).await?;
        drop(lock);
        Ok(RebuildReport {
            projection: name,
            events: applied.load(Ordering::Relaxed) + swap.tail,
            seconds: began.elapsed().as_secs_f64(),
            resumed_from: resumed_from.map(|p| p.token()),
            position: swap.position.map(|p| p.token()),
            compared_at_same_position: swap.same_position,
            tables: swap.tables,
        })
    }

    async fn count_after(&self, from: Option<Position>) -> Result<Option<u64>, RebuildError> {
        self.store
            .count_after(from)
            .await
            .map_err(|source| RebuildError::Store { projection: self.name(), source })
    }

    /// The tables of `schema`, by name.
    async fn tables(&self, schema: &str) -> Result<Vec<String>, RebuildError> {
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename")
            .bind(schema)
            .fetch_all(&self.pool)
            .await
            .map_err(self.pg("list the live tables"))
    }

    /// The tables of `schema` with their columns, types, defaults and constraints, as text.
    async fn shape(&self, schema: &str) -> Result<String, RebuildError> {
        sqlx::query_scalar(
            "SELECT coalesce(string_agg(line, E'\\n' ORDER BY line), '') FROM ( \
                SELECT format('%s %s %s %s %s %s', c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), \
                              a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) AS line \
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
                 WHERE n.nspname = $1 AND c.relkind = 'r' \
                UNION ALL \
                SELECT format('%s %s %s', c.relname, k.conname, pg_get_constraintdef(k.oid, true)) \
                  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1) lines",
        )
        .bind(schema)
        .fetch_one(&self.pool)
        .await
        .map_err(self.pg("read the tables' shape"))
    }

    /// Creates the shadow schema and its tables unless a usable one is there to resume.
    #[tracing::instrument(name = "projection.rebuild.prepare", skip(self, live, tables), fields(projection = self.name()))]
    async fn prepare_shadow(
        &self,
        live: &Target,
        shadow: &Target,
        tables: &[String],
        restart: bool,
    ) -> Result<(), RebuildError> {
        // Resumable only if its tables are still shaped like the live ones (a migration may
        // have changed them since the interrupted run).
        if !restart && self.shape(&shadow.schema).await? == self.shape(&live.schema).await? {
            return Ok(());
        }
        let mut tx = cortex_events::postgres::begin(&self.pool).await.map_err(self.pg("begin"))?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", shadow.schema))
            .execute(&mut *tx)
            .await
            .map_err(self.pg("drop the old shadow"))?;
        sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1")
            .bind(&shadow.checkpoint)
            .execute(&mut *tx)
            .await
            .map_err(self.pg("forget the old shadow's checkpoint"))?;
        sqlx::query(&format!("CREATE SCHEMA {}", shadow.schema))
            .execute(&mut *tx)
            .await
            .map_err(self.pg("create the shadow schema"))?;
        // Only what applying events needs is built now: the columns, the constraints (primary
        // keys and unique ones serve `ON CONFLICT`), unique indexes and storage options. The
        // other indexes are built once, after the bulk of the log (`create_deferred_indexes`),
        // which is several times cheaper than maintaining them row by row.
        sqlx::query("SET LOCAL search_path = ''")
            .execute(&mut *tx)
            .await
            .map_err(self.pg("set search_path"))?;
        for table in tables {
            let (l, s, t) = (&live.schema, &shadow.schema, quote_ident(table));
            sqlx::query(&format!("CREATE TABLE {s}.{t} (LIKE {l}.{t} INCLUDING ALL EXCLUDING INDEXES)"))
                .execute(&mut *tx)
                .await
                .map_err(self.pg("create a shadow table"))?;
            let copies: Vec<String> = sqlx::query_scalar(
                "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', $2, c.conname, pg_get_constraintdef(c.oid)) \
                   FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u', 'x') \
                 UNION ALL \
                 SELECT replace(pg_get_indexdef(i.indexrelid), ' ON ' || $3 || ' ', ' ON ' || $2 || ' ') \
                   FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique \
                    AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
                 UNION ALL \
                 SELECT format('ALTER TABLE %s SET (%s)', $2, array_to_string(reloptions, ', ')) \
                   FROM pg_class WHERE oid = $1::regclass AND reloptions IS NOT NULL",
            )
            .bind(format!("{l}.{t}"))
            .bind(format!("{s}.{t}"))
            .bind(format!("{l}.{}", table))
            .fetch_all(&mut *tx)
            .await
            .map_err(self.pg("read the live tables' constraints"))?;
            for statement in copies {
                sqlx::query(&statement).execute(&mut *tx).await.map_err(self.pg("copy a constraint"))?;
            }
        }
        tx.commit().await.map_err(self.pg("commit the shadow's tables"))?;
        Ok(())
    }

    /// Creates the live tables' non-unique indexes on the shadow (`IF NOT EXISTS`: a resumed
    /// rebuild may have made some), under the same names, so that the swapped-in tables are
    /// indexed exactly like the live ones, then analyses them.
    #[tracing::instrument(name = "projection.rebuild.indexes", skip_all, fields(projection = self.name()))]
    async fn create_deferred_indexes(
        &self,
        live: &Target,
        shadow: &Target,
        tables: &[String],
    ) -> Result<(), RebuildError> {
        let mut all = Vec::new();
        let mut tx = cortex_events::postgres::begin(&self.pool).await.map_err(self.pg("begin"))?;
        sqlx::query("SET LOCAL search_path = ''")
            .execute(&mut *tx)
            .await
            .map_err(self.pg("set search_path"))?;
        for table in tables {
            let (l, s, t) = (&live.schema, &shadow.schema, quote_ident(table));
            let statements: Vec<String> = sqlx::query_scalar(
                "SELECT replace(replace(pg_get_indexdef(i.indexrelid), 'CREATE INDEX ', 'CREATE INDEX IF NOT EXISTS '), \
                                ' ON ' || $3 || ' ', ' ON ' || $2 || ' ') \
                   FROM pg_index i WHERE i.indrelid = $1::regclass AND NOT i.indisunique \
                    AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            )
            .bind(format!("{l}.{t}"))
            .bind(format!("{s}.{t}"))
            .bind(format!("{l}.{}", table))
            .fetch_all(&mut *tx)
            .await
            .map_err(self.pg("read the live tables' indexes"))?;
            all.extend(statements);
        }
        tx.commit().await.map_err(self.pg("commit"))?;
        // One transaction per index: none holds a transaction id (and so the visibility
        // horizon every subscriber reads below) for longer than one index build. Two at a
        // time, each with room to sort in memory: a GIN or btree build over a million rows
        // spills to disk at PostgreSQL's default 64 MB.
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(all)
            .map(|statement| async move {
                let mut tx = cortex_events::postgres::begin(&self.pool).await.map_err(self.pg("begin"))?;
                sqlx::query(INDEX_BUILD_MEMORY)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.pg("set maintenance_work_mem"))?;
                sqlx::query(&statement).execute(&mut *tx).await.map_err(self.pg("create a shadow index"))?;
                tx.commit().await.map_err(self.pg("commit a shadow index"))
            })
            .buffer_unordered(INDEX_BUILDS_AT_ONCE)
            .try_collect::<Vec<()>>()
            .await?;
        // Statistics, as after any bulk load: the swapped-in tables are otherwise planned
        // with default estimates until autovacuum gets to them (never, where it is off), and
        // such estimates chose whole-tenant scans for keyed batch loads (seen on the
        // evaluator's `decisions`, never analysed: 68 ms a load against 2.7 ms after ANALYZE).
        for table in tables {
            let statement = format!("ANALYZE {}.{}", quote_ident(&shadow.schema), quote_ident(table));
            sqlx::query(&statement).execute(&self.pool).await.map_err(self.pg("analyse a shadow table"))?;
        }
        Ok(())
    }

    /// When a live runner is following the log but is behind the shadow, waits (up to 30 s)
    /// for it to pass the shadow, so that the swap compares both at the same position instead
    /// of reporting the stretch between them as differences.
    async fn let_live_catch_up(&self, live: &Target, shadow: &Target) -> Result<(), RebuildError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let row = sqlx::query(
                "SELECT (SELECT (l.position_major, l.position_minor) >= (s.position_major, s.position_minor) \
                           FROM projection_checkpoints l, projection_checkpoints s \
                          WHERE l.projection = $1 AND s.projection = $2) AS caught_up, \
                        EXISTS (SELECT 1 FROM projection_status WHERE projection = $1 \
                                   AND state IN ('catching_up', 'live', 'retrying') \
                                   AND heartbeat_at > now() - make_interval(secs => $3)) AS running",
            )
            .bind(&live.checkpoint)
            .bind(&shadow.checkpoint)
            .bind(status::STALE_AFTER_SECONDS as f64)
            .fetch_one(&self.pool)
            .await
            .map_err(self.pg("compare the checkpoints"))?;
            let caught_up: Option<bool> = row.get("caught_up");
            if caught_up != Some(false) || !row.get::<bool, _>("running") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The swap (see the module doc), retried when it loses a deadlock to the live runner.
    async fn swap(
        &self,
        runner: &Runner<P>,
        live: &Target,
        shadow: &Target,
        tables: &[String],
    ) -> Result<Swapped, RebuildError> {
        self.let_live_catch_up(live, shadow).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.swap_once(runner, live, shadow, tables).await {
                Err(
                    RebuildError::Postgres { source, .. }
                    | RebuildError::Runner(RunnerError::Postgres { source, .. }),
                ) if attempt < 5 && crate::projector::is_transient(&source) => {
                    tracing::warn!(projection = self.name(), attempt, error = %source, "the swap failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    #[tracing::instrument(name = "projection.rebuild.swap", skip_all, fields(projection = self.name()))]
    async fn swap_once(
        &self,
        runner: &Runner<P>,
        live: &Target,
        shadow: &Target,
        tables: &[String],
    ) -> Result<Swapped, RebuildError> {
        let mut tx = cortex_events::postgres::begin(&self.pool).await.map_err(self.pg("begin the swap"))?;
        sqlx::query("SET LOCAL lock_timeout = '30s'")
            .execute(&mut *tx)
            .await
            .map_err(self.pg("set lock_timeout"))?;
        // Waits for the live runner's open batch and holds back its next one (see
        // `swap_lock_key`).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(crate::runner::swap_lock_key(self.name()))
            .execute(&mut *tx)
            .await
            .map_err(self.pg("take the swap lock"))?;
        let qualified: Vec<String> =
            tables.iter().map(|t| format!("{}.{}", live.schema, quote_ident(t))).collect();
        sqlx::query(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", qualified.join(", ")))
            .execute(&mut *tx)
            .await
            .map_err(self.pg("lock the live tables"))?;
        let rows = sqlx::query(
            "SELECT projection, position_major, position_minor, events FROM projection_checkpoints \
              WHERE projection = ANY($1) FOR UPDATE",
        )
        .bind([live.checkpoint.clone(), shadow.checkpoint.clone()])
        .fetch_all(&mut *tx)
        .await
        .map_err(self.pg("lock the checkpoints"))?;
        let (mut live_at, mut shadow_at, mut shadow_events) = (None, None, 0i64);
        for r in rows {
            let p = Position::new(r.get::<i64, _>(1) as u64, r.get::<i64, _>(2) as u64);
            if r.get::<String, _>(0) == live.checkpoint {
                live_at = Some(p);
            } else {
                shadow_at = Some(p);
                shadow_events = r.get(3);
            }
        }
        // The shadow takes in what the live tables have and it has not.
        let tail = match live_at {
            Some(l) if shadow_at < Some(l) => runner.apply_until(&mut tx, shadow_at, l).await?,
            _ => 0,
        };
        let position = shadow_at.max(live_at);
        let same_position = live_at == position;
        let mut compared = Vec::with_capacity(tables.len());
        for table in tables {
            let (live_rows, live_digest) =
                digest(&mut tx, &live.schema, table).await.map_err(self.pg("digest a live table"))?;
            let (shadow_rows, shadow_digest) =
                digest(&mut tx, &shadow.schema, table).await.map_err(self.pg("digest a shadow table"))?;
            compared.push(TableComparison {
                table: table.clone(),
                live_rows,
                shadow_rows,
                live_digest,
                shadow_digest,
            });
        }
        for statement in [
            format!("ALTER SCHEMA {0} RENAME TO {0}__retired", live.schema),
            format!("ALTER SCHEMA {} RENAME TO {}", shadow.schema, live.schema),
        ] {
            sqlx::query(&statement).execute(&mut *tx).await.map_err(self.pg("rename the schemas"))?;
        }
        match position {
            Some(p) => sqlx::query(
                "INSERT INTO projection_checkpoints (projection, position_major, position_minor, events) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (projection) DO UPDATE SET position_major = EXCLUDED.position_major, \
                    position_minor = EXCLUDED.position_minor, events = EXCLUDED.events, updated_at = now()",
            )
            .bind(&live.checkpoint)
            .bind(p.major as i64)
            .bind(p.minor as i64)
            .bind(shadow_events + tail as i64),
            None => sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1").bind(&live.checkpoint),
        }
        .execute(&mut *tx)
        .await
        .map_err(self.pg("move the live checkpoint"))?;
        for statement in [
            "DELETE FROM projection_checkpoints WHERE projection = $1",
            "DELETE FROM projection_status WHERE projection = $1",
        ] {
            sqlx::query(statement)
                .bind(&shadow.checkpoint)
                .execute(&mut *tx)
                .await
                .map_err(self.pg("forget the shadow"))?;
        }
        tx.commit().await.map_err(self.pg("commit the swap"))?;
        tracing::info!(projection = self.name(), position = ?position, tail, "swapped");
        Ok(Swapped { position, tail, same_position, tables: compared })
    }

    /// Tells every tenant that this projection's models changed as a whole, and where the
    /// projection now is.
    async fn announce(&self, position: Option<Position>) -> Result<(), RebuildError> {
        let Some(position) = position else { return Ok(()) };
        let tenants: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenants")
            .fetch_all(&self.pool)
            .await
            .map_err(self.pg("list the tenants"))?;
        let mut changes = Changes::default();
        for tenant in tenants {
            for model in self.projector.models() {
                changes.whole(tenant, model);
            }
        }
        self.notifier.committed(self.name(), position, &changes).await;
        Ok(())
    }
}

struct Swapped {
    position: Option<Position>,
    tail: u64,
    same_position: bool,
    tables: Vec<TableComparison>,
}

/// Row count and an order-independent digest of the rows (the sum of each row's 64-bit
/// `hash_record_extended`), so two tables built in different orders compare equal. The hash
/// is of the values, not of their text (jsonb by its normalized form), and takes a fifth of
/// the time an MD5 of each row's text does; every column type of a read model must have a
/// hash function (all built-in scalars, arrays and jsonb do). PostgreSQL ≥ 14.
#[tracing::instrument(name = "projection.digest", skip(conn))]
pub async fn digest(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<(i64, String), sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)::numeric), 0)::text FROM {schema}.{} AS t",
        quote_ident(table)
    ))
    .fetch_one(conn)
    .await
}

/// A PostgreSQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
