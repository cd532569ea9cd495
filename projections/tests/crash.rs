//! Crash safety: every projection, stopped abruptly at many points during a 50,000-event
//! projection of a mixed log and restarted, ends with exactly the tables a clean rebuild
//! builds.

mod common;

use std::time::Duration;

use common::{mixed_histories, settings, store};
use cortex_events::testing::TestDatabase;
use cortex_projections::{Notifier, Runner, rebuild::Rebuild, registry, status};
use rand::{Rng, SeedableRng, rngs::StdRng};

#[tokio::test]
async fn runners_stopped_at_any_point_and_restarted_equal_a_clean_rebuild() {
    let db = TestDatabase::create().await;
    let store = store(&db);
    mixed_histories(&store, 8, 50_000, 40).await;
    let head = store.head().await.unwrap();

    // Abort every runner task at random moments (between any two awaits: inside a batch,
    // between apply and commit, after commit before the notice…) spread over the whole
    // projection, then start them again from their checkpoints.
    let mut rng = StdRng::seed_from_u64(41);
    let mut stopped_at = std::collections::BTreeSet::new();
    for _ in 0..25 {
        let before: Vec<_> = {
            let mut v = Vec::new();
            for projector in registry() {
                v.push(status::checkpoint(&db.pool, projector.name()).await.unwrap());
            }
            v
        };
        let mut tasks = Vec::new();
        for projector in registry() {
            let r =
                Runner::shared(store.clone(), db.pool.clone(), projector, settings(rng.random_range(1..400)));
            let url = db.url.clone();
            tasks.push(tokio::spawn(async move { r.run(&url).await }));
        }
        // Once some runner has committed in this round (however loaded the machine), let
        // them work a random while longer, then stop them all wherever they are.
        for _ in 0..3000 {
            let mut now = Vec::new();
            for projector in registry() {
                now.push(status::checkpoint(&db.pool, projector.name()).await.unwrap());
            }
            if now != before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..40_000))).await;
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        for projector in registry() {
            if let Some(at) =
                status::checkpoint(&db.pool, projector.name()).await.unwrap().filter(|p| Some(*p) < head)
            {
                stopped_at.insert((projector.name(), at));
            }
        }
    }
    // The test means something only if the runners were stopped inside the projection, at
    // many different places.
    for projector in registry() {
        let places = stopped_at.iter().filter(|(n, _)| *n == projector.name()).count();
        assert!(places >= 5, "{} was stopped mid-log at only {places} places", projector.name());
        Runner::shared(store.clone(), db.pool.clone(), projector, settings(97))
            .run_until_caught_up()
            .await
            .unwrap();
    }

    for projector in registry() {
        let name = projector.name();
        assert_eq!(status::checkpoint(&db.pool, name).await.unwrap(), head, "{name} reached the head");
        let report =
            Rebuild::new(store.clone(), db.pool.clone(), &db.url, projector, settings(500), Notifier::Off)
                .run(true, |_| {})
                .await
                .unwrap();
        assert!(report.compared_at_same_position);
        for t in &report.tables {
            assert!(t.live_rows > 0, "{name}.{} is not empty", t.table);
            assert!(
                !t.differs(),
                "{name}.{}: resumed {} rows, clean {} rows",
                t.table,
                t.live_rows,
                t.shadow_rows
            );
        }
    }
    db.drop_database().await;
}
