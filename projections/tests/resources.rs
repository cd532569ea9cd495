//! The resources read model: projected rows equal the log, and a runner stopped at any point
//! and restarted ends with exactly what a clean rebuild gives.

use std::{sync::Arc, time::Duration};

mod common;

use common::random_history;
use cortex_events::{Catalog, EventStore, postgres::PostgresEventStore, testing::TestDatabase};
use cortex_projections::{ResourcesProjector, Runner, RunnerSettings};
use uuid::Uuid;

async fn digest(db: &TestDatabase) -> (i64, String) {
    sqlx::query_as(
        "SELECT count(*), coalesce(md5(string_agg(r::text, '|' ORDER BY tenant_id, resource_id)), '') \
         FROM rm_resources.resources r",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

fn runner(db: &TestDatabase, store: &Arc<dyn EventStore>, batch_size: usize) -> Runner<ResourcesProjector> {
    let settings = RunnerSettings {
        batch_size,
        batch_wait: Duration::from_millis(5),
        standby_poll: Duration::from_millis(50),
        ..RunnerSettings::default()
    };
    Runner::new(store.clone(), db.pool.clone(), ResourcesProjector, settings)
}

#[tokio::test]
async fn projected_rows_follow_the_log() {
    let db = TestDatabase::create().await;
    let store: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())));
    let tenant = Uuid::now_v7();
    let registered = random_history(&store, tenant, 50, 600, 1).await;
    runner(&db, &store, 64).run_until_caught_up().await.unwrap();
    let (rows, _) = digest(&db).await;
    assert_eq!(rows as usize, registered);
    let head = store.head().await.unwrap();
    assert_eq!(runner(&db, &store, 64).checkpoint().await.unwrap(), head, "the checkpoint is the log's head");
    db.drop_database().await;
}

#[tokio::test]
async fn a_standby_takes_over_when_the_active_runner_dies() {
    let db = TestDatabase::create().await;
    let store: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())));
    let tenant = Uuid::now_v7();
    random_history(&store, tenant, 50, 500, 4).await;

    let (a, b) = (runner(&db, &store, 50), runner(&db, &store, 50));
    let (url_a, url_b) = (db.url.clone(), db.url.clone());
    let active = tokio::spawn(async move { a.run(&url_a).await });
    // Let the first runner become active and catch up.
    let head = store.head().await.unwrap();
    wait_for_checkpoint(&db, &store, head).await;
    let standby = tokio::spawn(async move { b.run(&url_b).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!standby.is_finished(), "the standby waits");

    active.abort();
    let _ = active.await;
    // More events after the active runner died: only the standby can project them.
    random_history(&store, Uuid::now_v7(), 80, 300, 5).await;
    let head = store.head().await.unwrap();
    wait_for_checkpoint(&db, &store, head).await;
    standby.abort();

    let resumed = digest(&db).await;
    sqlx::query("TRUNCATE rm_resources.resources").execute(&db.pool).await.unwrap();
    sqlx::query("DELETE FROM projection_checkpoints").execute(&db.pool).await.unwrap();
    runner(&db, &store, 500).run_until_caught_up().await.unwrap();
    assert_eq!(resumed, digest(&db).await);
    db.drop_database().await;
}

#[tokio::test]
async fn a_runner_whose_checkpoint_was_moved_by_another_stops_instead_of_applying_twice() {
    let db = TestDatabase::create().await;
    let store: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())));
    let tenant = Uuid::now_v7();
    random_history(&store, tenant, 10, 50, 6).await;
    runner(&db, &store, 500).run_until_caught_up().await.unwrap();
    // A runner that read the checkpoint, then lost the race to another that moved it.
    let stale = runner(&db, &store, 500);
    let task = tokio::spawn(async move { stale.follow_live().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("UPDATE projection_checkpoints SET position_minor = position_minor + 1000000")
        .execute(&db.pool)
        .await
        .unwrap();
    random_history(&store, Uuid::now_v7(), 10, 20, 7).await;
    let result =
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("the runner stops").unwrap();
    assert!(matches!(result, Err(cortex_projections::RunnerError::Superseded { .. })), "{result:?}");
    db.drop_database().await;
}

async fn wait_for_checkpoint(
    db: &TestDatabase,
    store: &Arc<dyn EventStore>,
    head: Option<cortex_events::Position>,
) {
    let probe = runner(db, store, 1);
    for _ in 0..600 {
        if probe.checkpoint().await.unwrap() >= head {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the projection did not reach {head:?}");
}
