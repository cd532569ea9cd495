use cortex_events::StreamName;
use serde_json::json;

use crate::helpers::{TestApp, storage};

#[tokio::test]
async fn a_new_resource_is_created_and_answers_its_id_revision_and_position() {
    let app = TestApp::spawn().await;
    let answer = app.post("/v1/resources", &storage("stapp01", "westeurope", json!({"env": "prod"}))).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["revision"], 0);
    assert_eq!(answer.body["changed"], true);
    assert_eq!(answer.body["position"].as_str().unwrap().len(), 32);
    let expected = cortex_events::resource_id(
        app.tenant_id,
        "/subscriptions/SUB-1/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/STAPP01",
    );
    assert_eq!(answer.body["resource_id"], expected.to_string());
    app.db.drop_database().await;
}

#[tokio::test]
async fn registering_the_same_record_again_changes_nothing_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let record = storage("stapp01", "westeurope", json!({"env": "prod"}));
    let first = app.post("/v1/resources", &record).await;
    let again = app.post("/v1/resources", &record).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["changed"], false);
    assert_eq!(again.body["revision"], 0);
    assert_eq!(again.body["position"], first.body["position"], "unchanged answers the last event's position");
    assert_eq!(app.total_events().await, 1);
    app.db.drop_database().await;
}

#[tokio::test]
async fn an_updated_record_appends_only_the_events_for_what_changed() {
    let app = TestApp::spawn().await;
    let id = app.register_storage("stapp01").await;
    let answer = app.post("/v1/resources", &storage("stapp01", "westeurope", json!({"env": "dev"}))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["changed"], true);
    assert_eq!(answer.body["revision"], 1);
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM es_events WHERE stream_name = $1 ORDER BY stream_revision",
    )
    .bind(StreamName::resource(id).as_str())
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(types, ["ResourceRegistered", "ResourceTagsChanged"]);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_deleted_resource_answers_404_when_deleted_again_and_201_when_registered_again() {
    let app = TestApp::spawn().await;
    let id = app.register_storage("stapp01").await;
    let deleted = app.delete(&format!("/v1/resources/{id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["revision"], 1);
    assert_eq!(app.delete(&format!("/v1/resources/{id}")).await.status, 404);
    let again = app.post("/v1/resources", &storage("stapp01", "westeurope", json!({"env": "prod"}))).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["revision"], 2);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_batch_answers_each_record_and_one_bad_record_does_not_stop_the_others() {
    let app = TestApp::spawn().await;
    let mut bad = storage("stbad", "westeurope", json!({}));
    bad["colour"] = json!("blue");
    let no_group = json!({"id": "/providers/Microsoft.Foo/bars/x", "name": "x", "type": "Microsoft.Foo/bars", "location": "eastus"});
    let body = json!({"resources": [
        storage("st0", "westeurope", json!({})),
        bad,
        storage("st2", "northeurope", json!({"env": "dev"})),
        no_group,
    ]});
    let answer = app.post("/v1/resources:batch", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["index"], 0);
    assert_eq!(results[0]["changed"], true);
    assert_eq!(results[1]["error"]["status"], 400);
    assert_eq!(results[1]["error"]["errors"][0]["pointer"], "/resources/1/colour");
    assert_eq!(results[2]["revision"], 0);
    assert_eq!(results[3]["error"]["status"], 400);
    let pointers: Vec<&str> = results[3]["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(pointers.iter().any(|p| p.starts_with("/resources/3/")), "{pointers:?}");
    assert!(answer.body["position"].is_string());
    assert_eq!(app.total_events().await, 2);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_batch_of_more_than_1000_records_is_refused_whole() {
    let app = TestApp::spawn().await;
    let records: Vec<_> = (0..1001).map(|i| storage(&format!("st{i}"), "westeurope", json!({}))).collect();
    let answer = app.post("/v1/resources:batch", &json!({"resources": records})).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.pointers(), ["/resources"]);
    assert_eq!(app.total_events().await, 0);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_batch_decides_as_its_records_sent_one_by_one_in_order_would() {
    let app = TestApp::spawn().await;
    let existing = app.register_storage("stold").await;
    let body = json!({"resources": [
        storage("stnew", "westeurope", json!({"v": "1"})),
        storage("stold", "westeurope", json!({"env": "prod"})),
        storage("stnew", "westeurope", json!({"v": "2"})),
        storage("stold", "northeurope", json!({"env": "prod"})),
    ]});
    let answer = app.post("/v1/resources:batch", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let r = answer.body["results"].as_array().unwrap();
    assert_eq!((r[0]["revision"].clone(), r[0]["changed"].clone()), (json!(0), json!(true)));
    assert_eq!((r[1]["revision"].clone(), r[1]["changed"].clone()), (json!(0), json!(false)));
    assert_eq!((r[2]["revision"].clone(), r[2]["changed"].clone()), (json!(1), json!(true)));
    assert_eq!((r[3]["revision"].clone(), r[3]["changed"].clone()), (json!(1), json!(true)));
    assert_eq!(r[1]["resource_id"], existing.to_string());
    assert_eq!(r[0]["resource_id"], r[2]["resource_id"]);
    assert_eq!(app.total_events().await, 1 + 2 + 1);
    app.db.drop_database().await;
}
