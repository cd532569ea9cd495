//! Concurrent commands on one aggregate never lose an update: each applies (and its events
//! are in the stream) or answers a clear conflict.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{TestApp, allowed_locations, storage};

#[tokio::test]
async fn concurrent_updates_of_one_resource_each_apply_in_their_own_revision() {
    let app = TestApp::spawn().await;
    let id = app.register_storage("st1").await;
    let bodies: Vec<_> =
        (0..24).map(|i| storage("st1", "westeurope", json!({"writer": i.to_string()}))).collect();
    let answers = futures::future::join_all(bodies.iter().map(|body| app.post("/v1/resources", body))).await;
    let mut revisions = HashSet::new();
    for a in &answers {
        match a.status {
            200 => {
                assert_eq!(a.body["changed"], true, "every body differs from the state before it");
                assert!(
                    revisions.insert(a.body["revision"].as_u64().unwrap()),
                    "two answers claim one revision"
                );
            }
            409 => assert_eq!(a.content_type(), "application/problem+json"),
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    let events = app.events_in(&format!("resource-{id}")).await;
    assert_eq!(events as usize, 1 + revisions.len(), "every applied update is in the stream, nothing else");
    app.db.drop_database().await;
}

#[tokio::test]
async fn concurrent_conditional_puts_of_one_policy_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let id = app.create_policy().await;
    let regions = [
        "eastus",
        "eastus2",
        "westus",
        "northeurope",
        "uksouth",
        "francecentral",
        "japaneast",
        "brazilsouth",
    ];
    let answers = futures::future::join_all(regions.iter().map(|r| {
        app.send(
            app.request(reqwest::Method::PUT, &format!("/v1/policies/{id}"))
                .header("if-match", "\"0\"")
                .json(&allowed_locations(&[r])),
        )
    }))
    .await;
    let won = answers.iter().filter(|a| a.status == 200).count();
    let stale = answers.iter().filter(|a| a.status == 412).count();
    assert_eq!((won, stale), (1, regions.len() - 1));
    assert_eq!(app.events_in(&format!("policy-{id}")).await, 2);
    app.db.drop_database().await;
}
