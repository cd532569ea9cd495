//! Projections as an operator runs them: `cortex serve` keeps the read models up to date,
//! `cortex projections status|list|rebuild` report and rebuild them while it serves, and a
//! second process started with `--only projections` takes over when the first dies.

mod common;

use std::{sync::Arc, time::Duration};

use common::{cortex, eventually, json, serve, status_of, wait_until_up};

use cortex_events::{
    Catalog, DomainEvent, EventStore, ExpectedRevision, Provenance, StreamName, catalog as ev,
    postgres::PostgresEventStore, testing::TestDatabase,
};
use uuid::Uuid;

async fn resources(db: &TestDatabase) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rm_resources.resources").fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn serve_projects_what_the_api_accepts_and_a_rebuild_swaps_while_it_serves() {
    let db = TestDatabase::create().await;
    let key = json(cortex(&db).args(["tenants", "create", "acme"]).output().unwrap())["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut server, base) = serve(&db, &[]);
    wait_until_up(&base).await;
    let client = reqwest::Client::new();
    for n in 0..20 {
        let record = serde_json::json!({
            "id": format!("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st{n}"),
            "name": format!("st{n}"), "type": "Microsoft.Storage/storageAccounts", "location": "westeurope"
        });
        let answer =
            client.post(format!("{base}/v1/resources")).bearer_auth(&key).json(&record).send().await.unwrap();
        assert_eq!(answer.status(), 201);
    }
    eventually("the resources read model", async || resources(&db).await == 20).await;
    eventually("status live with no lag", async || {
        let s = status_of(&db, "resources").await;
        s["state"] == "live" && s["lag"] == 0
    })
    .await;

    let listed = json(cortex(&db).args(["projections", "list", "--json"]).output().unwrap());
    assert!(
        listed.as_array().unwrap().iter().any(|p| p["name"] == "resources" && p["schema"] == "rm_resources")
    );

    let reports = json(cortex(&db).args(["projections", "rebuild", "--all", "--json"]).output().unwrap());
    for report in reports.as_array().unwrap() {
        for table in report["tables"].as_array().unwrap() {
            assert_eq!(table["live_rows"], table["shadow_rows"], "{report}");
            assert_eq!(table["live_digest"], table["shadow_digest"], "{report}");
        }
    }
    // The server's runner goes on in the swapped-in tables.
    let record = serde_json::json!({
        "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/after",
        "name": "after", "type": "Microsoft.Storage/storageAccounts", "location": "westeurope"
    });
    let answer =
        client.post(format!("{base}/v1/resources")).bearer_auth(&key).json(&record).send().await.unwrap();
    assert_eq!(answer.status(), 201);
    eventually("the new resource in the rebuilt tables", async || resources(&db).await == 21).await;

    let unknown = cortex(&db).args(["projections", "rebuild", "nope"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2), "an unknown projection is a usage error");
    let _ = server.kill();
    let _ = server.wait();
    db.drop_database().await;
}

#[tokio::test]
async fn a_projections_only_standby_takes_over_when_the_active_process_dies() {
    let db = TestDatabase::create().await;
    let store: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())));
    let tenant = Uuid::now_v7();
    let register = async |n: u32| {
        let id = Uuid::new_v5(&tenant, format!("r{n}").as_bytes());
        let event: DomainEvent = ev::ResourceRegistered {
            resource_id: id,
            cloud_id: format!("/subscriptions/s1/resourceGroups/rg/providers/X/y/r{n}"),
            name: format!("r{n}"),
            resource_type: "X/y".into(),
            location: "westeurope".into(),
            kind: None,
            tags: Default::default(),
            properties: serde_json::Map::new(),
            subscription_id: "s1".into(),
            resource_group: "rg".into(),
        }
        .into();
        store
            .append(
                &StreamName::resource(id),
                ExpectedRevision::NoStream,
                vec![event.into_new_event(Provenance::system(tenant, "test"))],
            )
            .await
            .unwrap();
    };
    register(0).await;
    let (mut first, base) = serve(&db, &["--only", "projections"]);
    wait_until_up(&base).await;
    eventually("the first process to project", async || resources(&db).await == 1).await;
    let first_runner = format!(":{}", first.id());
    assert!(status_of(&db, "resources").await["runner"].as_str().unwrap().ends_with(&first_runner));

    let (mut second, base2) = serve(&db, &["--only", "projections"]);
    wait_until_up(&base2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        status_of(&db, "resources").await["runner"].as_str().unwrap().ends_with(&first_runner),
        "the second stands by"
    );

    first.kill().unwrap();
    first.wait().unwrap();
    for n in 1..10 {
        register(n).await;
    }
    eventually("the standby to take over and project", async || resources(&db).await == 10).await;
    let second_runner = format!(":{}", second.id());
    assert!(status_of(&db, "resources").await["runner"].as_str().unwrap().ends_with(&second_runner));
    let _ = second.kill();
    let _ = second.wait();
    db.drop_database().await;
}
