//! Paging while others write: no item twice, none skipped that existed throughout.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use cortex_projections::{ComplianceProjector, ResourcesProjector, Runner, RunnerSettings};
use serde_json::json;

use crate::helpers::{STORAGE, TestApp, record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_under_concurrent_registrations_and_deletions_never_repeats_or_skips_a_stable_resource() {
    let app = Arc::new(TestApp::spawn().await);
    let mut stable = HashSet::new();
    for i in 0..60 {
        let id = app
            .register(&record("sub-1", "rg", STORAGE, &format!("stable{i}"), "westeurope", json!({})))
            .await;
        stable.insert(id.to_string());
    }
    let mut churn = Vec::new();
    for i in 0..30 {
        churn.push(
            app.register(&record("sub-1", "rg", STORAGE, &format!("churn{i}"), "westeurope", json!({})))
                .await,
        );
    }
    app.project().await;

    // The projectors follow the log live while the writers write and the reader reads.
    let settings = RunnerSettings { batch_size: 8, ..RunnerSettings::default() };
    let mut runners = Vec::new();
    for runner in [
        Box::pin({
            let r = Runner::new(app.store.clone(), app.db.pool.clone(), ResourcesProjector, settings);
            async move { r.follow_live().await }
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>,
        Box::pin({
            let r = Runner::new(app.store.clone(), app.db.pool.clone(), ComplianceProjector, settings);
            async move { r.follow_live().await }
        }),
    ] {
        runners.push(tokio::spawn(runner));
    }

    let done = Arc::new(AtomicBool::new(false));
    // How many writes are done, for the reader to wait on.
    let (writes_tx, writes) = tokio::sync::watch::channel(0usize);
    let writes_tx = Arc::new(writes_tx);
    let mut writers = Vec::new();
    for w in 0..2 {
        let (app, done, writes) = (app.clone(), done.clone(), writes_tx.clone());
        let mut churn: Vec<_> = churn.iter().skip(w).step_by(2).copied().collect();
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                // New resources land anywhere in id order (ids are name-derived UUIDv5s).
                app.register(&record(
                    "sub-1",
                    "rg",
                    STORAGE,
                    &format!("new{w}-{n}"),
                    "westeurope",
                    json!({}),
                ))
                .await;
                if let Some(id) = churn.pop() {
                    assert_eq!(app.delete(&format!("/v1/resources/{id}")).await.status, 200);
                }
                n += 1;
                writes.send_modify(|n| *n += 1);
            }
        }));
    }

    let mut seen: Vec<String> = Vec::new();
    let mut path = "/v1/resources?limit=7".to_owned();
    loop {
        // Writes land between every two pages: wait for progress, not for time.
        let before = *writes.borrow();
        writes.clone().wait_for(|n| *n >= before + 2).await.unwrap();
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(page.ids("resource_id"));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/resources?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    done.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    for runner in runners {
        runner.abort();
    }

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item was listed twice");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "pages follow one order");
    let missing: Vec<_> = stable.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "resources that existed throughout were skipped: {missing:?}");
    assert!(*writes.borrow() >= 2 * seen.len().div_ceil(7), "the writers wrote while the reader paged");
    match Arc::try_unwrap(app) {
        Ok(app) => app.drop().await,
        Err(_) => panic!("the app is still shared"),
    }
}
