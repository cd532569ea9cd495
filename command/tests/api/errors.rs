use serde_json::json;

use crate::helpers::{TestApp, allowed_locations, storage};

#[tokio::test]
async fn a_request_without_a_valid_key_is_401_problem_json() {
    let app = TestApp::spawn().await;
    let record = storage("st1", "westeurope", json!({}));
    let url = format!("{}/v1/resources", app.base);
    let none = app.send(app.client.post(&url).json(&record)).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.content_type(), "application/problem+json");
    let malformed = app.send(app.client.post(&url).bearer_auth("not-a-key").json(&record)).await;
    assert_eq!(malformed.status, 401);
    let forged = format!("{}0", &app.api_key[..app.api_key.len() - 1]);
    let forged =
        if forged == app.api_key { format!("{}1", &app.api_key[..app.api_key.len() - 1]) } else { forged };
    assert_eq!(app.send(app.client.post(&url).bearer_auth(forged).json(&record)).await.status, 401);
    assert_eq!(app.total_events().await, 0);
    app.db.drop_database().await;
}

#[tokio::test]
async fn another_tenants_resources_and_policies_answer_404_and_stay_unchanged() {
    let app = TestApp::spawn().await;
    let resource = app.register_storage("st1").await;
    let policy = app.create_policy().await;
    let other = app.other_tenant_key().await;
    let as_other = |method: reqwest::Method, path: &str| {
        app.client.request(method, format!("{}{path}", app.base)).bearer_auth(&other)
    };
    let before = app.total_events().await;
    for (method, path, body) in [
        (reqwest::Method::DELETE, format!("/v1/resources/{resource}"), None),
        (reqwest::Method::PUT, format!("/v1/policies/{policy}"), Some(allowed_locations(&["eastus"]))),
        (reqwest::Method::POST, format!("/v1/policies/{policy}/disable"), None),
        (reqwest::Method::DELETE, format!("/v1/policies/{policy}"), None),
        (
            reqwest::Method::POST,
            format!("/v1/policies/{policy}/exemptions"),
            Some(json!({"resource_id": resource, "reason": "x"})),
        ),
        (
            reqwest::Method::POST,
            "/v1/evaluations".to_owned(),
            Some(
                json!({"resource_id": resource, "policy_id": policy, "state": "compliant", "source": "scanner"}),
            ),
        ),
    ] {
        let mut request = as_other(method.clone(), &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = app.send(request).await;
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
    }
    // The same cloud resource registered by the other tenant is that tenant's own resource.
    let theirs = app
        .send(as_other(reqwest::Method::POST, "/v1/resources").json(&storage("st1", "westeurope", json!({}))))
        .await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.body["resource_id"], resource.to_string());
    assert_eq!(app.total_events().await, before + 1);
    app.db.drop_database().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_fault() {
    let app = TestApp::spawn().await;
    let not_json = app
        .send(
            app.request(reqwest::Method::POST, "/v1/resources")
                .header("content-type", "application/json")
                .body("{\"id\": "),
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert!(not_json.body["detail"].as_str().unwrap().contains("not valid JSON"), "{}", not_json.body);
    let mut unknown = storage("st1", "westeurope", json!({}));
    unknown["owner"] = json!("me");
    let answer = app.post("/v1/resources", &unknown).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.pointers(), ["/owner"]);
    let bad_tag = app.post("/v1/resources", &storage("st1", "westeurope", json!({"env": 3}))).await;
    assert_eq!(bad_tag.pointers(), ["/tags/env"]);
    let bad_severity =
        app.post("/v1/policies", &json!({"name": "x", "severity": "urgent", "rule": {}})).await;
    assert_eq!(bad_severity.status, 400);
    assert_eq!(bad_severity.pointers(), ["/severity"]);
    let bad_path = app.delete("/v1/resources/not-a-uuid").await;
    assert_eq!(bad_path.status, 400);
    assert_eq!(app.total_events().await, 0);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_and_one_over_1_mib_is_413() {
    let app = TestApp::spawn().await;
    let text = app
        .send(
            app.request(reqwest::Method::POST, "/v1/resources")
                .header("content-type", "text/plain")
                .body("hello"),
        )
        .await;
    assert_eq!(text.status, 415);
    assert_eq!(text.content_type(), "application/problem+json");
    let mut big = storage("st1", "westeurope", json!({}));
    big["properties"]["blob"] = json!("x".repeat(1024 * 1024 + 1));
    let answer = app.post("/v1/resources", &big).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.content_type(), "application/problem+json");
    let keyed = app
        .send(
            app.request(reqwest::Method::POST, "/v1/resources").header("idempotency-key", "big-1").json(&big),
        )
        .await;
    assert_eq!(keyed.status, 413);
    assert_eq!(app.total_events().await, 0);
    app.db.drop_database().await;
}

#[tokio::test]
async fn an_unknown_route_is_404_problem_json() {
    let app = TestApp::spawn().await;
    let answer = app.send(app.request(reqwest::Method::GET, "/v1/nothing-here")).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.content_type(), "application/problem+json");
    app.db.drop_database().await;
}

#[tokio::test]
async fn requests_over_the_rate_limit_are_429_with_retry_after() {
    let app = TestApp::spawn_with_limit(1, 2).await;
    let record = storage("st1", "westeurope", json!({}));
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let answer = app.post("/v1/resources", &record).await;
        if answer.status == 429 {
            retry_after =
                answer.headers.get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            assert_eq!(answer.content_type(), "application/problem+json");
        }
        statuses.push(answer.status);
    }
    assert_eq!(&statuses[..2], [201, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    // Another key has its own allowance.
    let other = app.other_tenant_key().await;
    let theirs = app
        .send(app.client.post(format!("{}/v1/resources", app.base)).bearer_auth(other).json(&record))
        .await;
    assert_eq!(theirs.status, 201);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_database_that_is_down_is_503_with_retry_after() {
    let app = TestApp::spawn().await;
    app.register_storage("st1").await;
    app.db.pool.close().await;
    let answer = app.post("/v1/resources", &storage("st2", "westeurope", json!({}))).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(answer.content_type(), "application/problem+json");
    app.db.drop_database().await;
}
