//! PostgreSQL-specific guarantees beyond the shared conformance suite.

mod conformance;

use std::sync::Arc;

use cortex_events::{
    EventStore, ExpectedRevision as Exp, StoreError,
    postgres::{LogOrder, PostgresEventStore, PostgresSettings},
    testing::TestDatabase,
};
use sqlx::{Connection, PgConnection};

use conformance::{Harness, next_events, ns, until_caught_up};

fn harness(db: &TestDatabase, order: LogOrder) -> Harness {
    let pool = db.pool.clone();
    Harness::new(Arc::new(move |catalog| {
        let settings = PostgresSettings { order, ..PostgresSettings::default() };
        Arc::new(PostgresEventStore::with_settings(pool.clone(), catalog, settings)) as Arc<dyn EventStore>
    }))
}

/// Writes one event in a transaction left open, so that it takes a lower `seq` than events
/// committed after it.
async fn open_transaction_with_one_event(db: &TestDatabase, h: &Harness) -> PgConnection {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    let e = h.event(0);
    let meta = e.seal(cortex_events::hash::GENESIS_HASH);
    let stream = h.stream();
    sqlx::query(
        "INSERT INTO es_events (stream_name, category, stream_revision, event_id, event_type, schema_version, \
         tenant_id, data, metadata, hash) VALUES ($1, $2, 0, $3, 'TestEvent', 1, $4, $5, $6, $7)",
    )
    .bind(stream.as_str())
    .bind(stream.category())
    .bind(e.event_id)
    .bind(h.tenant)
    .bind(&e.data)
    .bind(meta.to_json())
    .bind(&meta.hash)
    .execute(&mut conn)
    .await
    .unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_after_a_later_sequence_number_is_still_delivered() {
    let db = TestDatabase::create().await;
    let h = harness(&db, LogOrder::Visibility);
    let mut sub = h.store.subscribe_all(None, h.own());
    assert!(until_caught_up(&mut sub).await.is_empty());
    let mut slow = open_transaction_with_one_event(&db, &h).await;
    h.store.append(&h.stream(), Exp::NoStream, vec![h.event(1)]).await.unwrap();
    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    // Event 1 was committed first but sits in a later transaction: the reader waited for
    // the horizon and delivers both, in (transaction, sequence) order.
    assert_eq!(ns(&next_events(&mut sub, 2).await), [0, 1]);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_naive_sequence_reader_loses_that_event() {
    let db = TestDatabase::create().await;
    let h = harness(&db, LogOrder::SequenceOnly);
    let mut sub = h.store.subscribe_all(None, h.own());
    assert!(until_caught_up(&mut sub).await.is_empty());
    let mut slow = open_transaction_with_one_event(&db, &h).await;
    h.store.append(&h.stream(), Exp::NoStream, vec![h.event(1)]).await.unwrap();
    assert_eq!(ns(&next_events(&mut sub, 1).await), [1], "the later sequence number is read first");
    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    h.store.append(&h.stream(), Exp::NoStream, vec![h.event(2)]).await.unwrap();
    // Event 0 is now committed, but its sequence number is behind the reader: lost.
    assert_eq!(ns(&next_events(&mut sub, 1).await), [2]);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_is_stored_once_whatever_the_stream() {
    let db = TestDatabase::create().await;
    let h = harness(&db, LogOrder::Visibility);
    let e = h.event(0);
    let (a, b) = (h.stream(), h.stream());
    h.store.append(&a, Exp::NoStream, vec![e.clone()]).await.unwrap();
    match h.store.append(&b, Exp::NoStream, vec![e.clone()]).await {
        Err(StoreError::DuplicateEventId { event_id, stream, revision }) => {
            assert_eq!((event_id, stream, revision), (e.event_id, a, 0))
        }
        other => panic!("expected DuplicateEventId, got {other:?}"),
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_refuses_updates_and_deletes() {
    let db = TestDatabase::create().await;
    let h = harness(&db, LogOrder::Visibility);
    h.store.append(&h.stream(), Exp::NoStream, vec![h.event(0)]).await.unwrap();
    for sql in ["UPDATE es_events SET data = '{}'", "DELETE FROM es_events", "TRUNCATE es_events"] {
        let err = sqlx::query(sql).execute(&db.pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_at_the_same_revision_let_exactly_one_win() {
    let db = TestDatabase::create().await;
    let h = harness(&db, LogOrder::Visibility);
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, vec![h.event(0)]).await.unwrap();
    let racers: Vec<_> = (1..=16)
        .map(|n| {
            let (store, s, e) = (h.store.clone(), s.clone(), h.event(n));
            tokio::spawn(async move { store.append(&s, Exp::Exact(0), vec![e]).await })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(out) => {
                assert_eq!(out.revision, 1);
                wins += 1;
            }
            Err(StoreError::WrongExpectedRevision { actual: Some(1), .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    db.drop_database().await;
}

/// `n` connections of `pool` held at once: every session the pool has, when `n` is its size.
async fn sessions(pool: &sqlx::PgPool, n: usize) -> Vec<sqlx::pool::PoolConnection<sqlx::Postgres>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.acquire().await.unwrap());
    }
    held
}

/// The harness over `store` itself, so that the test can reach its pools.
fn over(store: &PostgresEventStore) -> Harness {
    let store = store.clone();
    Harness::new(Arc::new(move |_| Arc::new(store.clone()) as Arc<dyn EventStore>))
}

/// How the prepared statements mentioning `es_events` of `n` sessions of `pool` were
/// planned: (statement, generic plans, custom plans).
async fn plans(pool: &sqlx::PgPool, n: usize) -> Vec<(String, i64, i64)> {
    let mut found = Vec::new();
    for mut conn in sessions(pool, n).await {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements \
             WHERE statement LIKE '%es_events%' AND statement NOT LIKE '%pg_prepared_statements%'",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        found.extend(rows);
    }
    found
}

/// The store's statements look rows up by key or walk an index from a position; PostgreSQL
/// would plan each execution of the `$all` page and the stream reads anew (a custom plan),
/// which was most of their cost. They run on connections with generic plans; only the count
/// of the whole log, which reads every row whatever the plan, stays on the given pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_statements_run_on_generic_plans_and_the_whole_count_on_the_given_pool() {
    // Two connections in each pool: the given one's are the LISTEN connection and the one
    // the whole count used.
    let db = TestDatabase::create_with_pool_size(2).await;
    let store = PostgresEventStore::new(db.pool.clone(), conformance::test_catalog());
    let h = over(&store);
    let s = h.stream();
    for n in 0..3 {
        let expected = if n == 0 { Exp::NoStream } else { Exp::Exact(n - 1) };
        h.store.append(&s, expected, vec![h.event(n)]).await.unwrap();
    }
    h.store.read_streams(std::slice::from_ref(&s)).await.unwrap();
    h.store.read_stream(&s, 0, cortex_events::Direction::Forwards, 10).await.unwrap();
    let mut sub = h.store.subscribe_all(None, h.own());
    let events = until_caught_up(&mut sub).await;
    assert_eq!(events.len(), 3);
    drop(sub);
    assert_eq!(h.store.count_after(Some(events[0].position)).await.unwrap(), Some(2));
    assert_eq!(h.store.count_after(None).await.unwrap(), Some(3));

    let generic = plans(store.statement_pool().expect("the store ran statements"), 2).await;
    for wanted in ["INSERT INTO es_events", "LATERAL", "stream_revision >= $2", "SELECT matched", "count(*)"]
    {
        assert!(generic.iter().any(|(sql, ..)| sql.contains(wanted)), "{wanted} was not run: {generic:?}");
    }
    for (sql, generic_plans, custom_plans) in &generic {
        assert!(
            *generic_plans >= 1 && *custom_plans == 0,
            "planned per execution: {sql} ({custom_plans} custom)"
        );
    }
    let given = plans(store.pool(), 1).await;
    assert!(
        given.iter().all(|(sql, ..)| sql == "SELECT count(*) FROM es_events"),
        "only the whole count runs on the given pool: {given:?}"
    );
    assert!(!given.is_empty(), "the whole count ran on the given pool");

    // Closing the given pool closes the store's: its statements fail as they did on it.
    // (`close` marks the pool closed at once, then waits for the LISTEN connection, which
    // the store holds until it is dropped.)
    drop(db.pool.close());
    match h.store.append(&s, Exp::Exact(2), vec![h.event(3)]).await {
        Err(StoreError::Postgres { source: sqlx::Error::PoolClosed, .. }) => {}
        other => panic!("an append after the pool closed: {other:?}"),
    }
    assert!(h.store.read_streams(std::slice::from_ref(&s)).await.is_err());
    db.drop_database().await;
}

/// Runs every statement the store has (on a store that has not run them yet, so that each is
/// prepared now, at the log's present size): a new stream's head, group and lone appends, an
/// idempotent retry and a conflict (the event id look-up), both stream reads, many streams at
/// once, a subscription's reads (pages, the horizon check, the head) and both counts.
async fn run_every_statement(h: &Harness) {
    let s = h.stream();
    let first = h.event(0);
    h.store.append(&s, Exp::NoStream, vec![first.clone()]).await.unwrap();
    h.store.append(&s, Exp::Exact(0), vec![h.event(1)]).await.unwrap();
    h.store.append(&s, Exp::NoStream, vec![first]).await.expect("a retry of the same event");
    assert!(matches!(
        h.store.append(&s, Exp::Exact(0), vec![h.event(2)]).await,
        Err(StoreError::WrongExpectedRevision { .. })
    ));
    let other = h.stream();
    h.store.read_streams(&[s.clone(), other.clone(), s.clone()]).await.unwrap();
    h.store.read_stream(&s, 0, cortex_events::Direction::Forwards, 10).await.unwrap();
    h.store.read_stream(&s, u64::MAX, cortex_events::Direction::Backwards, 10).await.unwrap();
    let mut sub = h.store.subscribe_all(None, h.own());
    let seen = until_caught_up(&mut sub).await;
    assert!(seen.len() >= 2);
    drop(sub);
    h.store.count_after(Some(seen[0].position)).await.unwrap();
    h.store.count_after(None).await.unwrap();
    h.store.head().await.unwrap();
}

/// `n` rows of 10 events a stream, written directly: a plan depends on the table's size and
/// statistics, not on how its rows came.
async fn grow_log(db: &TestDatabase, from: i64, n: i64) {
    sqlx::query(
        "INSERT INTO es_events (stream_name, category, stream_revision, event_id, event_type, \
                                schema_version, tenant_id, data, metadata, hash) \
         SELECT 'filler-' || (i / 10), 'filler', i % 10, gen_random_uuid(), 'TestEvent', 1, \
                gen_random_uuid(), '{\"n\": 0}', '{}', 'x' \
         FROM generate_series($1::bigint, $2::bigint) AS i",
    )
    .bind(from)
    .bind(from + n - 1)
    .execute(&db.pool)
    .await
    .unwrap();
}

/// The plan of every statement the store's sessions hold: `(statement, plan)`. A generic
/// plan does not depend on the values, so `EXPLAIN EXECUTE` with NULLs shows it.
async fn explain_prepared(pool: &sqlx::PgPool, n: usize) -> Vec<(String, String)> {
    let mut explained = Vec::new();
    for mut conn in sessions(pool, n).await {
        let statements: Vec<(String, String, i32)> = sqlx::query_as(
            "SELECT name, statement, coalesce(cardinality(parameter_types), 0) FROM pg_prepared_statements \
             WHERE statement LIKE '%es_events%' AND statement NOT LIKE 'INSERT%' \
               AND statement NOT LIKE '%pg_prepared_statements%'",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for (name, sql, params) in statements {
            let explain = if params == 0 {
                format!("EXPLAIN EXECUTE {name}")
            } else {
                format!("EXPLAIN EXECUTE {name}({})", vec!["NULL"; params as usize].join(", "))
            };
            let plan: Vec<String> = sqlx::query_scalar(&explain).fetch_all(&mut *conn).await.unwrap();
            explained.push((sql, plan.join("\n")));
        }
    }
    explained
}

fn assert_index_paths(explained: &[(String, String)], when: &str) {
    for (sql, plan) in explained {
        assert!(!plan.contains("Seq Scan"), "{when}: a plan scans the log:\n{sql}\n{plan}");
    }
    for wanted in [
        "SELECT matched",
        "LATERAL",
        "stream_revision >= $2",
        "stream_revision <= $2",
        "event_id = ANY",
        "count(*)",
        "ORDER BY tx_id DESC",
    ] {
        assert!(
            explained.iter().any(|(sql, _)| sql.contains(wanted)),
            "{when}: {wanted} was not run: {explained:#?}"
        );
    }
}

/// Plans that hold as the log grows from empty (issue 22). Every statement of the store is
/// first prepared on an empty log, which PostgreSQL has no statistics of; the log then grows
/// to 300,000 events without `ANALYZE` (autovacuum is off on these machines, and every new
/// deployment starts this way), and every statement runs again on the plans it cached. None
/// may scan the log. A fresh store then prepares them all on the grown, unanalysed log, and
/// after an `ANALYZE` (autovacuum's work, which makes PostgreSQL plan again) a third one
/// does: each time, index paths only. The whole count runs on the given pool and reads every
/// row whatever its plan; it is the one statement left out. (Pools of 4: each store's
/// LISTEN connection holds one of the given pool's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_plans_walk_indexes_as_the_log_grows_from_empty() {
    let db = TestDatabase::create_with_pool_size(4).await;
    let catalog = conformance::test_catalog();
    let young = PostgresEventStore::new(db.pool.clone(), catalog.clone());
    run_every_statement(&over(&young)).await;
    grow_log(&db, 0, 300_000).await;
    run_every_statement(&over(&young)).await;
    let pool = young.statement_pool().expect("the store ran statements");
    assert_index_paths(&explain_prepared(pool, 4).await, "prepared on an empty log");

    let unanalysed = PostgresEventStore::new(db.pool.clone(), catalog.clone());
    run_every_statement(&over(&unanalysed)).await;
    let pool = unanalysed.statement_pool().expect("the store ran statements");
    assert_index_paths(&explain_prepared(pool, 4).await, "prepared on 300,000 unanalysed events");

    sqlx::query("ANALYZE es_events").execute(&db.pool).await.unwrap();
    let analysed = PostgresEventStore::new(db.pool.clone(), catalog);
    run_every_statement(&over(&analysed)).await;
    let pool = analysed.statement_pool().expect("the store ran statements");
    assert_index_paths(&explain_prepared(pool, 4).await, "prepared on 300,000 analysed events");
    db.drop_database().await;
}
