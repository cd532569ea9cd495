//! Every parameter, malformed, answers 400 naming it; a database that is down answers 503.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use cortex_command::{
    api::{Auth, RateLimit},
    tenants::{KeyRing, create_tenant},
};
use cortex_events::{Catalog, EventStore, postgres::PostgresEventStore};
use cortex_query::{QueryState, Reads};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{STORAGE, TestApp, record};

#[tokio::test]
async fn a_malformed_value_of_each_parameter_is_a_400_problem_naming_it() {
    let app = TestApp::spawn().await;
    let id = app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({}))).await;
    let policy = app.create_policy("one").await;
    for i in 0..2 {
        app.register(&record("sub-1", "rg", STORAGE, &format!("x{i}"), "westeurope", json!({}))).await;
    }
    app.project().await;
    let cursor = app.get("/v1/resources?limit=1").await.body["next_cursor"].as_str().unwrap().to_owned();
    let long = "a".repeat(513);

    let cases: Vec<(String, Vec<&str>)> = vec![
        ("/v1/resources?subscription_id=".into(), vec!["/subscription_id"]),
        (format!("/v1/resources?subscription_id={long}"), vec!["/subscription_id"]),
        ("/v1/resources?resource_group=".into(), vec!["/resource_group"]),
        ("/v1/resources?type=".into(), vec!["/type"]),
        ("/v1/resources?type=a%00b".into(), vec!["/type"]),
        ("/v1/resources?location=".into(), vec!["/location"]),
        ("/v1/resources?tag=".into(), vec!["/tag/0"]),
        ("/v1/resources?tag=env&tag=:prod".into(), vec!["/tag/1"]),
        ("/v1/resources?q=".into(), vec!["/q"]),
        ("/v1/resources?q=-%20-".into(), vec!["/q"]),
        ("/v1/resources?compliance=green".into(), vec!["/compliance"]),
        ("/v1/resources?compliance=Compliant".into(), vec!["/compliance"]),
        ("/v1/resources?limit=0".into(), vec!["/limit"]),
        ("/v1/resources?limit=501".into(), vec!["/limit"]),
        ("/v1/resources?limit=ten".into(), vec!["/limit"]),
        ("/v1/resources?limit=1&limit=2".into(), vec!["/limit"]),
        ("/v1/resources?cursor=".into(), vec!["/cursor"]),
        ("/v1/resources?cursor=not-a-cursor!".into(), vec!["/cursor"]),
        ("/v1/resources?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), vec!["/cursor"]),
        // A cursor is bound to its filters.
        (format!("/v1/resources?type=a&cursor={cursor}"), vec!["/cursor"]),
        ("/v1/resources?foo=1".into(), vec!["/foo"]),
        ("/v1/resources?limit=0&compliance=x&bar=".into(), vec!["/bar", "/compliance", "/limit"]),
        ("/v1/resources/not-a-uuid".into(), vec!["/resource_id"]),
        (format!("/v1/resources/{id}?verbose=1"), vec!["/verbose"]),
        ("/v1/resources/not-a-uuid/history".into(), vec!["/resource_id"]),
        (format!("/v1/resources/{id}/history?limit=0"), vec!["/limit"]),
        (format!("/v1/resources/{id}/history?cursor=x"), vec!["/cursor"]),
        (format!("/v1/resources/{id}/history?cursor={cursor}"), vec!["/cursor"]),
        (format!("/v1/resources/{id}/history?q=a"), vec!["/q"]),
        ("/v1/policies?limit=501".into(), vec!["/limit"]),
        ("/v1/policies?cursor=zzz".into(), vec!["/cursor"]),
        (format!("/v1/policies?cursor={cursor}"), vec!["/cursor"]),
        ("/v1/policies?type=x".into(), vec!["/type"]),
        ("/v1/policies/nope".into(), vec!["/policy_id"]),
        (format!("/v1/policies/{policy}?x=1"), vec!["/x"]),
        ("/v1/compliance/summary?group_by=region".into(), vec!["/group_by"]),
        ("/v1/compliance/summary?group_by=".into(), vec!["/group_by"]),
        ("/v1/compliance/summary?days=3".into(), vec!["/days"]),
        ("/v1/compliance/trend?days=0".into(), vec!["/days"]),
        ("/v1/compliance/trend?days=367".into(), vec!["/days"]),
        ("/v1/compliance/trend?days=1.5".into(), vec!["/days"]),
        ("/v1/compliance/trend?group_by=policy".into(), vec!["/group_by"]),
    ];
    for (path, pointers) in cases {
        let answer = app.get(&path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{path}");
        let mut got = answer.pointers();
        got.sort();
        assert_eq!(got, pointers, "{path}: {}", answer.body);
        assert_eq!(answer.body["status"], 400);
        assert!(answer.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{path}");
    }
    // The bounds themselves are fine.
    for path in [
        "/v1/resources?limit=500",
        "/v1/resources?limit=1",
        "/v1/compliance/trend?days=366",
        "/v1/compliance/trend?days=1",
    ] {
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }
    app.drop().await;
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_is_a_503_with_retry_after() {
    let db = cortex_events::testing::TestDatabase::create().await;
    let tenant = create_tenant(&db.pool, "t").await.unwrap();
    let keys = KeyRing::new(db.pool.clone());
    keys.reload().await.unwrap();
    let limit = NonZeroU32::new(1000).unwrap();
    let auth = Auth::new(keys, RateLimit { per_second: limit, burst: limit });
    // Nothing listens on port 1: every connection attempt fails.
    let down = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
        .unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::new(down.clone(), Arc::new(Catalog::standard().unwrap())));
    let router = cortex_query::router(QueryState::new(Reads::new(down, store), auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let id = Uuid::now_v7();
    for path in [
        "/v1/resources".to_owned(),
        format!("/v1/resources/{id}"),
        format!("/v1/resources/{id}/history"),
        "/v1/policies".to_owned(),
        "/v1/compliance/summary?group_by=policy".to_owned(),
        "/v1/compliance/trend".to_owned(),
    ] {
        let answer = client.get(format!("{base}{path}")).bearer_auth(&tenant.api_key).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 503, "{path}");
        assert!(answer.headers().get("retry-after").is_some(), "{path}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }
    db.drop_database().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_query_routes_beside_the_command_routes() {
    let app = TestApp::spawn().await;
    let doc = app.send(app.client.get(format!("{}/openapi.json", app.base))).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = &doc.body["paths"];
    for (path, method) in [
        ("/v1/resources", "get"),
        ("/v1/resources", "post"),
        ("/v1/resources/{resource_id}", "get"),
        ("/v1/resources/{resource_id}", "delete"),
        ("/v1/resources/{resource_id}/history", "get"),
        ("/v1/policies", "get"),
        ("/v1/policies/{policy_id}", "get"),
        ("/v1/policies/{policy_id}", "put"),
        ("/v1/compliance/summary", "get"),
        ("/v1/compliance/trend", "get"),
        ("/v1/changes", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} is not documented");
    }
    let params: Vec<&str> = paths["/v1/resources"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "subscription_id",
            "resource_group",
            "type",
            "location",
            "tag",
            "q",
            "compliance",
            "limit",
            "cursor",
            "X-Cortex-After"
        ]
    );
    assert!(doc.body["components"]["schemas"]["ResourcePage"].is_object());
    app.drop().await;
}
