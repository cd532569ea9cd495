use serde_json::json;
use uuid::Uuid;

use crate::helpers::{STORAGE, TestApp, VM, enc, record};

fn sorted(ids: &[Uuid]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn each_filter_narrows_the_list_and_filters_combine() {
    let app = TestApp::spawn().await;
    let a = app
        .register(&record(
            "sub-1",
            "rg-app",
            STORAGE,
            "st-prod-web01",
            "westeurope",
            json!({"env": "prod", "team": "web"}),
        ))
        .await;
    let b = app
        .register(&record("sub-1", "rg-data", VM, "vm-prod-db01", "West Europe", json!({"env": "prod"})))
        .await;
    let c = app
        .register(&record(
            "Sub-2",
            "rg-app",
            STORAGE,
            "st-dev-web02",
            "eastus",
            json!({"env": "dev", "url": "https://x:1"}),
        ))
        .await;
    let d = app.register(&record("sub-2", "RG-Ops", VM, "vm-ops", "northeurope", json!({}))).await;
    let policy = app.create_policy("locations").await;
    app.evaluate(a, policy, "compliant").await;
    app.evaluate(b, policy, "non_compliant").await;
    app.evaluate(c, policy, "exempt").await;
    app.project().await;

    let cases: Vec<(String, Vec<Uuid>)> = vec![
        ("".into(), vec![a, b, c, d]),
        ("subscription_id=SUB-2".into(), vec![c, d]),
        ("resource_group=rg-ops".into(), vec![d]),
        ("resource_group=rg-app".into(), vec![a, c]),
        ("type=microsoft.compute/VIRTUALMACHINES".into(), vec![b, d]),
        ("location=westeurope".into(), vec![a, b]),
        ("location=West%20Europe".into(), vec![a, b]),
        ("tag=env:prod".into(), vec![a, b]),
        ("tag=env:prod&tag=team:web".into(), vec![a]),
        ("tag=team".into(), vec![a]),
        ("tag=env&tag=url".into(), vec![c]),
        (format!("tag={}", enc("url:https://x:1")), vec![c]),
        ("tag=env:PROD".into(), vec![]),
        ("tag=nope".into(), vec![]),
        ("q=prod".into(), vec![a, b]),
        ("q=WEB".into(), vec![a, c]),
        ("q=prod+web".into(), vec![a]),
        ("q=st-dev".into(), vec![c]),
        ("q=ops".into(), vec![d]),
        ("q=xyz".into(), vec![]),
        ("compliance=compliant".into(), vec![a]),
        ("compliance=non_compliant".into(), vec![b]),
        ("compliance=exempt".into(), vec![c]),
        ("type=Microsoft.Storage/storageAccounts&compliance=exempt&tag=env".into(), vec![c]),
        ("subscription_id=sub-1&q=web&location=westeurope".into(), vec![a]),
    ];
    for (query, expected) in cases {
        let answer = app.get(&format!("/v1/resources?{query}")).await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        assert_eq!(answer.ids("resource_id"), sorted(&expected), "{query}");
        assert_eq!(answer.body["next_cursor"], json!(null), "{query}");
    }
    app.drop().await;
}

#[tokio::test]
async fn a_list_item_shows_the_resource_and_its_overall_state() {
    let app = TestApp::spawn().await;
    let id =
        app.register(&record("sub-1", "rg-app", STORAGE, "st1", "westeurope", json!({"env": "prod"}))).await;
    let (p1, p2) = (app.create_policy("one").await, app.create_policy("two").await);
    app.evaluate(id, p1, "compliant").await;
    app.evaluate(id, p2, "non_compliant").await;
    app.project().await;
    let answer = app.get("/v1/resources").await;
    let item = &answer.body["items"][0];
    assert_eq!(item["resource_id"], json!(id));
    assert_eq!(
        item["id"],
        "/subscriptions/sub-1/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/st1"
    );
    assert_eq!(item["type"], STORAGE);
    assert_eq!(item["tags"], json!({"env": "prod"}));
    assert_eq!(item["subscription_id"], "sub-1");
    assert_eq!(item["revision"], 0);
    assert_eq!(item["compliance_state"], "non_compliant", "non-compliant ranks first");
    assert!(item["registered_at"].as_str().unwrap().ends_with('Z'));
    app.drop().await;
}

#[tokio::test]
async fn limit_sizes_pages_and_the_cursor_walks_them_in_order() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            app.register(&record("sub-1", "rg", STORAGE, &format!("st{i}"), "westeurope", json!({}))).await,
        );
    }
    app.project().await;
    let mut seen = Vec::new();
    let mut path = "/v1/resources?limit=3&type=microsoft.storage/storageaccounts".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        let items = page.ids("resource_id");
        assert!(items.len() <= 3);
        seen.extend(items);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/v1/resources?type=Microsoft.Storage/storageAccounts&limit=3&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, sorted(&ids), "every resource once, in id order");

    assert_eq!(app.get("/v1/resources?limit=1").await.ids("resource_id").len(), 1);
    assert_eq!(app.get("/v1/resources?limit=500").await.ids("resource_id").len(), 7);
    assert_eq!(app.get("/v1/resources").await.ids("resource_id").len(), 7, "default 50");
    // A page that ends exactly at the last item has no next page.
    assert_eq!(app.get("/v1/resources?limit=7").await.body["next_cursor"], json!(null));
    app.drop().await;
}

#[tokio::test]
async fn a_resource_answers_its_revision_and_latest_result_per_enabled_policy() {
    let app = TestApp::spawn().await;
    let id = app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"a": "1"}))).await;
    app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"a": "2"}))).await;
    let (p1, p2, p3) =
        (app.create_policy("one").await, app.create_policy("two").await, app.create_policy("three").await);
    app.evaluate(id, p1, "compliant").await;
    app.evaluate(id, p2, "not_applicable").await;
    app.evaluate(id, p3, "non_compliant").await;
    assert_eq!(app.post(&format!("/v1/policies/{p3}/disable"), &json!({})).await.status, 200);
    app.project().await;

    let answer = app.get(&format!("/v1/resources/{id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["revision"], 1);
    assert_eq!(answer.body["tags"], json!({"a": "2"}));
    assert_eq!(answer.body["compliance_state"], "compliant", "the disabled policy no longer counts");
    let mut expected = vec![(p1, "compliant"), (p2, "not_applicable")];
    expected.sort();
    let compliance = answer.body["compliance"].as_array().unwrap();
    let got: Vec<(Uuid, &str)> = compliance
        .iter()
        .map(|c| (Uuid::parse_str(c["policy_id"].as_str().unwrap()).unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(compliance[0]["reason"].as_str().map(|r| r.starts_with("scanner says")), Some(true));
    assert!(compliance[0]["evaluated_at"].is_string());

    assert_eq!(app.get(&format!("/v1/resources/{}", Uuid::now_v7())).await.status, 404);
    app.delete(&format!("/v1/resources/{id}")).await;
    app.project().await;
    let gone = app.get(&format!("/v1/resources/{id}")).await;
    assert_eq!((gone.status, gone.header("content-type")), (404, Some("application/problem+json")));
    app.drop().await;
}

#[tokio::test]
async fn an_unchanged_answer_is_304_to_if_none_match_and_a_change_gives_a_new_etag() {
    let app = TestApp::spawn().await;
    let id = app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({}))).await;
    let policy = app.create_policy("one").await;
    app.project().await;
    let path = format!("/v1/resources/{id}");
    let first = app.get(&path).await;
    let etag = first.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("\"0-") && etag.ends_with('"'), "{etag}");

    let conditional = |etag: String, path: String| {
        let app = &app;
        async move {
            app.send(
                app.client
                    .get(format!("{}{path}", app.base))
                    .bearer_auth(&app.api_key)
                    .header("if-none-match", etag),
            )
            .await
        }
    };
    let again = conditional(etag.clone(), path.clone()).await;
    assert_eq!((again.status, again.body.clone()), (304, json!(null)));
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(conditional("\"other\", ".to_owned() + &etag, path.clone()).await.status, 304);
    assert_eq!(conditional("\"other\"".to_owned(), path.clone()).await.status, 200);

    // A compliance change alone (no new resource revision) changes the tag.
    app.evaluate(id, policy, "non_compliant").await;
    app.project().await;
    let evaluated = conditional(etag.clone(), path.clone()).await;
    assert_eq!(evaluated.status, 200);
    let etag2 = evaluated.header("etag").unwrap().to_owned();
    assert_ne!(etag2, etag);
    // So does a change of the resource.
    app.register(&record("sub-1", "rg", STORAGE, "st1", "westeurope", json!({"x": "y"}))).await;
    app.project().await;
    let changed = conditional(etag2.clone(), path.clone()).await;
    assert_eq!(changed.status, 200);
    assert!(changed.header("etag").unwrap().starts_with("\"1-"));

    // Lists and every other GET carry an ETag too.
    for list in [
        "/v1/resources",
        "/v1/policies",
        &format!("/v1/policies/{policy}"),
        "/v1/compliance/summary",
        "/v1/compliance/trend",
        &format!("{path}/history"),
    ] {
        let answer = app.get(list).await;
        let tag = answer.header("etag").unwrap_or_else(|| panic!("{list} has no etag")).to_owned();
        assert_eq!(conditional(tag, list.to_owned()).await.status, 304, "{list}");
    }
    let list_tag = app.get("/v1/resources").await.header("etag").unwrap().to_owned();
    app.register(&record("sub-1", "rg", STORAGE, "st2", "westeurope", json!({}))).await;
    app.project().await;
    assert_eq!(conditional(list_tag, "/v1/resources".to_owned()).await.status, 200);
    app.drop().await;
}
