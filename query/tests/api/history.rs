use serde_json::json;
use uuid::Uuid;

use crate::helpers::{STORAGE, TestApp, record};

#[tokio::test]
async fn history_lists_a_resources_events_oldest_first_with_actor_time_and_change() {
    let app = TestApp::spawn().await;
    let id = app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"env": "dev"}))).await;
    app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"env": "prod"}))).await;
    app.delete(&format!("/v1/resources/{id}")).await;

    // History reads the log itself: no projection needed, and a deleted resource keeps it.
    let answer = app.get(&format!("/v1/resources/{id}/history")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let items = answer.body["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|i| i["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ResourceRegistered", "ResourceTagsChanged", "ResourceDeleted"]);
    let revisions: Vec<u64> = items.iter().map(|i| i["revision"].as_u64().unwrap()).collect();
    assert_eq!(revisions, [0, 1, 2]);
    let key_id = app.api_key.split('_').nth(1).unwrap();
    let key_id = Uuid::parse_str(key_id).unwrap();
    for item in items {
        assert_eq!(item["actor"], format!("key:{key_id}"));
        assert!(item["occurred_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(item["position"].as_str().unwrap().len(), 32);
    }
    assert_eq!(items[1]["data"]["tags"], json!({"env": "prod"}));
    assert_eq!(items[1]["data"]["previous_tags"], json!({"env": "dev"}));
    assert_eq!(answer.body["next_cursor"], json!(null));
    app.drop().await;
}

#[tokio::test]
async fn history_pages_with_a_cursor_and_an_unknown_resource_is_404() {
    let app = TestApp::spawn().await;
    let mut id = Uuid::nil();
    for i in 0..5 {
        id = app
            .register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"n": i.to_string()})))
            .await;
    }
    let first = app.get(&format!("/v1/resources/{id}/history?limit=2")).await;
    let mut revisions: Vec<u64> = Vec::new();
    let mut page = first;
    loop {
        revisions
            .extend(page.body["items"].as_array().unwrap().iter().map(|i| i["revision"].as_u64().unwrap()));
        let Some(cursor) = page.body["next_cursor"].as_str() else { break };
        page = app.get(&format!("/v1/resources/{id}/history?limit=2&cursor={cursor}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    assert_eq!(revisions, [0, 1, 2, 3, 4]);
    let cursor = app.get(&format!("/v1/resources/{id}/history?limit=2")).await.body["next_cursor"].clone();
    let other = app.register(&record("sub-1", "rg", STORAGE, "st2", "westeurope", json!({}))).await;
    let misused =
        app.get(&format!("/v1/resources/{other}/history?cursor={}", cursor.as_str().unwrap())).await;
    assert_eq!((misused.status, misused.pointers()), (400, vec!["/cursor".to_owned()]));
    assert_eq!(app.get(&format!("/v1/resources/{}/history", Uuid::now_v7())).await.status, 404);
    app.drop().await;
}
