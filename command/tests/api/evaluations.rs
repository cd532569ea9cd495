use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_scanner_result_is_recorded_once_and_repeated_results_change_nothing() {
    let app = TestApp::spawn().await;
    let resource = app.register_storage("st1").await;
    let policy = app.create_policy().await;
    let body = json!({"resource_id": resource, "policy_id": policy, "state": "non_compliant", "reason": "public blob access", "source": "defender"});
    let first = app.post("/v1/evaluations", &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.body["position"].is_string());
    let again = app.post("/v1/evaluations", &body).await;
    assert_eq!((again.status, again.body["changed"].clone()), (200, json!(false)));
    assert_eq!(app.events_in(&format!("compliance-{resource}")).await, 1);
    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT data::jsonb FROM es_events WHERE stream_name = $1")
            .bind(format!("compliance-{resource}"))
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored["source"], "defender");
    assert_eq!(stored["resource_revision"], 0);
    assert_eq!(stored["results"][0]["policy_revision"], 0);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_result_for_an_unknown_resource_or_policy_is_404_and_the_reserved_source_400() {
    let app = TestApp::spawn().await;
    let resource = app.register_storage("st1").await;
    let policy = app.create_policy().await;
    let unknown = uuid::Uuid::now_v7();
    for (r, p) in [(unknown, policy), (resource, unknown)] {
        let body = json!({"resource_id": r, "policy_id": p, "state": "compliant", "source": "defender"});
        assert_eq!(app.post("/v1/evaluations", &body).await.status, 404);
    }
    let reserved =
        json!({"resource_id": resource, "policy_id": policy, "state": "compliant", "source": "PolicyCortex"});
    let answer = app.post("/v1/evaluations", &reserved).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.pointers(), ["/source"]);
    let bad_state =
        json!({"resource_id": resource, "policy_id": policy, "state": "fine", "source": "defender"});
    assert_eq!(app.post("/v1/evaluations", &bad_state).await.pointers(), ["/state"]);
    app.db.drop_database().await;
}
