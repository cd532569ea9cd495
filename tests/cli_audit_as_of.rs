//! `cortex audit summary --at`, `cortex audit state --at` and `as_of` over HTTP: a past answer, by replay,
//! equals what the live API answered at that moment (issue 23).

mod common;

use std::time::Duration;

use common::{Stop, cortex, json, serve, wait_until_up};
use cortex_events::testing::TestDatabase;
use serde_json::{Value, json};

struct Api {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r =
            self.client.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(body) = &body {
            r = r.json(body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let answer = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path} {body:?}: {status} {answer}");
        answer
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

fn record(name: &str, subscription: &str, kind: &str, location: &str) -> Value {
    json!({"id": format!("/subscriptions/{subscription}/resourceGroups/rg/providers/{kind}/{name}"),
           "name": name, "type": kind, "location": location})
}

fn allowed_locations(name: &str, locations: &[&str]) -> Value {
    json!({
        "name": name, "severity": "high",
        "rule": {"if": {"field": "location", "notIn": "[parameters('allowed')]"}, "then": {"effect": "audit"}},
        "parameters": {"allowed": {"type": "Array"}},
        "parameter_values": {"allowed": locations},
    })
}

/// Waits until every projection and the evaluator have applied the whole log and the log has
/// stopped growing (the evaluator's decisions are events too).
async fn settle(db: &TestDatabase) {
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM es_events").fetch_one(&db.pool).await.unwrap()
    };
    let mut stable = 0;
    let mut last = -1;
    for _ in 0..600 {
        let status = json(cortex(db).args(["projections", "status", "--json"]).output().unwrap());
        let caught_up = status.as_array().unwrap().iter().all(|s| s["state"] == "live" && s["lag"] == 0);
        let now = count().await;
        stable = if caught_up && now == last { stable + 1 } else { 0 };
        last = now;
        if stable >= 3 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("the pipeline did not settle");
}

const GROUPS: [Option<&str>; 4] = [None, Some("subscription"), Some("resource_type"), Some("policy")];

#[tokio::test]
async fn summaries_and_resources_as_of_past_moments_equal_what_the_live_api_answered_then() {
    let db = TestDatabase::create().await;
    let tenant = json(cortex(&db).args(["tenants", "create", "acme"]).output().unwrap());
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let (server, base) = serve(&db, &[]);
    let _stop = Stop(vec![server]);
    wait_until_up(&base).await;
    let api =
        Api { base, key: tenant["api_key"].as_str().unwrap().to_owned(), client: reqwest::Client::new() };

    // (moment, group_by, the live answer)
    let mut seen: Vec<(String, Option<&str>, Value)> = Vec::new();
    // (moment, resource id, the live status and answer)
    let mut resources: Vec<(String, String, u16, Value)> = Vec::new();
    let tenant_uuid: uuid::Uuid = tenant_id.parse().unwrap();
    let watched = [("a", "s1", "vm"), ("b", "s1", "db"), ("c", "s2", "vm")].map(|(n, sub, kind)| {
        let cloud_id = format!("/subscriptions/{sub}/resourceGroups/rg/providers/X.Y/{kind}/{n}");
        cortex_events::resource_id(tenant_uuid, &cloud_id).to_string()
    });
    let moment = async |api: &Api,
                        seen: &mut Vec<(String, Option<&str>, Value)>,
                        resources: &mut Vec<(String, String, u16, Value)>| {
        settle(&db).await;
        let mut answers = Vec::new();
        for g in GROUPS {
            let path = g.map_or("/v1/compliance/summary".to_owned(), |g| {
                format!("/v1/compliance/summary?group_by={g}")
            });
            answers.push((g, api.send(reqwest::Method::GET, &path, None).await));
        }
        let mut records = Vec::new();
        for id in &watched {
            let r = api
                .client
                .get(format!("{}/v1/resources/{id}", api.base))
                .bearer_auth(&api.key)
                .send()
                .await
                .unwrap();
            records.push((id.clone(), r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)));
        }
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen.extend(answers.into_iter().map(|(g, a)| (at.clone(), g, a)));
        resources.extend(records.into_iter().map(|(id, status, body)| (at.clone(), id, status, body)));
    };

    moment(&api, &mut seen, &mut resources).await; // nothing yet
    let p1 = api.post("/v1/policies", allowed_locations("eu only", &["westeurope"])).await["policy_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for (name, sub, kind, location) in [
        ("a", "s1", "X.Y/vm", "westeurope"),
        ("b", "s1", "X.Y/db", "eastus"),
        ("c", "s2", "X.Y/vm", "eastus"),
        ("d", "s2", "X.Y/db", "westeurope"),
    ] {
        ids.push(
            api.post("/v1/resources", record(name, sub, kind, location)).await["resource_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    moment(&api, &mut seen, &mut resources).await;
    api.send(
        reqwest::Method::PUT,
        &format!("/v1/policies/{p1}"),
        Some(allowed_locations("eu only", &["westeurope", "eastus"])),
    )
    .await;
    let p2 = api.post("/v1/policies", allowed_locations("us only", &["eastus"])).await["policy_id"]
        .as_str()
        .unwrap()
        .to_owned();
    moment(&api, &mut seen, &mut resources).await;
    api.post(&format!("/v1/policies/{p2}/exemptions"), json!({"resource_id": ids[0], "reason": "waiver"}))
        .await;
    api.post("/v1/resources", record("b", "s1", "X.Y/db", "westeurope")).await;
    moment(&api, &mut seen, &mut resources).await;
    api.send(reqwest::Method::DELETE, &format!("/v1/resources/{}", ids[2]), None).await;
    api.post(&format!("/v1/policies/{p1}/disable"), json!({})).await;
    moment(&api, &mut seen, &mut resources).await;
    api.send(reqwest::Method::DELETE, &format!("/v1/policies/{p2}"), None).await;
    api.post(&format!("/v1/policies/{p1}/enable"), json!({})).await;
    moment(&api, &mut seen, &mut resources).await;

    let distinct: std::collections::BTreeSet<String> =
        seen.iter().filter(|s| s.1.is_none()).map(|s| s.2.to_string()).collect();
    assert!(distinct.len() >= 4, "the moments differ: {distinct:?}");
    for (at, group, live) in &seen {
        let mut c = cortex(&db);
        c.args(["audit", "summary", "--tenant", &tenant_id, "--at", at, "--json"]);
        if let Some(g) = group {
            c.args(["--group-by", g]);
        }
        let replayed = json(c.output().unwrap());
        assert_eq!(&replayed, live, "at {at}, group_by {group:?}");
        // The same over HTTP, as an answer that never changes.
        let path = match group {
            Some(g) => format!("{}/v1/compliance/summary?as_of={at}&group_by={g}", api.base),
            None => format!("{}/v1/compliance/summary?as_of={at}", api.base),
        };
        let answer = api.client.get(&path).bearer_auth(&api.key).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["cache-control"], "private, max-age=31536000, immutable");
        assert_eq!(&answer.json::<Value>().await.unwrap(), live, "HTTP at {at}, group_by {group:?}");
    }
    // Each watched resource as of each moment: what the live GET answered, by HTTP and CLI.
    let statuses: std::collections::BTreeSet<u16> = resources.iter().map(|r| r.2).collect();
    assert_eq!(statuses, [200, 404].into(), "before registration, live and deleted");
    for (at, id, status, live) in &resources {
        let answer = api
            .client
            .get(format!("{}/v1/resources/{id}?as_of={at}", api.base))
            .bearer_auth(&api.key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), *status, "{id} at {at}");
        if *status == 200 {
            assert_eq!(answer.headers()["cache-control"], "private, max-age=31536000, immutable");
            assert_eq!(&answer.json::<Value>().await.unwrap(), live, "{id} at {at}");
        }
        let out =
            cortex(&db).args(["audit", "state", "--resource", id, "--at", at, "--json"]).output().unwrap();
        if *status == 200 {
            assert_eq!(&json(out), live, "CLI: {id} at {at}");
        } else {
            assert_eq!(out.status.code(), Some(1), "CLI: {id} at {at}");
        }
    }
    // By revision: the first registration of `b`, as it was then.
    let first = json(
        cortex(&db)
            .args(["audit", "state", "--resource", &watched[1], "--revision", "0", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        (first["revision"].as_i64(), first["location"].as_str()),
        (Some(0), Some("eastus")),
        "{first}"
    );

    for (bad, why) in [("2999-01-01T00:00:00Z", "in the future"), ("yesterday", "RFC 3339")] {
        let answer = api
            .client
            .get(format!("{}/v1/compliance/summary?as_of={bad}", api.base))
            .bearer_auth(&api.key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400);
        let problem: Value = answer.json().await.unwrap();
        assert!(
            problem["errors"][0]["pointer"] == "/as_of" && problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
    }

    // A time in the future is a usage error.
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let out =
        cortex(&db).args(["audit", "summary", "--tenant", &tenant_id, "--at", &future]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    db.drop_database().await;
}
