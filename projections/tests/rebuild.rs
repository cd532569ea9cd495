//! Blue/green rebuilds: while writers append and queries read, the live tables answer
//! throughout, the swap is atomic, and the rebuilt tables equal what the live runner built;
//! an interrupted rebuild resumes.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{mixed_history, random_history, settings, store};
use cortex_events::{EventStore, testing::TestDatabase};
use cortex_projections::{
    Notifier, Projector, Runner,
    rebuild::{Rebuild, RebuildReport, rebuild_all},
    registry, status,
};
use uuid::Uuid;

fn rebuild(
    db: &TestDatabase,
    store: &Arc<dyn EventStore>,
    projector: Arc<dyn Projector>,
) -> Rebuild<dyn Projector> {
    Rebuild::new(store.clone(), db.pool.clone(), &db.url, projector, settings(200), Notifier::Off)
}

async fn wait_for_head(db: &TestDatabase, store: &Arc<dyn EventStore>, name: &str) {
    let head = store.head().await.unwrap();
    for _ in 0..1200 {
        if status::checkpoint(&db.pool, name).await.unwrap() == head {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not reach {head:?}");
}

/// Every index (name and definition) and storage option of the read models' schemas.
async fn physical_shape(db: &TestDatabase) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname LIKE 'rm\\_%' \
         UNION ALL SELECT relname::text, coalesce(array_to_string(reloptions, ','), '') FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'rm\\_%' AND c.relkind = 'r' \
         ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Runs `rebuild` until its shadow has a checkpoint, then drops it: an interrupted rebuild.
async fn interrupt_once_checkpointed(db: &TestDatabase, rebuild: Rebuild<dyn Projector>, shadow: &str) {
    let interrupted = tokio::time::timeout(Duration::from_secs(60), async {
        let run = rebuild.run(false, |_| {});
        tokio::pin!(run);
        loop {
            tokio::select! {
                done = &mut run => panic!("the rebuild finished before it could be interrupted: {:?}", done.map(|r| r.events)),
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    if status::checkpoint(&db.pool, shadow).await.unwrap().is_some() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    interrupted.unwrap_or_else(|_| panic!("{shadow} got no checkpoint within 60 s"));
}

fn assert_identical(report: &RebuildReport) {
    assert!(report.compared_at_same_position, "{report:?}");
    for t in &report.tables {
        assert!(
            !t.differs(),
            "{}: live {} rows, shadow {} rows ({} vs {})",
            t.table,
            t.live_rows,
            t.shadow_rows,
            t.live_digest,
            t.shadow_digest
        );
    }
}

#[tokio::test]
async fn a_rebuild_while_writers_append_and_queries_read_swaps_atomically_to_identical_tables() {
    let db = TestDatabase::create().await;
    let store = store(&db);
    let seed_tenant = Uuid::now_v7();
    let seeded = random_history(&store, seed_tenant, 300, 4_000, 21).await as i64;

    // The live runners of every projection follow the log throughout.
    let mut live = Vec::new();
    for projector in registry() {
        let runner = Runner::shared(store.clone(), db.pool.clone(), projector, settings(100));
        let url = db.url.clone();
        live.push(tokio::spawn(async move { runner.run(&url).await }));
    }
    for projector in registry() {
        wait_for_head(&db, &store, projector.name()).await;
    }

    // Queries: the seeded tenant's resources never change after seeding, so every answer,
    // before, during and after the swap, must be exactly `seeded` rows — never an error,
    // never an empty or half-built table.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (pool, stop, answered) = (db.pool.clone(), stop.clone(), answered.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM rm_resources.resources WHERE tenant_id = $1")
                        .bind(seed_tenant)
                        .fetch_one(&pool)
                        .await
                        .expect("the live tables answer throughout");
                assert_eq!(n, seeded, "a query saw a partial table");
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Eight writers append while the rebuild runs.
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let store = store.clone();
        writers.push(tokio::spawn(
            async move { random_history(&store, Uuid::now_v7(), 40, 250, 100 + w).await },
        ));
    }

    let shape = physical_shape(&db).await;
    assert!(shape.iter().any(|(name, _)| name == "resources_tags_idx"), "{shape:?}");
    let mut reports = Vec::new();
    for projector in registry() {
        reports.push(rebuild(&db, &store, projector).run(false, |_| {}).await.expect("rebuilt and swapped"));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(answered.load(Ordering::Relaxed) > 10, "queries ran throughout");
    assert_eq!(
        physical_shape(&db).await,
        shape,
        "the rebuilt tables have the live tables' indexes and options"
    );
    for report in &reports {
        // With the live runner following, the swap compares both at the same position.
        assert_identical(report);
        assert!(report.events > 0);
    }
    // After the swap the live runners carry on in the new tables: once the writers are done
    // and they caught up, a second rebuild finds nothing different.
    for projector in registry() {
        wait_for_head(&db, &store, projector.name()).await;
        let again = rebuild(&db, &store, projector).run(true, |_| {}).await.unwrap();
        assert_identical(&again);
    }
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE '%\\_\\_shadow' OR nspname LIKE '%\\_\\_retired'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, Vec::<String>::new(), "no shadow or retired schema is left");
    for task in live {
        assert!(!task.is_finished(), "the live runners kept running");
        task.abort();
    }
    db.drop_database().await;
}

#[tokio::test]
async fn an_interrupted_rebuild_resumes_from_its_shadow_checkpoint() {
    let db = TestDatabase::create().await;
    let store = store(&db);
    random_history(&store, Uuid::now_v7(), 400, 5_000, 31).await;
    let projector: Arc<dyn Projector> = registry().into_iter().find(|p| p.name() == "resources").unwrap();
    Runner::shared(store.clone(), db.pool.clone(), projector.clone(), settings(500))
        .run_until_caught_up()
        .await
        .unwrap();

    interrupt_once_checkpointed(&db, rebuild(&db, &store, projector.clone()), "resources@shadow").await;
    let left = status::checkpoint(&db.pool, "resources@shadow").await.unwrap();
    assert!(left.is_some());
    let shown = status::statuses(&db.pool, &["resources"]).await.unwrap();
    assert!(shown.iter().any(|s| s.projection == "resources@shadow"), "status shows the unfinished shadow");

    let report = rebuild(&db, &store, projector).run(false, |_| {}).await.unwrap();
    assert_eq!(report.resumed_from, left.map(|p| p.token()), "resumed where it stopped");
    assert_identical(&report);
    assert!(status::checkpoint(&db.pool, "resources@shadow").await.unwrap().is_none());
    db.drop_database().await;
}

/// `rebuild --all`: both projections from one shared read of the log, each from its own
/// start — compliance resumes an interrupted shadow while resources starts from zero — and
/// each ends identical to its live tables at the same position.
#[tokio::test]
async fn rebuilding_all_shares_one_read_and_resumes_each_from_its_own_checkpoint() {
    let db = TestDatabase::create().await;
    let store = store(&db);
    mixed_history(&store, Uuid::now_v7(), 120, 8, 4_000, 47).await;
    for projector in registry() {
        Runner::shared(store.clone(), db.pool.clone(), projector, settings(500))
            .run_until_caught_up()
            .await
            .unwrap();
    }
    let compliance: Arc<dyn Projector> = registry().into_iter().find(|p| p.name() == "compliance").unwrap();
    interrupt_once_checkpointed(&db, rebuild(&db, &store, compliance), "compliance@shadow").await;
    let left = status::checkpoint(&db.pool, "compliance@shadow").await.unwrap();
    assert!(left < store.head().await.unwrap(), "interrupted before the end of the log");

    let progress = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen = progress.clone();
    let rebuilds = registry().into_iter().map(|p| rebuild(&db, &store, p)).collect();
    let outcomes = rebuild_all(
        rebuilds,
        false,
        Arc::new(move |name, _| {
            seen.lock().unwrap().insert(name);
        }),
    )
    .await;
    let reports: Vec<RebuildReport> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!(reports.iter().map(|r| r.projection).collect::<Vec<_>>(), ["resources", "compliance"]);
    assert_eq!(reports[0].resumed_from, None);
    assert_eq!(reports[1].resumed_from, left.map(|p| p.token()), "compliance resumed where it stopped");
    for report in &reports {
        assert_identical(report);
        assert_eq!(report.position, store.head().await.unwrap().map(|p| p.token()));
    }
    assert_eq!(
        *progress.lock().unwrap(),
        ["compliance", "resources"].into_iter().collect(),
        "progress reported for each"
    );
    for name in ["resources@shadow", "compliance@shadow"] {
        assert!(status::checkpoint(&db.pool, name).await.unwrap().is_none(), "{name} handed over");
    }
    db.drop_database().await;
}
