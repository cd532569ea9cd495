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
/// which was most of their cost. They run on connections with generic plans; `count_after`,
/// whose generic plan would scan the whole log, keeps custom plans on the given pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_statements_run_on_generic_plans_and_counting_on_custom_ones() {
    // Two connections in each pool: the given one's are the LISTEN connection and the one
    // `count_after` used.
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
    assert_eq!(until_caught_up(&mut sub).await.len(), 3);
    drop(sub);
    assert_eq!(h.store.count_after(None).await.unwrap(), Some(3));

    let generic = plans(store.statement_pool().expect("the store ran statements"), 2).await;
    for wanted in ["INSERT INTO es_events", "stream_name = ANY", "stream_revision >= $2", "SELECT matched"] {
        assert!(generic.iter().any(|(sql, ..)| sql.contains(wanted)), "{wanted} was not run: {generic:?}");
    }
    for (sql, generic_plans, custom_plans) in &generic {
        assert!(
            *generic_plans >= 1 && *custom_plans == 0,
            "planned per execution: {sql} ({custom_plans} custom)"
        );
    }
    let given = plans(store.pool(), 1).await;
    let count =
        given.iter().find(|(sql, ..)| sql.contains("count(*)")).expect("count_after ran on the given pool");
    assert_eq!((count.1, count.2), (0, 1), "count_after keeps a custom plan: {given:?}");

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

/// The generic plans the store's statements run on walk an index: none scans the log. The
/// log holds 300,000 events over 30,000 streams, analysed, so that the planner chooses as
/// it would for a real log rather than for a small table (at this size the generic plan of
/// `count_after`, were it on this pool, is a parallel scan of the log: this test fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_generic_plans_walk_indexes() {
    let db = TestDatabase::create_with_pool_size(2).await;
    // Written directly: a plan depends on the table's size and statistics, not on how its
    // rows came.
    sqlx::query(
        "INSERT INTO es_events (stream_name, category, stream_revision, event_id, event_type, \
                                schema_version, tenant_id, data, metadata, hash) \
         SELECT 'filler-' || (i / 10), 'filler', i % 10, gen_random_uuid(), 'TestEvent', 1, \
                gen_random_uuid(), '{\"n\": 0}', '{}', 'x' \
         FROM generate_series(0, 299999) AS i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE es_events").execute(&db.pool).await.unwrap();
    let store = PostgresEventStore::new(db.pool.clone(), conformance::test_catalog());
    let h = over(&store);
    // Every statement on the store's pool: a new stream's head, appends, both stream reads,
    // the reads of a subscription (pages, horizon check, head).
    let s = h.stream();
    h.store.append(&s, Exp::NoStream, vec![h.event(0)]).await.unwrap();
    h.store.append(&s, Exp::Exact(0), vec![h.event(1)]).await.unwrap();
    h.store.read_streams(std::slice::from_ref(&s)).await.unwrap();
    h.store.read_stream(&s, 0, cortex_events::Direction::Forwards, 10).await.unwrap();
    h.store.read_stream(&s, u64::MAX, cortex_events::Direction::Backwards, 10).await.unwrap();
    let mut sub = h.store.subscribe_all(None, h.own());
    assert_eq!(until_caught_up(&mut sub).await.len(), 2);
    drop(sub);
    // On the given pool: were it on the store's, its plan would be the scan this test refuses.
    h.store.count_after(None).await.unwrap();

    let pool = store.statement_pool().expect("the store ran statements");
    let mut explained = Vec::new();
    let mut held = sessions(pool, 2).await;
    for conn in &mut held {
        let statements: Vec<(String, String, i32)> = sqlx::query_as(
            "SELECT name, statement, coalesce(cardinality(parameter_types), 0) FROM pg_prepared_statements \
             WHERE statement LIKE '%es_events%' AND statement NOT LIKE 'INSERT%' \
               AND statement NOT LIKE '%pg_prepared_statements%'",
        )
        .fetch_all(&mut **conn)
        .await
        .unwrap();
        for (name, sql, params) in statements {
            // The plan of a generic statement does not depend on the values: NULLs will do.
            let args = vec!["NULL"; params as usize].join(", ");
            let explain = if params == 0 {
                format!("EXPLAIN EXECUTE {name}")
            } else {
                format!("EXPLAIN EXECUTE {name}({args})")
            };
            let plan: Vec<String> = sqlx::query_scalar(&explain).fetch_all(&mut **conn).await.unwrap();
            explained.push((sql, plan.join("\n")));
        }
    }
    for wanted in
        ["SELECT matched", "stream_name = ANY", "stream_revision >= $2", "stream_revision <= $2", "LATERAL"]
    {
        assert!(
            explained.iter().any(|(sql, _)| sql.contains(wanted)),
            "{wanted} was not run: {explained:#?}"
        );
    }
    for (sql, plan) in &explained {
        assert!(!plan.contains("Seq Scan"), "a generic plan scans the log:\n{sql}\n{plan}");
    }
    drop(held);
    db.drop_database().await;
}
