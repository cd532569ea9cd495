use serde_json::json;

use crate::helpers::{STORAGE, TestApp, record};

#[tokio::test]
async fn another_tenants_data_is_404_and_never_listed_or_counted() {
    let app = TestApp::spawn().await;
    let other = app.other_tenant_key().await;
    let mine =
        app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"env": "prod"}))).await;
    // The same cloud resource in the other tenant is another resource.
    let theirs = app
        .register_as(&other, &record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"env": "prod"})))
        .await;
    assert_ne!(mine, theirs);
    let their_policy = {
        let answer =
            app.post_as(&other, "/v1/policies", &crate::helpers::allowed_locations("theirs", &["x"])).await;
        answer.body["policy_id"].as_str().unwrap().to_owned()
    };
    let body = json!({"resource_id": theirs, "policy_id": their_policy, "state": "non_compliant", "source": "scanner"});
    assert_eq!(app.post_as(&other, "/v1/evaluations", &body).await.status, 201);
    app.project().await;

    for path in [
        format!("/v1/resources/{theirs}"),
        format!("/v1/resources/{theirs}/history"),
        format!("/v1/policies/{their_policy}"),
    ] {
        let answer = app.get(&path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert_eq!(app.get_as(&other, &path).await.status, 200, "{path} is theirs");
    }
    assert_eq!(app.get("/v1/resources?tag=env:prod").await.ids("resource_id"), [mine.to_string()]);
    assert_eq!(
        app.get("/v1/resources?compliance=non_compliant").await.ids("resource_id"),
        Vec::<String>::new()
    );
    assert!(app.get("/v1/policies").await.ids("policy_id").is_empty());
    let summary = app.get("/v1/compliance/summary?group_by=policy").await;
    assert_eq!((summary.body["total"].clone(), summary.body["groups"].clone()), (json!(0), json!([])));
    assert_eq!(app.get_as(&other, "/v1/compliance/summary").await.body["non_compliant"], 1);

    // A cursor is bound to its tenant too.
    for i in 0..3 {
        app.register_as(&other, &record("sub-1", "rg", STORAGE, &format!("x{i}"), "westeurope", json!({})))
            .await;
    }
    app.project().await;
    let cursor =
        app.get_as(&other, "/v1/resources?limit=1").await.body["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/v1/resources?limit=1&cursor={cursor}")).await.pointers(), ["/cursor"]);

    let anonymous = app.send(app.client.get(format!("{}/v1/resources", app.base))).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(app.get_as("cx_nope", "/v1/resources").await.status, 401);
    app.drop().await;
}
