use serde_json::json;

use crate::helpers::{STORAGE, TestApp, record};

#[tokio::test]
async fn policies_are_listed_in_pages_each_with_its_counts() {
    let app = TestApp::spawn().await;
    let mut resources = Vec::new();
    for i in 0..4 {
        resources.push(
            app.register(&record("sub-1", "rg", STORAGE, &format!("st{i}"), "westeurope", json!({}))).await,
        );
    }
    let mut policies = Vec::new();
    for name in ["one", "two", "three"] {
        policies.push(app.create_policy(name).await);
    }
    app.evaluate(resources[0], policies[0], "compliant").await;
    app.evaluate(resources[1], policies[0], "non_compliant").await;
    app.evaluate(resources[2], policies[0], "exempt").await;
    app.evaluate(resources[3], policies[0], "not_applicable").await;
    app.evaluate(resources[0], policies[1], "non_compliant").await;
    assert_eq!(app.post(&format!("/v1/policies/{}/disable", policies[2]), &json!({})).await.status, 200);
    app.project().await;

    let one = app.get(&format!("/v1/policies/{}", policies[0])).await;
    assert_eq!(one.status, 200, "{}", one.body);
    for (field, value) in [
        ("name", json!("one")),
        ("severity", json!("high")),
        ("mode", json!("all")),
        ("enabled", json!(true)),
        ("compliant", json!(1)),
        ("non_compliant", json!(1)),
        ("exempt", json!(1)),
        ("total", json!(3)),
        ("revision", json!(0)),
    ] {
        assert_eq!(one.body[field], value, "{field}");
    }
    let percentage = one.body["percentage"].as_f64().unwrap();
    assert!((percentage - 2.0 / 3.0).abs() < 1e-9, "(compliant + exempt) / total: {percentage}");
    assert_eq!(one.body["rule"]["then"]["effect"], "deny");
    assert_eq!(one.header("etag"), Some("\"0-1-1-1\""));

    let disabled = app.get(&format!("/v1/policies/{}", policies[2])).await;
    assert_eq!((disabled.body["enabled"].clone(), disabled.body["total"].clone()), (json!(false), json!(0)));
    assert_eq!(disabled.body["percentage"], json!(null));

    // Pages in creation order (policy ids are UUIDv7).
    let first = app.get("/v1/policies?limit=2").await;
    let expected: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
    assert_eq!(first.ids("policy_id"), expected[..2]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/v1/policies?limit=2&cursor={cursor}")).await;
    assert_eq!(second.ids("policy_id"), expected[2..]);
    assert_eq!(second.body["next_cursor"], json!(null));
    // A policy cursor is not a resource cursor.
    assert_eq!(app.get(&format!("/v1/resources?cursor={cursor}")).await.pointers(), ["/cursor"]);

    app.delete(&format!("/v1/policies/{}", policies[1])).await;
    app.project().await;
    assert_eq!(app.get(&format!("/v1/policies/{}", policies[1])).await.status, 404);
    assert_eq!(app.get("/v1/policies").await.ids("policy_id").len(), 2);
    app.drop().await;
}
