//! `ops/bench/projections`: how fast the read models are built from a realistic store, beside
//! the raw PostgreSQL upsert rate of the same rows measured in the same run (issue 5, item 6).
//!
//! 1. **Load** (not a target): the demo generator's scanner operations (`Operations`: every
//!    record registered, then updated about three times, 2% deleted) go through the real
//!    command handlers, in 4 lanes of batches of up to 1,000 records (a lane per quarter of
//!    the resource ids, so no two lanes touch one stream and every run decides the same
//!    events). Each new resource also gets the `ComplianceEvaluated` the evaluator would
//!    append: ~5 of the 12 demo policies (created first, through the handler), ~70%
//!    compliant, 20% non-compliant, 5% exempt, 5% not applicable, drawn from the resource id.
//! 2. **Catch-up**: every projection of `registry()` from zero to the head, all at once (as
//!    `cortex serve` runs them) and then each alone; events/s = events in the store ÷ wall time.
//! 3. **Raw**: the same statement shape the resources projector ends in, without it: rows
//!    like the log's (the same generator, so keys repeat as its updates do, in batches of 500
//!    distinct keys) upserted with `INSERT … SELECT FROM UNNEST … ON CONFLICT DO UPDATE`, one
//!    transaction per batch, one connection, into a `LIKE rm_resources.resources INCLUDING
//!    ALL` copy. One row per resource event of the store. Row building is not timed.
//! 4. **Rebuild**: the blue/green rebuild of every projection side by side from one read of
//!    the log (`rebuild_all`), as `cortex projections rebuild --all` does. Beside it, what it does beyond a catch-up: one
//!    count of the log (its progress counts the remaining events, spaced twenty times a count apart) and one digest
//!    of every table (the swap compares live and shadow).
//! 5. **Memory**: the peak RSS of the catch-up with the store at a quarter of its final size
//!    and at its full size, and of the rebuild. Each phase runs on a pool and a store of its
//!    own; the allocator returns free pages and the high-water mark is reset (through
//!    `/proc/self/clear_refs`) before it, and the phase's memory is its peak above its start.
//!    A quarter store of a few thousand events is caught up before the runners' buffers reach
//!    their steady size: judge flatness from about 200,000 events.
//!
//! No `ANALYZE` or `VACUUM` anywhere: the store is fresh, and a deployment with this machine's
//! settings (autovacuum off) would not analyse or vacuum it either, so every phase runs on
//! the statistics PostgreSQL has (none for the new tables) and pays for the hint bits a
//! first scan sets. The one exception is what the product does itself: the rebuild
//! analyses the tables it swaps in (`projections/src/rebuild.rs`), as in a deployment.
//!
//! Environment: `BENCH_EVENTS` (default 1,000,000) events in the store, `BENCH_SEED`
//! (default 1) the generator's seed, `CORTEX_TEST_DATABASE_URL` the server (a fresh
//! database `cortex_bench_*` is made and dropped). Linux only (`/proc`). For working on a
//! phase: `BENCH_DATABASE=name` loads into that (new) database and keeps it, and
//! `BENCH_LOAD_ONLY=1` stops after loading, leaving a store to run `cortex projections
//! rebuild` or `status` against by hand (`CORTEX_DATABASE_URL=…/name`). `BENCH_FIGURES`
//! (set by `ops/bench/projections` for `BENCH_JSON`): each figure of the table is appended
//! there.
//!
//! One file, though longer than the house's ~300 lines: a bench target is one file here, and
//! its phases read best top to bottom.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use cortex_command::{
    aggregate::PolicyBody,
    demo::{InventoryRecord, Operation, Operations, policies},
    handlers::{Commands, RequestContext},
    tenants::Caller,
};
use cortex_events::{
    Catalog, DomainEvent, EventStore, ExpectedRevision, Provenance, StreamName, catalog as ev,
    postgres::{MIGRATOR, PostgresEventStore},
    resource_id,
    testing::{DEFAULT_ADMIN_URL, replace_database},
};
use cortex_projections::{
    Notifier, Projector, Runner, RunnerSettings,
    rebuild::{Rebuild, rebuild_all},
    registry,
};
use futures::{FutureExt, future::join_all};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Map, Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

/// One tenant, fixed so that resource ids (UUIDv5 of tenant and cloud id) repeat across runs.
const TENANT: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_be4c);
const LANES: usize = 4;
/// The command API's batch limit.
const BATCH: usize = 1_000;
const POLICIES: usize = 12;
const RESULTS_PER_RESOURCE: usize = 5;
const UPDATES_PER_RESOURCE: u32 = 3;
const RAW_BATCH: usize = 500;

/// The allocator `cortex serve` runs with (see `src/main.rs`): the runners' costs measured
/// here are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.replace('_', "").parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let target = env_u64("BENCH_EVENTS", 1_000_000);
    let seed = env_u64("BENCH_SEED", 1);
    let kept = std::env::var("BENCH_DATABASE").ok().filter(|n| !n.is_empty());
    let load_only = env_u64("BENCH_LOAD_ONLY", 0) != 0;
    let db = BenchDatabase::create(kept.clone()).await;
    // A failed run must not leave a store of gigabytes behind (unless asked to keep it).
    let outcome = std::panic::AssertUnwindSafe(run(&db, target, seed, load_only)).catch_unwind().await;
    if kept.is_none() {
        db.drop_database().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn run(db: &BenchDatabase, target: u64, seed: u64, load_only: bool) {
    let catalog = Arc::new(Catalog::standard().expect("the standard catalog"));
    let store: Arc<dyn EventStore> = Arc::new(PostgresEventStore::new(db.pool.clone(), catalog.clone()));
    let projectors = registry();
    let names: Vec<&str> = projectors.iter().map(|p| p.name()).collect();
    println!(
        "ops/bench/projections — {target} events, seed {seed}, projections {names:?}, database {}",
        db.name
    );

    let mut loader = Loader::new(store.clone(), seed, target).await;
    if load_only {
        let seconds = loader.load_until(target).await;
        println!("  loaded {} events in {seconds:.1} s into {}; kept", count(&store).await, db.name);
        return;
    }
    let quarter_load = loader.load_until(target / 4).await;
    let quarter = project(db, &catalog, &projectors).await;
    println!("  catch-up of {} events, all projections: {:.1} s", quarter.events, quarter.seconds);

    let full_load = loader.load_until(target).await;
    let load_seconds = quarter_load + full_load;
    let counting = Instant::now();
    let stored = count(&store).await;
    let count_seconds = counting.elapsed().as_secs_f64();
    println!(
        "  loaded {stored} events in {load_seconds:.1} s ({:.0} events/s)",
        stored as f64 / load_seconds
    );
    reset(db, &projectors).await;
    let full = project(db, &catalog, &projectors).await;
    println!("  catch-up of {} events, all projections: {:.1} s", full.events, full.seconds);
    let mut alone = Vec::new();
    for projector in &projectors {
        reset(db, std::slice::from_ref(projector)).await;
        let phase = project(db, &catalog, std::slice::from_ref(projector)).await;
        println!("  catch-up, {} alone: {:.1} s", projector.name(), phase.seconds);
        alone.push((projector.name(), phase));
    }

    let resource_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM es_events WHERE category = 'resource'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let raw = raw_upserts(db, seed, target, resource_events as u64).await;
    println!("  raw: {} rows in {:.1} s", raw.rows, raw.seconds);

    let (rebuild, rebuilds) = rebuild_every(db, &catalog, &projectors).await;
    println!("  rebuild of every projection: {:.1} s", rebuild.seconds);
    let digest_seconds = digest_all(db, &projectors).await;

    let results = Results {
        target,
        load_seconds,
        quarter,
        full,
        alone,
        raw,
        rebuild,
        rebuilds,
        count_seconds,
        digest_seconds,
    };
    println!("\n| measurement | PolicyCortex | baseline | ratio / target |");
    println!("| --- | ---: | ---: | --- |");
    for [a, b, c, d] in results.rows() {
        println!("| {a} | {b} | {c} | {d} |");
    }
    results.figures();
}

/// A fresh, migrated database like `TestDatabase`'s, but not named `cortex_test_*`: `ops/test`
/// drops every such database when it starts, which would end a bench run of many minutes.
struct BenchDatabase {
    name: String,
    url: String,
    pool: PgPool,
    admin_url: String,
}

impl BenchDatabase {
    /// `name`: a database of that name, to keep; otherwise a fresh `cortex_bench_*`.
    async fn create(name: Option<String>) -> Self {
        let admin_url =
            std::env::var("CORTEX_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = name.unwrap_or_else(|| format!("cortex_bench_{}", Uuid::now_v7().simple()));
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
        admin.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await.expect("create the database");
        let _ = admin.close().await;
        let url = replace_database(&admin_url, &name);
        let pool = PgPoolOptions::new().max_connections(24).connect(&url).await.expect("connect");
        MIGRATOR.run(&pool).await.expect("migrate");
        Self { name, url, pool, admin_url }
    }

    async fn drop_database(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pool.close()).await;
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
                .await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

struct Loader {
    commands: Commands,
    store: Arc<dyn EventStore>,
    operations: Operations,
    policies: Vec<Uuid>,
    seed: u64,
}

impl Loader {
    /// Creates the policies; the estate is sized so the generator outlasts `target` events
    /// (about 5 events per resource: registration, 3 updates, an evaluation, 2% deletes).
    async fn new(store: Arc<dyn EventStore>, seed: u64, target: u64) -> Self {
        let commands = Commands::new(store.clone());
        let ctx = context();
        let mut ids = Vec::new();
        for body in policies(POLICIES) {
            // The demo's body is what the API takes as JSON; the handler's type reads it.
            let body: PolicyBody =
                serde_json::from_value(serde_json::to_value(body).unwrap()).expect("a policy body");
            ids.push(commands.create_policy(&ctx, body).await.expect("create a policy").policy_id);
        }
        let operations = Operations::new(seed, estate_size(target), UPDATES_PER_RESOURCE);
        Self { commands, store, operations, policies: ids, seed }
    }

    /// Loads rounds of operations until the store holds `target` events; answers the seconds.
    async fn load_until(&mut self, target: u64) -> f64 {
        let started = Instant::now();
        let mut shown = Instant::now();
        loop {
            let stored = count(&self.store).await;
            if stored >= target {
                break;
            }
            if shown.elapsed() >= Duration::from_secs(30) {
                eprintln!("  loading: {stored} of {target} events, {:.0} s", started.elapsed().as_secs_f64());
                shown = Instant::now();
            }
            let mut lanes: Vec<Vec<Operation>> = vec![Vec::new(); LANES];
            for op in self.operations.by_ref().take(LANES * BATCH) {
                let cloud_id = match &op {
                    Operation::Register(r) => &r.id,
                    Operation::Delete(id) => id,
                };
                lanes[(resource_id(TENANT, cloud_id).as_u128() % LANES as u128) as usize].push(op);
            }
            assert!(lanes.iter().any(|l| !l.is_empty()), "the generator ran out before {target} events");
            join_all(lanes.into_iter().map(|ops| self.lane(ops))).await;
        }
        started.elapsed().as_secs_f64()
    }

    /// One lane's operations in order: registrations in batches, then the round's deletes
    /// (the generator deletes only records its window registered before).
    async fn lane(&self, ops: Vec<Operation>) {
        let ctx = context();
        let mut registers = Vec::new();
        let mut deletes = Vec::new();
        for op in ops {
            match op {
                Operation::Register(record) => registers.push(record),
                Operation::Delete(cloud_id) => deletes.push(resource_id(TENANT, &cloud_id)),
            }
        }
        for chunk in registers.chunks(BATCH) {
            let batch = chunk.iter().cloned().enumerate().collect();
            let results =
                self.commands.register_resources(&ctx, batch).await.expect("a batch's streams read");
            let evaluations = results.into_iter().filter_map(|(i, result)| {
                let outcome = result.unwrap_or_else(|e| panic!("registering {}: {e}", chunk[i].id));
                outcome.created.then(|| self.evaluate(outcome.resource_id, outcome.revision))
            });
            join_all(evaluations).await;
        }
        let ctx = &ctx;
        join_all(deletes.into_iter().map(|id| async move {
            self.commands.delete_resource(ctx, id).await.unwrap_or_else(|e| panic!("deleting {id}: {e}"));
        }))
        .await;
    }

    /// Appends what the evaluator would decide for a new resource.
    async fn evaluate(&self, resource: Uuid, revision: u64) {
        let mut rng = StdRng::seed_from_u64(self.seed ^ resource.as_u64_pair().0);
        let results = self
            .policies
            .choose_multiple(&mut rng, RESULTS_PER_RESOURCE)
            .map(|&policy_id| {
                let (state, reason, details) = match rng.random_range(0..100) {
                    0..70 => (ev::ComplianceState::Compliant, None, None),
                    70..90 => (
                        ev::ComplianceState::NonCompliant,
                        Some(
                            "Field 'properties.supportsHttpsTrafficOnly' is false; the policy requires true"
                                .to_owned(),
                        ),
                        Some(details()),
                    ),
                    90..95 => (
                        ev::ComplianceState::Exempt,
                        Some("exempted until the migration ends".to_owned()),
                        None,
                    ),
                    _ => (ev::ComplianceState::NotApplicable, None, None),
                };
                ev::PolicyResult { policy_id, state, reason, details, policy_revision: Some(0) }
            })
            .collect();
        let event = DomainEvent::from(ev::ComplianceEvaluated {
            resource_id: resource,
            resource_revision: Some(revision),
            source: "policycortex".to_owned(),
            results,
        });
        self.store
            .append(
                &StreamName::compliance(resource),
                ExpectedRevision::Any,
                vec![event.into_new_event(Provenance::system(TENANT, "bench"))],
            )
            .await
            .expect("append an evaluation");
    }
}

fn details() -> Map<String, Value> {
    let details = json!({"field": "Microsoft.Storage/storageAccounts/supportsHttpsTrafficOnly",
                         "actual": false, "expected": true, "pointer": "/if/allOf/1"});
    details.as_object().cloned().unwrap_or_default()
}

fn estate_size(target: u64) -> usize {
    (target as usize / 4).max(2 * BATCH)
}

fn context() -> RequestContext {
    RequestContext {
        caller: Caller { tenant_id: TENANT, key_id: Uuid::from_u128(1) },
        correlation_id: Uuid::now_v7(),
        traceparent: None,
    }
}

async fn count(store: &Arc<dyn EventStore>) -> u64 {
    store.count_after(None).await.expect("count the log").expect("the store counts")
}

// ---------------------------------------------------------------------------------------------
// Projecting

struct Phase {
    events: u64,
    seconds: f64,
    memory: Memory,
}

/// A pool and a store of the phase's own, so that its memory is its own: the loader's
/// connections keep their grown buffers, and its store caches the head of every stream it
/// wrote.
async fn connect(db: &BenchDatabase, catalog: &Arc<Catalog>) -> (PgPool, Arc<dyn EventStore>) {
    let pool = PgPoolOptions::new().max_connections(16).connect(&db.url).await.expect("connect");
    let store = Arc::new(PostgresEventStore::new(pool.clone(), catalog.clone()));
    (pool, store)
}

/// Every projection in `projectors` from its checkpoint to the head, each on its own task.
async fn project(db: &BenchDatabase, catalog: &Arc<Catalog>, projectors: &[Arc<dyn Projector>]) -> Phase {
    let (pool, store) = connect(db, catalog).await;
    let events = count(&store).await;
    let watch = Memory::start();
    let started = Instant::now();
    let runs = projectors.iter().map(|projector| {
        let runner =
            Runner::shared(store.clone(), pool.clone(), projector.clone(), RunnerSettings::default());
        tokio::spawn(async move { runner.run_until_caught_up().await })
    });
    for run in join_all(runs).await {
        run.expect("the runner's task").expect("catch up");
    }
    let seconds = started.elapsed().as_secs_f64();
    let memory = watch.finish();
    pool.close().await;
    Phase { events, seconds, memory }
}

/// Empties the projections' tables and forgets their checkpoints: the next run starts at zero.
async fn reset(db: &BenchDatabase, projectors: &[Arc<dyn Projector>]) {
    for projector in projectors {
        let name = projector.name();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1",
        )
        .bind(format!("rm_{name}"))
        .fetch_all(&db.pool)
        .await
        .unwrap();
        if !tables.is_empty() {
            sqlx::query(&format!("TRUNCATE {}", tables.join(", "))).execute(&db.pool).await.unwrap();
        }
        for table in ["projection_checkpoints", "projection_status"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE projection = $1"))
                .bind(name)
                .execute(&db.pool)
                .await
                .unwrap();
        }
    }
}

struct Rebuilt {
    seconds: f64,
    memory: Memory,
}

/// `rebuild --all`: every projection side by side from one read of the log (`rebuild_all`);
/// the seconds of each, by name.
async fn rebuild_every(
    db: &BenchDatabase,
    catalog: &Arc<Catalog>,
    projectors: &[Arc<dyn Projector>],
) -> (Rebuilt, Vec<(&'static str, f64)>) {
    let (pool, store) = connect(db, catalog).await;
    let watch = Memory::start();
    let started = Instant::now();
    let rebuilds = projectors
        .iter()
        .map(|projector| {
            Rebuild::new(
                store.clone(),
                pool.clone(),
                &db.url,
                projector.clone(),
                RunnerSettings::default(),
                Notifier::Off,
            )
        })
        .collect();
    let mut each = Vec::new();
    for report in rebuild_all(rebuilds, true, Arc::new(|_, _| {})).await {
        let report = report.expect("rebuild");
        for t in report.tables.iter().filter(|t| t.differs()) {
            println!(
                "  ! rebuild of {}: table {} differs ({} live rows, {} rebuilt)",
                report.projection, t.table, t.live_rows, t.shadow_rows
            );
        }
        each.push((report.projection, report.seconds));
    }
    let (seconds, memory) = (started.elapsed().as_secs_f64(), watch.finish());
    pool.close().await;
    (Rebuilt { seconds, memory }, each)
}

/// Seconds to digest every live table once, as the swap does (twice: live and shadow).
async fn digest_all(db: &BenchDatabase, projectors: &[Arc<dyn Projector>]) -> f64 {
    let mut conn = db.pool.acquire().await.unwrap();
    let started = Instant::now();
    for projector in projectors {
        let schema = format!("rm_{}", projector.name());
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
                .bind(&schema)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        for table in tables {
            cortex_projections::rebuild::digest(&mut conn, &schema, &table).await.expect("digest");
        }
    }
    started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// The raw baseline

struct Raw {
    rows: u64,
    seconds: f64,
}

/// Rows shaped and keyed like the log's resource events, in batches of distinct keys (one
/// `ON CONFLICT DO UPDATE` cannot touch a row twice): a repeated key waits for a later batch.
struct RawRows {
    operations: Operations,
    waiting: VecDeque<InventoryRecord>,
    revisions: HashMap<Uuid, i64>,
    remaining: u64,
}

impl RawRows {
    fn next_batch(&mut self) -> Option<Columns> {
        let mut keys = HashSet::new();
        let mut columns = Columns::default();
        let mut later = Vec::new();
        while keys.len() < RAW_BATCH && self.remaining > 0 {
            let record = match self.waiting.pop_front() {
                Some(record) => record,
                None => match self.operations.next() {
                    Some(Operation::Register(record)) => record,
                    Some(Operation::Delete(_)) => continue,
                    None => break,
                },
            };
            let id = resource_id(TENANT, &record.id);
            if !keys.insert(id) {
                later.push(record);
                continue;
            }
            let revision = self.revisions.entry(id).and_modify(|r| *r += 1).or_insert(0);
            columns.push(id, *revision, record);
            self.remaining -= 1;
        }
        for record in later.into_iter().rev() {
            self.waiting.push_front(record);
        }
        (!keys.is_empty()).then_some(columns)
    }
}

#[derive(Default)]
struct Columns {
    resource: Vec<Uuid>,
    cloud_id: Vec<String>,
    name: Vec<String>,
    resource_type: Vec<String>,
    location: Vec<String>,
    kind: Vec<Option<String>>,
    tags: Vec<Value>,
    properties: Vec<Value>,
    subscription_id: Vec<String>,
    resource_group: Vec<String>,
    revision: Vec<i64>,
}

impl Columns {
    fn push(&mut self, id: Uuid, revision: i64, record: InventoryRecord) {
        self.resource.push(id);
        self.subscription_id.push(record.id_subscription().unwrap_or_default().to_owned());
        self.resource_group.push(record.id_resource_group().unwrap_or_default().to_owned());
        self.tags.push(serde_json::to_value(record.tags.unwrap_or_default()).unwrap());
        self.properties.push(Value::Object(record.properties.unwrap_or_default()));
        self.cloud_id.push(record.id);
        self.name.push(record.name);
        self.resource_type.push(record.resource_type);
        self.location.push(record.location);
        self.kind.push(record.kind);
        self.revision.push(revision);
    }

    async fn upsert(self, conn: &mut sqlx::PgConnection) {
        let n = self.resource.len();
        let now = vec![Utc::now(); n];
        let mut tx = sqlx::Connection::begin(conn).await.unwrap();
        sqlx::query(
            "INSERT INTO raw_resources (tenant_id, resource_id, cloud_id, name, type, location, kind, tags, properties, \
                                        subscription_id, resource_group, revision, registered_at, updated_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                                  $7::text[], $8::jsonb[], $9::jsonb[], $10::text[], $11::text[], $12::bigint[], \
                                  $13::timestamptz[], $14::timestamptz[]) \
             ON CONFLICT (tenant_id, resource_id) DO UPDATE SET cloud_id = EXCLUDED.cloud_id, name = EXCLUDED.name, \
                type = EXCLUDED.type, location = EXCLUDED.location, kind = EXCLUDED.kind, tags = EXCLUDED.tags, \
                properties = EXCLUDED.properties, subscription_id = EXCLUDED.subscription_id, \
                resource_group = EXCLUDED.resource_group, revision = EXCLUDED.revision, \
                updated_at = EXCLUDED.updated_at",
        )
        .bind(vec![TENANT; n])
        .bind(self.resource)
        .bind(self.cloud_id)
        .bind(self.name)
        .bind(self.resource_type)
        .bind(self.location)
        .bind(self.kind)
        .bind(self.tags)
        .bind(self.properties)
        .bind(self.subscription_id)
        .bind(self.resource_group)
        .bind(self.revision)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .expect("raw upsert");
        tx.commit().await.unwrap();
    }
}

/// `rows` upserts of the generator's records; only the statements are timed.
async fn raw_upserts(db: &BenchDatabase, seed: u64, target: u64, rows: u64) -> Raw {
    sqlx::query("CREATE TABLE raw_resources (LIKE rm_resources.resources INCLUDING ALL)")
        .execute(&db.pool)
        .await
        .expect("copy the resources table's shape");
    let mut conn = db.pool.acquire().await.unwrap();
    let mut source = RawRows {
        operations: Operations::new(seed, estate_size(target), UPDATES_PER_RESOURCE),
        waiting: VecDeque::new(),
        revisions: HashMap::new(),
        remaining: rows,
    };
    let mut timed = Duration::ZERO;
    let mut written = 0;
    while let Some(batch) = source.next_batch() {
        written += batch.resource.len() as u64;
        let started = Instant::now();
        batch.upsert(&mut conn).await;
        timed += started.elapsed();
    }
    Raw { rows: written, seconds: timed.as_secs_f64() }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// Peak resident memory of a phase, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    start_kib: u64,
    peak_kib: u64,
}

impl Memory {
    /// Returns freed heap to the system, then resets the high-water mark to the current RSS
    /// (`5` → `clear_refs`, Linux ≥ 4.0), so that the peak is this phase's own.
    fn start() -> Self {
        // The `mimalloc` crate wraps only the allocation calls; the library it links has the rest.
        unsafe extern "C" {
            fn mi_collect(force: bool);
        }
        // SAFETY: mi_collect only returns the allocator's free pages to the system.
        unsafe { mi_collect(true) };
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (/proc/self/clear_refs)");
        Self { start_kib: status_kib("VmRSS:"), peak_kib: 0 }
    }

    fn finish(self) -> Self {
        Self { peak_kib: status_kib("VmHWM:"), ..self }
    }

    fn growth_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.start_kib)
    }

    fn describe(&self) -> String {
        format!("{} (+{} over its start)", mib(self.peak_kib), mib(self.growth_kib()))
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

// ---------------------------------------------------------------------------------------------
// The table

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn per_second(n: u64, seconds: f64) -> f64 {
    n as f64 / seconds.max(1e-9)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// One figure for `BENCH_JSON` (see `ops/bench/lib/figures.sh`): a line appended to the file
/// `BENCH_FIGURES` when it is set.
fn figure(name: &str, value: f64, unit: &str, kind: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("BENCH_FIGURES") else { return };
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open BENCH_FIGURES");
    writeln!(file, "{name}\t{value}\t{unit}\t{kind}").expect("write to BENCH_FIGURES");
}

struct Results {
    target: u64,
    load_seconds: f64,
    /// Catch-up of every projection at once with the store at a quarter of its size, then full.
    quarter: Phase,
    full: Phase,
    /// Catch-up of each projection alone, full store.
    alone: Vec<(&'static str, Phase)>,
    raw: Raw,
    rebuild: Rebuilt,
    /// Seconds of each projection's rebuild.
    rebuilds: Vec<(&'static str, f64)>,
    /// One `count_after(None)` of the full store: what a rebuild's progress runs, twenty times its duration apart.
    count_seconds: f64,
    /// One digest of every live table: what a rebuild's swap runs on live and shadow.
    digest_seconds: f64,
}

impl Results {
    /// The table's figures for `BENCH_JSON`, under names that do not depend on the sizes.
    fn figures(&self) {
        let raw_rate = per_second(self.raw.rows, self.raw.seconds);
        figure("raw.rows_per_s", raw_rate, "rows/s", "throughput");
        let catch_up = |name: &str, phase: &Phase| {
            let rate = per_second(phase.events, phase.seconds);
            figure(&format!("catch_up.{name}.events_per_s"), rate, "events/s", "throughput");
            figure(&format!("catch_up.{name}.seconds"), phase.seconds, "s", "time");
            figure(&format!("catch_up.{name}.ratio"), rate / raw_rate, "x", "ratio");
        };
        catch_up("all", &self.full);
        for (name, phase) in &self.alone {
            catch_up(name, phase);
        }
        catch_up("all_quarter", &self.quarter);
        figure("rebuild.all.seconds", self.rebuild.seconds, "s", "time");
        for (name, seconds) in &self.rebuilds {
            figure(&format!("rebuild.{name}.seconds"), *seconds, "s", "time");
        }
        figure("rebuild.count.seconds", self.count_seconds, "s", "time");
        figure("rebuild.digest.seconds", self.digest_seconds, "s", "time");
        let memory = |name: &str, memory: &Memory| {
            let in_mib = |kib: u64| kib as f64 / 1024.0;
            figure(&format!("memory.{name}.peak_mib"), in_mib(memory.peak_kib), "MiB", "memory");
            figure(&format!("memory.{name}.growth_mib"), in_mib(memory.growth_kib()), "MiB", "memory");
        };
        memory("catch_up_quarter", &self.quarter.memory);
        memory("catch_up_all", &self.full.memory);
        let growth = self.full.memory.growth_kib() as f64 / self.quarter.memory.growth_kib().max(1) as f64;
        figure("memory.catch_up_growth", growth, "x", "memory");
        memory("rebuild", &self.rebuild.memory);
        let load_rate = per_second(self.full.events, self.load_seconds);
        figure("load.events_per_s", load_rate, "events/s", "throughput");
    }

    fn rows(&self) -> Vec<[String; 4]> {
        let Self { target, load_seconds, quarter, full, alone, raw, rebuild, rebuilds, .. } = self;
        let (target, load_seconds) = (*target, *load_seconds);
        let raw_rate = per_second(raw.rows, raw.seconds);
        let baseline = format!("{raw_rate:.0} rows/s raw UNNEST upsert");
        let mut rows = Vec::new();
        let rate = per_second(full.events, full.seconds);
        rows.push([
            format!("catch-up from zero, all {} projections at once, {} events", alone.len(), full.events),
            format!("{rate:.0} events/s ({:.1} s)", full.seconds),
            baseline.clone(),
            format!("{:.2}× raw (target ≥ 0.5×: {})", rate / raw_rate, met(rate >= 0.5 * raw_rate)),
        ]);
        for (name, phase) in alone {
            let rate = per_second(phase.events, phase.seconds);
            rows.push([
                format!("catch-up from zero, {name} alone"),
                format!("{rate:.0} events/s ({:.1} s)", phase.seconds),
                baseline.clone(),
                format!("{:.2}× raw", rate / raw_rate),
            ]);
        }
        let rate = per_second(quarter.events, quarter.seconds);
        rows.push([
            format!("catch-up from zero, all at once, store at {} events", quarter.events),
            format!("{rate:.0} events/s ({:.1} s)", quarter.seconds),
            baseline,
            format!("{:.2}× raw", rate / raw_rate),
        ]);
        // The target is for 1,000,000 events; a smaller store gets its share of the 60 s.
        let limit = 60.0 * target as f64 / 1e6;
        rows.push([
            format!("rebuild of every projection (`--all`), {} events", full.events),
            format!("{:.1} s", rebuild.seconds),
            String::new(),
            format!("target < {limit:.1} s: {}", met(rebuild.seconds < limit)),
        ]);
        for (name, seconds) in rebuilds {
            rows.push([format!("rebuild, {name}"), format!("{seconds:.1} s"), String::new(), String::new()]);
        }
        rows.push([
            "rebuild: one count of the log (`count_after`; progress counts at most 5% of the time)"
                .to_owned(),
            format!("{:.2} s", self.count_seconds),
            String::new(),
            String::new(),
        ]);
        rows.push([
            "rebuild: one digest of every table (the swap runs it on live and shadow)".to_owned(),
            format!("{:.1} s", self.digest_seconds),
            String::new(),
            String::new(),
        ]);
        // The phase's own memory: its peak above the RSS it started at (what the loader keeps is
        // not the projections').
        let (small, large) = (quarter.memory.growth_kib(), full.memory.growth_kib());
        rows.push([
            format!("peak RSS, catch-up at {} events", quarter.events),
            quarter.memory.describe(),
            String::new(),
            String::new(),
        ]);
        let growth = large as f64 / small.max(1) as f64;
        rows.push([
            format!("peak RSS, catch-up at {} events", full.events),
            full.memory.describe(),
            format!("+{} at {} events", mib(small), quarter.events),
            format!(
                "{growth:.2}× for {:.1}× the events (target flat, ≤ 1.25×: {})",
                full.events as f64 / quarter.events.max(1) as f64,
                met(growth <= 1.25)
            ),
        ]);
        rows.push(["peak RSS, rebuild".to_owned(), rebuild.memory.describe(), String::new(), String::new()]);
        rows.push([
            "load through the command handlers (not a target)".to_owned(),
            format!("{:.0} events/s ({load_seconds:.1} s)", per_second(full.events, load_seconds)),
            String::new(),
            String::new(),
        ]);
        rows
    }
}
