//! `ops/bench/append`: event store append and catch-up throughput beside the raw
//! PostgreSQL ceiling of the same shapes, measured in the same run on the same database.
//!
//! Shapes: (a) 1-event appends by 8 and by 64 concurrent writers, each on its own stream;
//! (b) 100-event appends by 4 writers; (c) catch-up read of `$all` from the start.
//! Raw ceiling: pgbench running plain INSERTs of the same rows (same columns, indexes and
//! JSON sizes, in a `LIKE es_events INCLUDING ALL` copy) — 1 row per transaction for (a),
//! 100 rows per transaction for (b) — and a `COPY … TO STDOUT` of the log in `$all` order
//! for (c). Prints a table with each ratio. Environment: `BENCH_SECONDS` (default 10) per
//! measurement, `CORTEX_TEST_DATABASE_URL` (the server; a fresh database is created),
//! `BENCH_FIGURES` (set by `ops/bench/append` for `BENCH_JSON`: each figure is appended there).

use std::{
    io::Write,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use cortex_events::{
    Catalog, EventFilter, EventStore, ExpectedRevision, NewEvent, Provenance, StreamName, SubscriptionItem,
    postgres::PostgresEventStore, testing::TestDatabase,
};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

const BENCH_SCHEMA: &str = r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
  "required": ["n"], "properties": {"n": {"type": "integer"}, "pad": {"type": "string"}}}"#;
/// About the size of a tags-changed event's data.
const PAD: usize = 200;

fn seconds() -> Duration {
    Duration::from_secs(std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10))
}

/// One figure for `BENCH_JSON` (see `ops/bench/lib/figures.sh`): a line appended to the file
/// `BENCH_FIGURES` when it is set.
fn figure(name: &str, value: f64, unit: &str, kind: &str) {
    let Some(path) = std::env::var_os("BENCH_FIGURES") else { return };
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open BENCH_FIGURES");
    writeln!(file, "{name}\t{value}\t{unit}\t{kind}").expect("write to BENCH_FIGURES");
}

fn event(tenant: Uuid, n: u64) -> NewEvent {
    NewEvent::new(
        "BenchEvent",
        1,
        json!({ "n": n, "pad": "p".repeat(PAD) }),
        Provenance::system(tenant, "bench"),
    )
}

/// `writers` tasks each appending `batch`-event appends to their own stream for `dur`.
async fn appends(store: Arc<PostgresEventStore>, writers: usize, batch: u64, dur: Duration) -> f64 {
    let tenant = Uuid::now_v7();
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = StreamName::parse(format!("bench-{}", Uuid::now_v7().simple())).unwrap();
                let mut expected = ExpectedRevision::NoStream;
                let mut written = 0u64;
                while start.elapsed() < dur {
                    let events = (0..batch).map(|i| event(tenant, written + i)).collect();
                    let out = store.append(&stream, expected, events).await.expect("append");
                    expected = ExpectedRevision::Exact(out.revision);
                    written += batch;
                }
                written
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn catch_up(store: &PostgresEventStore) -> (u64, f64) {
    let start = Instant::now();
    let mut sub = store.subscribe_all(None, EventFilter::all());
    let mut n = 0u64;
    while let Some(item) = sub.next().await {
        match item.expect("subscription") {
            SubscriptionItem::Event(_) => n += 1,
            SubscriptionItem::CaughtUp => break,
            SubscriptionItem::Checkpoint(_) => {}
        }
    }
    (n, n as f64 / start.elapsed().as_secs_f64())
}

fn pgbench(url: &str, clients: usize, script: &str, dur: Duration) -> f64 {
    let path = std::env::temp_dir().join(format!("cortex-bench-{}.sql", Uuid::now_v7().simple()));
    std::fs::write(&path, script).unwrap();
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", &clients.min(4).to_string()])
        .args(["-T", &dur.as_secs().to_string(), "-f", path.to_str().unwrap(), url])
        .output()
        .expect("pgbench runs (postgresql-contrib)");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pgbench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()?.parse().ok()))
        .expect("pgbench prints tps")
}

fn raw_insert_script(rows: u64) -> String {
    let meta = json!({
        "event_id": "00000000-0000-7000-8000-000000000000", "tenant_id": "00000000-0000-7000-8000-000000000000",
        // Same length as `system:bench`; a colon would be read by pgbench as a variable.
        "actor": "system-bench", "correlation_id": "00000000-0000-7000-8000-000000000000",
        "causation_id": "00000000-0000-7000-8000-000000000000", "occurred_at": "2026-01-01T00:00:00.000000Z",
        "schema_version": 1, "prev_hash": "0".repeat(64), "hash": "0".repeat(64)
    });
    let data = json!({ "n": 1, "pad": "p".repeat(PAD) });
    format!(
        "\\set r random(0, 4000000000000000000)\n\
         INSERT INTO raw_events (stream_name, category, stream_revision, event_id, event_type, schema_version, \
         tenant_id, data, metadata, hash) SELECT 'raw-' || :client_id || '-' || :r, 'raw', g, gen_random_uuid(), \
         'BenchEvent', 1, '00000000-0000-7000-8000-000000000000', '{data}', '{meta}', '{hash}' \
         FROM generate_series(1, {rows}) g;\n",
        hash = "0".repeat(64)
    )
}

fn raw_read(url: &str, columns: &str) -> f64 {
    let start = Instant::now();
    let out = Command::new("psql")
        .args([
            url,
            "-qAtc",
            &format!("COPY (SELECT {columns} FROM es_events ORDER BY tx_id, seq) TO STDOUT"),
        ])
        .stdout(std::process::Stdio::piped())
        .output()
        .expect("psql runs");
    assert!(out.status.success());
    let rows = out.stdout.iter().filter(|&&b| b == b'\n').count();
    rows as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let dur = seconds();
    let db = TestDatabase::create_with_pool_size(80).await;
    sqlx::query("CREATE TABLE raw_events (LIKE es_events INCLUDING ALL)").execute(&db.pool).await.unwrap();
    let catalog =
        Arc::new(Catalog::standard_builder().schema_text("BenchEvent", 1, BENCH_SCHEMA).build().unwrap());
    let store = Arc::new(PostgresEventStore::new(db.pool.clone(), catalog));
    println!("ops/bench/append — {}s per measurement, database {}", dur.as_secs(), db.name);

    // (figure name, label, ours, raw, unit)
    let mut rows: Vec<(&str, String, f64, f64, &str)> = Vec::new();
    for (writers, key, label) in [
        (8, "appends_1x8", "(a) 1-event appends, 8 writers"),
        (64, "appends_1x64", "(a) 1-event appends, 64 writers"),
    ] {
        let raw = pgbench(&db.url, writers, &raw_insert_script(1), dur);
        let ours = appends(store.clone(), writers, 1, dur).await;
        rows.push((key, label.into(), ours, raw, "events/s vs raw 1-row INSERT transactions/s"));
    }
    let raw = pgbench(&db.url, 4, &raw_insert_script(100), dur) * 100.0;
    let ours = appends(store.clone(), 4, 100, dur).await;
    rows.push((
        "appends_100x4",
        "(b) 100-event appends, 4 writers".into(),
        ours,
        raw,
        "events/s vs raw rows/s in 100-row INSERTs",
    ));

    let (n, ours) = catch_up(&store).await;
    let raw = raw_read(
        &db.url,
        "tx_id, seq, stream_name, stream_revision, event_type, schema_version, data, metadata, recorded_at",
    );
    rows.push((
        "catch_up",
        format!("(c) catch-up of $all ({n} events)"),
        ours,
        raw,
        "events/s vs raw COPY of the log in order",
    ));

    println!("\n| shape | PolicyCortex | raw PostgreSQL | ratio | unit |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for (key, label, ours, raw, unit) in &rows {
        println!("| {label} | {ours:.0} | {raw:.0} | {:.2}× | {unit} |", ours / raw);
        figure(&format!("{key}.ours"), *ours, "events/s", "throughput");
        figure(&format!("{key}.raw"), *raw, "events/s", "throughput");
        figure(&format!("{key}.ratio"), ours / raw, "x", "ratio");
    }
    db.drop_database().await;
}
