use serde_json::json;

use crate::helpers::{TestApp, allowed_locations};

#[tokio::test]
async fn a_policy_is_created_with_201_and_its_revision_as_etag() {
    let app = TestApp::spawn().await;
    let answer = app.post("/v1/policies", &allowed_locations(&["westeurope"])).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["revision"], 0);
    assert_eq!(answer.headers["etag"], "\"0\"");
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_rule_that_does_not_compile_is_refused_with_422_naming_each_fault() {
    let app = TestApp::spawn().await;
    let mut body = allowed_locations(&["westeurope"]);
    body["rule"]["if"]["allOf"][0] = json!({"field": "location", "like": "x", "equals": "y"});
    body["rule"]["if"]["allOf"][1] = json!({"field": "location", "sortOf": "global"});
    let answer = app.post("/v1/policies", &body).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.content_type(), "application/problem+json");
    let pointers = answer.pointers();
    assert!(pointers.iter().any(|p| p.starts_with("/rule/if/allOf/0")), "{pointers:?}");
    assert!(pointers.iter().any(|p| p.starts_with("/rule/if/allOf/1")), "{pointers:?}");
    assert_eq!(app.total_events().await, 0);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_parameter_value_outside_allowed_values_is_refused_with_422() {
    let app = TestApp::spawn().await;
    let mut body = allowed_locations(&["westeurope"]);
    body["parameters"]["listOfAllowedLocations"]["allowedValues"] = json!([["eastus"]]);
    let answer = app.post("/v1/policies", &body).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(
        answer.pointers().iter().any(|p| p.starts_with("/parameter_values") || p.starts_with("/parameters"))
    );
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_put_with_the_current_revision_applies_and_a_stale_one_is_412() {
    let app = TestApp::spawn().await;
    let id = app.create_policy().await;
    let changed = allowed_locations(&["westeurope", "northeurope"]);
    let ok = app
        .send(
            app.request(reqwest::Method::PUT, &format!("/v1/policies/{id}"))
                .header("if-match", "\"0\"")
                .json(&changed),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["revision"], 1);
    let stale = app
        .send(
            app.request(reqwest::Method::PUT, &format!("/v1/policies/{id}"))
                .header("if-match", "\"0\"")
                .json(&allowed_locations(&["eastus"])),
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(app.events_in(&format!("policy-{id}")).await, 2);
    app.db.drop_database().await;
}

#[tokio::test]
async fn a_put_without_changes_answers_changed_false() {
    let app = TestApp::spawn().await;
    let id = app.create_policy().await;
    let same = app.put(&format!("/v1/policies/{id}"), &allowed_locations(&["westeurope"])).await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.body["changed"], false);
    app.db.drop_database().await;
}

#[tokio::test]
async fn enable_disable_and_delete_follow_the_policy_life_cycle() {
    let app = TestApp::spawn().await;
    let id = app.create_policy().await;
    let enable = app.post(&format!("/v1/policies/{id}/enable"), &json!(null)).await;
    assert_eq!((enable.status, enable.body["changed"].clone()), (200, json!(false)));
    let disable = app.post(&format!("/v1/policies/{id}/disable"), &json!(null)).await;
    assert_eq!((disable.status, disable.body["changed"].clone()), (200, json!(true)));
    assert_eq!(app.delete(&format!("/v1/policies/{id}")).await.status, 200);
    assert_eq!(app.delete(&format!("/v1/policies/{id}")).await.status, 404);
    assert_eq!(app.post(&format!("/v1/policies/{id}/enable"), &json!(null)).await.status, 404);
    assert_eq!(app.put(&format!("/v1/policies/{id}"), &allowed_locations(&["eastus"])).await.status, 404);
    app.db.drop_database().await;
}

#[tokio::test]
async fn an_exemption_is_granted_once_per_resource_and_revoked_once() {
    let app = TestApp::spawn().await;
    let policy = app.create_policy().await;
    let resource = app.register_storage("stapp01").await;
    let body =
        json!({"resource_id": resource, "reason": "legacy workload", "expires_at": "2999-01-01T00:00:00Z"});
    let granted = app.post(&format!("/v1/policies/{policy}/exemptions"), &body).await;
    assert_eq!(granted.status, 201, "{}", granted.body);
    let exemption = granted.body["exemption_id"].as_str().unwrap().to_owned();
    let twice = app.post(&format!("/v1/policies/{policy}/exemptions"), &body).await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    let path = format!("/v1/policies/{policy}/exemptions/{exemption}");
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.delete(&path).await.status, 404);
    app.db.drop_database().await;
}

#[tokio::test]
async fn an_exemption_for_an_unknown_resource_or_with_a_past_expiry_is_refused() {
    let app = TestApp::spawn().await;
    let policy = app.create_policy().await;
    let unknown = json!({"resource_id": uuid::Uuid::now_v7(), "reason": "x"});
    assert_eq!(app.post(&format!("/v1/policies/{policy}/exemptions"), &unknown).await.status, 404);
    let resource = app.register_storage("stapp01").await;
    let past = json!({"resource_id": resource, "reason": "x", "expires_at": "2001-01-01T00:00:00Z"});
    let answer = app.post(&format!("/v1/policies/{policy}/exemptions"), &past).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.pointers(), ["/expires_at"]);
    app.db.drop_database().await;
}
