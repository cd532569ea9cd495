use serde_json::json;

use crate::helpers::{TestApp, allowed_locations, storage};

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_first_answer_without_appending() {
    let app = TestApp::spawn().await;
    let send = || {
        app.send(
            app.request(reqwest::Method::POST, "/v1/policies")
                .header("idempotency-key", "create-1")
                .json(&allowed_locations(&["westeurope"])),
        )
    };
    let first = send().await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = send().await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the very same policy id and position");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.total_events().await, 1);
    app.db.drop_database().await;
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = TestApp::spawn().await;
    let post = |name: &str| {
        app.send(
            app.request(reqwest::Method::POST, "/v1/resources")
                .header("idempotency-key", "k")
                .json(&storage(name, "westeurope", json!({}))),
        )
    };
    assert_eq!(post("st1").await.status, 201);
    let other = post("st2").await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(other.content_type(), "application/problem+json");
    assert_eq!(app.total_events().await, 1);
    app.db.drop_database().await;
}

#[tokio::test]
async fn keys_are_scoped_to_their_tenant() {
    let app = TestApp::spawn().await;
    let record = storage("st1", "westeurope", json!({}));
    let mine = app
        .send(
            app.request(reqwest::Method::POST, "/v1/resources")
                .header("idempotency-key", "shared")
                .json(&record),
        )
        .await;
    let other = app.other_tenant_key().await;
    let theirs = app
        .send(
            app.client
                .post(format!("{}/v1/resources", app.base))
                .bearer_auth(other)
                .header("idempotency-key", "shared")
                .json(&record),
        )
        .await;
    assert_eq!((mine.status, theirs.status), (201, 201));
    assert_ne!(mine.body["resource_id"], theirs.body["resource_id"]);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_client_error_is_replayed_too() {
    let app = TestApp::spawn().await;
    let send = || {
        app.send(
            app.request(reqwest::Method::DELETE, &format!("/v1/resources/{}", uuid::Uuid::nil()))
                .header("idempotency-key", "d"),
        )
    };
    assert_eq!(send().await.status, 404);
    let again = send().await;
    assert_eq!(again.status, 404);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    app.db.drop_database().await;
}
