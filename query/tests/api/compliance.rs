use chrono::{Days, Utc};
use serde_json::{Value, json};

use crate::helpers::{STORAGE, TestApp, VM, record};

fn group<'a>(summary: &'a Value, key: &str) -> &'a Value {
    summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no group {key} in {summary}"))
}

fn tally(v: &Value) -> (i64, i64, i64, i64) {
    let n = |f: &str| v[f].as_i64().unwrap();
    (n("total"), n("compliant"), n("non_compliant"), n("exempt"))
}

#[tokio::test]
async fn the_summary_counts_resources_by_overall_state_grouped_each_way() {
    let app = TestApp::spawn().await;
    let a = app.register(&record("sub-1", "rg", STORAGE, "a", "westeurope", json!({}))).await;
    let b = app.register(&record("SUB-1", "rg", VM, "b", "westeurope", json!({}))).await;
    let c = app.register(&record("sub-2", "rg", STORAGE, "c", "westeurope", json!({}))).await;
    let d = app.register(&record("sub-2", "rg", VM, "d", "westeurope", json!({}))).await;
    let _unjudged = app.register(&record("sub-2", "rg", VM, "e", "westeurope", json!({}))).await;
    let (p1, p2) = (app.create_policy("one").await, app.create_policy("two").await);
    app.evaluate(a, p1, "compliant").await;
    app.evaluate(b, p1, "compliant").await;
    app.evaluate(b, p2, "non_compliant").await;
    app.evaluate(c, p1, "exempt").await;
    app.evaluate(d, p2, "not_applicable").await;
    app.project().await;

    let plain = app.get("/v1/compliance/summary").await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    // a compliant, b non-compliant (ranks first), c exempt; d and e have no counted result.
    assert_eq!(tally(&plain.body), (3, 1, 1, 1));
    let percentage = plain.body["percentage"].as_f64().unwrap();
    assert!((percentage - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(plain.body["groups"], json!([]));

    let by_subscription = app.get("/v1/compliance/summary?group_by=subscription").await;
    assert_eq!(tally(&by_subscription.body), (3, 1, 1, 1));
    assert_eq!(by_subscription.body["groups"].as_array().unwrap().len(), 2, "sub-1 and SUB-1 are one");
    assert_eq!(tally(group(&by_subscription.body, "sub-1")), (2, 1, 1, 0));
    assert_eq!(tally(group(&by_subscription.body, "sub-2")), (1, 0, 0, 1));
    assert_eq!(group(&by_subscription.body, "sub-2")["percentage"], json!(1.0));

    let by_type = app.get("/v1/compliance/summary?group_by=resource_type").await;
    assert_eq!(tally(group(&by_type.body, "microsoft.storage/storageaccounts")), (2, 1, 0, 1));
    assert_eq!(tally(group(&by_type.body, "microsoft.compute/virtualmachines")), (1, 0, 1, 0));
    assert_eq!(group(&by_type.body, "microsoft.compute/virtualmachines")["percentage"], json!(0.0));

    let by_policy = app.get("/v1/compliance/summary?group_by=policy").await;
    assert_eq!(tally(&by_policy.body), (3, 1, 1, 1), "the totals stay the tenant's resources");
    let one = group(&by_policy.body, &p1.to_string());
    assert_eq!((tally(one), one["name"].clone()), ((3, 2, 0, 1), json!("one")));
    assert_eq!(tally(group(&by_policy.body, &p2.to_string())), (1, 0, 1, 0));

    // A tenant with nothing judged: zeros and a null percentage.
    let other = app.other_tenant_key().await;
    let empty = app.get_as(&other, "/v1/compliance/summary?group_by=policy").await;
    assert_eq!(
        empty.body,
        json!({"total": 0, "compliant": 0, "non_compliant": 0, "exempt": 0, "percentage": null, "groups": []})
    );
    app.drop().await;
}

#[tokio::test]
async fn the_trend_has_one_point_per_day_carrying_the_last_totals_forward() {
    let app = TestApp::spawn().await;
    let a = app.register(&record("sub-1", "rg", STORAGE, "a", "westeurope", json!({}))).await;
    let p = app.create_policy("one").await;
    app.evaluate(a, p, "non_compliant").await;
    app.project().await;

    let today = Utc::now().date_naive();
    let trend = app.get("/v1/compliance/trend?days=3").await;
    assert_eq!(trend.status, 200, "{}", trend.body);
    let points = trend.body["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points[2]["day"], today.to_string());
    assert_eq!(tally(&points[2]), (1, 0, 1, 0), "today's point is the current totals");
    assert_eq!(points[0]["percentage"], json!(null), "before the first change: zeros");
    assert_eq!(
        app.get("/v1/compliance/trend").await.body["points"].as_array().unwrap().len(),
        30,
        "default 30 days"
    );

    // Earlier days, as the projector records them: the totals after the last change of a day.
    let day = |n: u64| today.checked_sub_days(Days::new(n)).unwrap();
    for (d, compliant, non_compliant) in [(10u64, 4i64, 0i64), (5, 3, 1)] {
        sqlx::query("INSERT INTO rm_compliance.trend (tenant_id, day, compliant, non_compliant, exempt) VALUES ($1, $2, $3, $4, 0)")
            .bind(app.tenant_id)
            .bind(day(d))
            .bind(compliant)
            .bind(non_compliant)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    let week = app.get("/v1/compliance/trend?days=7").await;
    let points = week.body["points"].as_array().unwrap();
    assert_eq!(week.body["from"], day(6).to_string());
    let days: Vec<String> = points.iter().map(|p| p["day"].as_str().unwrap().to_owned()).collect();
    let expected: Vec<String> = (0..7).rev().map(|n| day(n).to_string()).collect();
    assert_eq!(days, expected, "one point per day, oldest first");
    let tallies: Vec<_> = points.iter().map(tally).collect();
    let mut expected = vec![(4, 4, 0, 0)];
    expected.extend([(4, 3, 1, 0); 5]);
    expected.push((1, 0, 1, 0));
    assert_eq!(tallies, expected, "day -6 carries day -10's totals, days -5 to -1 day -5's");
    app.drop().await;
}
