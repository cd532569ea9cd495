//! The compliance evaluator end to end, through the public API of a running `cortex serve`
//! (issue 7): the rule-engine fixtures decided by the evaluator, the life cycle of a policy
//! and its exemptions followed by results and summaries, and a crash in the middle of a
//! policy's fan-out.

mod common;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use common::{Stop, cortex, json, serve_with_env, wait_until_up};
use cortex_events::testing::TestDatabase;
use serde_json::{Map, Value, json};

fn tenant(db: &TestDatabase, name: &str) -> String {
    json(cortex(db).args(["tenants", "create", name]).output().unwrap())["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

struct Api {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.send(reqwest::Method::POST, path, Some(body.clone())).await;
        assert!((200..300).contains(&status), "POST {path} {body}: {status} {answer}");
        answer
    }

    /// POSTs and answers the id field `field` of the answer.
    async fn post_id(&self, path: &str, body: Value, field: &str) -> String {
        self.post(path, body).await[field].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> Value {
        let (status, answer) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {answer}");
        answer
    }

    /// The state of `policy`'s result in the resource's compliance, once there is one.
    async fn result(&self, resource: &str, policy: &str) -> Option<Value> {
        let (status, r) = self.send(reqwest::Method::GET, &format!("/v1/resources/{resource}"), None).await;
        if status == 404 {
            return None; // not projected yet
        }
        assert_eq!(status, 200, "{r}");
        r["compliance"].as_array()?.iter().find(|c| c["policy_id"] == policy).cloned()
    }

    /// Waits until the resource's result for `policy` is in `state`.
    async fn wait_state(&self, resource: &str, policy: &str, state: &str) -> Value {
        let mut last = None;
        for _ in 0..300 {
            last = self.result(resource, policy).await;
            if last.as_ref().is_some_and(|r| r["state"] == state) {
                return last.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("resource {resource}, policy {policy}: expected {state}, last seen {last:?}");
    }

    /// Waits until the tenant's summary has these counts.
    async fn wait_summary(&self, compliant: i64, non_compliant: i64, exempt: i64) {
        let mut last = Value::Null;
        for _ in 0..300 {
            last = self.get("/v1/compliance/summary").await;
            if (last["compliant"].as_i64(), last["non_compliant"].as_i64(), last["exempt"].as_i64())
                == (Some(compliant), Some(non_compliant), Some(exempt))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("summary: expected {compliant}/{non_compliant}/{exempt}, last {last}");
    }
}

async fn start(db: &TestDatabase, key: &str, env: &[(&str, &str)]) -> (std::process::Child, Api) {
    let (child, base) = serve_with_env(db, &[], env);
    wait_until_up(&base).await;
    (child, Api { base, key: key.to_owned(), client: reqwest::Client::new() })
}

/// A database of its own with one tenant, `acme`, and `cortex serve` on it.
async fn serve_acme() -> (TestDatabase, Api, Stop) {
    let db = TestDatabase::create().await;
    let key = tenant(&db, "acme");
    let (child, api) = start(&db, &key, &[]).await;
    (db, api, Stop(vec![child]))
}

/// Stops the server, then drops its database (a failed test keeps both for a look).
async fn finish(stop: Stop, db: TestDatabase) {
    drop(stop);
    db.drop_database().await;
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("command/rules/tests/fixtures")
}

fn read_json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// An inventory record's fields (DESIGN §8); a fixture that is a full ARM document with other
/// top-level fields is not a record the API takes.
const RECORD_FIELDS: [&str; 9] =
    ["id", "name", "type", "location", "kind", "tags", "properties", "subscription_id", "resource_group"];

fn subscription_of(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("subscriptions") {
            return parts.next().map(str::to_owned);
        }
    }
    None
}

#[tokio::test]
async fn the_rule_engine_fixtures_are_decided_by_the_evaluator_through_the_api() {
    let db = TestDatabase::create().await;
    let manifest = read_json(fixtures().join("manifest.json"));
    // One tenant per case, so that each case's resource, group and parameters stand alone.
    let mut cases = Vec::new();
    for fixture in manifest.as_array().unwrap() {
        let file = fixture["policy"].as_str().unwrap();
        let definition = read_json(fixtures().join("policies").join(file));
        for case in fixture["cases"].as_array().unwrap() {
            let record = case["resource"].as_object().unwrap();
            if record.keys().any(|k| !RECORD_FIELDS.contains(&k.as_str())) {
                continue;
            }
            let mut values = fixture.get("params").and_then(Value::as_object).cloned().unwrap_or_default();
            values.extend(case.get("params").and_then(Value::as_object).cloned().unwrap_or_default());
            cases.push((file.to_owned(), definition.clone(), values, case.clone()));
        }
    }
    assert!(cases.len() >= 100, "only {} fixture cases are inventory records", cases.len());
    let keys: Vec<String> = (0..cases.len()).map(|i| tenant(&db, &format!("fixture-{i}"))).collect();
    let (child, api) = start(&db, &keys[0], &[]).await;
    let stop = Stop(vec![child]);
    let runs = cases.iter().zip(&keys).map(|((file, definition, values, case), key)| {
        let api = Api { base: api.base.clone(), key: key.clone(), client: api.client.clone() };
        async move {
            let name = format!("{file} / {}", case["name"].as_str().unwrap_or(""));
            let props = &definition["properties"];
            let policy = api.post_id(
                    "/v1/policies",
                    json!({
                        "name": props["displayName"], "severity": "medium", "mode": props["mode"],
                        "rule": props["policyRule"], "parameters": props.get("parameters").cloned().unwrap_or(json!({})),
                        "parameter_values": Value::Object(values.clone()),
                    }), "policy_id").await;
            let resource = &case["resource"];
            if let Some(rg) = case.get("rg") {
                let sub = subscription_of(resource["id"].as_str().unwrap()).unwrap();
                let group = rg["name"].as_str().unwrap();
                let mut record = Map::new();
                record.insert("id".into(), json!(format!("/subscriptions/{sub}/resourceGroups/{group}")));
                record.insert("name".into(), json!(group));
                record.insert("type".into(), json!("Microsoft.Resources/resourceGroups"));
                record.insert("location".into(), rg.get("location").cloned().unwrap_or(json!("")));
                record.insert("tags".into(), rg.get("tags").cloned().unwrap_or(json!({})));
                api.post("/v1/resources", Value::Object(record)).await;
            }
            let id = api.post_id("/v1/resources", resource.clone(), "resource_id").await;
            let mut got = None;
            for _ in 0..300 {
                got = api.result(&id, &policy).await;
                if got.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match got {
                Some(r) if r["state"] == case["expect"] => None,
                other => Some(format!("{name}: expected {}, got {other:?}", case["expect"])),
            }
        }
    });
    let failures: Vec<String> = futures::future::join_all(runs).await.into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    finish(stop, db).await;
}

fn record(name: &str, location: &str) -> Value {
    json!({
        "id": format!("/subscriptions/s1/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/{name}"),
        "name": name, "type": "Microsoft.Storage/storageAccounts", "location": location,
    })
}

fn allowed_locations(locations: &[&str]) -> Value {
    json!({
        "name": "allowed locations", "severity": "high",
        "rule": {"if": {"field": "location", "notIn": "[parameters('allowed')]"}, "then": {"effect": "audit"}},
        "parameters": {"allowed": {"type": "Array"}},
        "parameter_values": {"allowed": locations},
    })
}

#[tokio::test]
async fn results_and_summaries_follow_a_policy_and_its_exemptions_through_their_life_cycle() {
    let (db, api, stop) = serve_acme().await;
    let policy = api.post_id("/v1/policies", allowed_locations(&["eastus"]), "policy_id").await;
    let mut ids = Vec::new();
    for (name, location) in [("st1", "eastus"), ("st2", "eastus"), ("st3", "westus")] {
        ids.push(api.post_id("/v1/resources", record(name, location), "resource_id").await);
    }
    api.wait_state(&ids[2], &policy, "non_compliant").await;
    api.wait_summary(2, 1, 0).await;

    // An edit of the rule's values re-evaluates the scope.
    let (status, _) = api
        .send(reqwest::Method::PUT, &format!("/v1/policies/{policy}"), Some(allowed_locations(&["westus"])))
        .await;
    assert_eq!(status, 200);
    api.wait_state(&ids[0], &policy, "non_compliant").await;
    api.wait_summary(1, 2, 0).await;

    // A resource that changes is evaluated again.
    api.post("/v1/resources", record("st2", "westus")).await;
    api.wait_state(&ids[1], &policy, "compliant").await;
    api.wait_summary(2, 1, 0).await;

    // An exemption takes effect, and its revocation ends it.
    let exemption = api
        .post_id(
            &format!("/v1/policies/{policy}/exemptions"),
            json!({"resource_id": ids[0], "reason": "waiver W-1"}),
            "exemption_id",
        )
        .await;
    let exempt = api.wait_state(&ids[0], &policy, "exempt").await;
    assert!(exempt["reason"].as_str().is_some_and(|r| r.contains("waiver W-1")), "{exempt}");
    api.wait_summary(2, 0, 1).await;
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("/v1/policies/{policy}/exemptions/{exemption}"), None)
        .await;
    assert_eq!(status, 200);
    api.wait_state(&ids[0], &policy, "non_compliant").await;
    api.wait_summary(2, 1, 0).await;

    // An exemption with an end expires at that time, with no other change.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(3);
    api.post(
        &format!("/v1/policies/{policy}/exemptions"),
        json!({"resource_id": ids[0], "reason": "until the migration", "expires_at": expires.to_rfc3339()}),
    )
    .await;
    api.wait_state(&ids[0], &policy, "exempt").await;
    api.wait_state(&ids[0], &policy, "non_compliant").await;
    assert!(chrono::Utc::now() >= expires, "the exemption ended before its time");
    api.wait_summary(2, 1, 0).await;

    // Disabled, the policy leaves the summaries; enabled, it is back.
    api.post(&format!("/v1/policies/{policy}/disable"), json!(null)).await;
    api.wait_summary(0, 0, 0).await;
    api.post(&format!("/v1/policies/{policy}/enable"), json!(null)).await;
    api.wait_summary(2, 1, 0).await;

    // A deleted resource leaves them too.
    let (status, _) = api.send(reqwest::Method::DELETE, &format!("/v1/resources/{}", ids[2]), None).await;
    assert_eq!(status, 200);
    api.wait_summary(1, 1, 0).await;

    // A new policy is evaluated on the resources already there.
    let tagged = api
        .post_id(
            "/v1/policies",
            json!({
                "name": "env tag", "severity": "low",
                "rule": {"if": {"field": "tags['env']", "exists": "false"}, "then": {"effect": "audit"}},
            }),
            "policy_id",
        )
        .await;
    api.wait_state(&ids[0], &tagged, "non_compliant").await;
    api.wait_state(&ids[1], &tagged, "non_compliant").await;
    api.wait_summary(0, 2, 0).await;

    // Deleted, the policy leaves the summaries.
    let (status, _) = api.send(reqwest::Method::DELETE, &format!("/v1/policies/{tagged}"), None).await;
    assert_eq!(status, 200);
    api.wait_summary(1, 1, 0).await;

    // The evaluator's events carry its source, the revisions, and derive from their trigger.
    let url = db.url.clone();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT metadata->>'actor', data FROM es_events WHERE event_type = 'ComplianceEvaluated' ORDER BY tx_id, seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    for (actor, data) in &rows {
        assert_eq!(actor, "system:evaluator");
        assert_eq!(data["source"], "policycortex");
        assert!(data["resource_revision"].is_u64(), "{data}");
        assert!(
            data["results"].as_array().is_some_and(|r| r.iter().all(|r| r["policy_revision"].is_u64())),
            "{data}"
        );
    }
    finish(stop, db).await;
}

/// Kills the server (SIGKILL) while a policy's scope is being re-evaluated, restarts it, and
/// checks that every resource got exactly one result for the policy: none twice, none missing.
#[tokio::test]
async fn a_crash_in_the_middle_of_a_fan_out_neither_duplicates_nor_loses_a_decision() {
    const RESOURCES: usize = 2000;
    let db = TestDatabase::create().await;
    let key = tenant(&db, "acme");
    // Small pages, one append at a time: the fan-out lasts long enough to be interrupted.
    let slow = [("CORTEX_EVALUATOR_PAGE_SIZE", "20"), ("CORTEX_EVALUATOR_CONCURRENCY", "1")];
    let (child, api) = start(&db, &key, &slow).await;
    let mut stop = Stop(vec![child]);
    for chunk in (0..RESOURCES).collect::<Vec<_>>().chunks(1000) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| record(&format!("st{i:05}"), if i % 3 == 0 { "westus" } else { "eastus" }))
            .collect();
        api.post("/v1/resources:batch", json!({"resources": records})).await;
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // The evaluator has seen every registration (no policy yet: nothing to decide).
    common::eventually("the evaluator to hold every resource", async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm_evaluator.resources")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == RESOURCES as i64)
    })
    .await;
    let policy = api.post_id("/v1/policies", allowed_locations(&["eastus"]), "policy_id").await;
    let decided = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM es_events WHERE event_type = 'ComplianceEvaluated' AND data::jsonb->'results' @> $1",
        )
        .bind(json!([{ "policy_id": policy }]))
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // The fan-out's progress shows in `cortex projections status`.
    let mut progress = Value::Null;
    for _ in 0..200 {
        progress = common::status_of(&db, "evaluator").await["progress"].clone();
        if !progress.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(progress["policy_id"], policy.as_str(), "progress: {progress}");
    assert_eq!(progress["total"], RESOURCES, "progress: {progress}");
    assert!(progress["done"].as_u64().is_some_and(|d| d > 0 && d < RESOURCES as u64), "progress: {progress}");
    let mut at_kill = 0;
    for _ in 0..3000 {
        at_kill = decided().await;
        if at_kill >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for c in &mut stop.0 {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let at_kill_after = decided().await;
    assert!(
        at_kill >= 100 && at_kill_after < RESOURCES as i64,
        "the fan-out was not interrupted in the middle ({at_kill} then {at_kill_after} of {RESOURCES})"
    );
    let (child, api) = start(&db, &key, &[]).await;
    stop.0.push(child);
    api.wait_summary((RESOURCES - RESOURCES.div_ceil(3)) as i64, RESOURCES.div_ceil(3) as i64, 0).await;
    let per_stream: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT stream_name, count(*) FROM es_events WHERE event_type = 'ComplianceEvaluated' \
           AND data::jsonb->'results' @> $1 GROUP BY stream_name",
    )
    .bind(json!([{ "policy_id": policy }]))
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(per_stream.len(), RESOURCES, "every resource has a decision");
    let twice: Vec<_> = per_stream.iter().filter(|(_, n)| **n != 1).take(10).collect();
    assert!(twice.is_empty(), "decided more than once: {twice:?}");
    finish(stop, db).await;
}

/// An external scanner's result lands on the resource's compliance stream between two of the
/// evaluator's: the evaluator's next append meets a revision it did not expect, finds its
/// event is not there, and appends after the scanner's.
#[tokio::test]
async fn the_evaluator_appends_after_an_external_scanners_result_on_the_same_stream() {
    let (db, api, stop) = serve_acme().await;
    let policy = api.post_id("/v1/policies", allowed_locations(&["eastus"]), "policy_id").await;
    let id = api.post_id("/v1/resources", record("st1", "eastus"), "resource_id").await;
    api.wait_state(&id, &policy, "compliant").await;
    api.post(
        "/v1/evaluations",
        json!({"resource_id": id, "policy_id": policy, "state": "non_compliant", "reason": "scanner says so", "source": "scanner-x"}),
    )
    .await;
    let seen = api.wait_state(&id, &policy, "non_compliant").await;
    assert_eq!(seen["reason"], "scanner says so");
    api.post("/v1/resources", record("st1", "westus")).await;
    let ours = api.wait_state(&id, &policy, "non_compliant").await;
    let mut reason = ours["reason"].clone();
    for _ in 0..300 {
        if reason != "scanner says so" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        reason = api.result(&id, &policy).await.unwrap_or_default()["reason"].clone();
    }
    assert_ne!(reason, "scanner says so", "the evaluator's result never followed the scanner's");
    api.post("/v1/resources", record("st1", "eastus")).await;
    api.wait_state(&id, &policy, "compliant").await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let sources: Vec<String> = sqlx::query_scalar(
        "SELECT data->>'source' FROM es_events WHERE stream_name = $1 ORDER BY stream_revision",
    )
    .bind(format!("compliance-{id}"))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(sources, ["policycortex", "scanner-x", "policycortex", "policycortex"]);
    finish(stop, db).await;
}

/// `resourceGroup()` reads the registered group, in a policy's fan-out as for a single
/// resource, and a group's change re-evaluates its members.
#[tokio::test]
async fn resource_group_context_reaches_fan_outs_and_a_group_change_re_evaluates_its_members() {
    let (db, api, stop) = serve_acme().await;
    let group = |env: &str| {
        json!({"id": "/subscriptions/s1/resourceGroups/rg-app", "name": "rg-app",
               "type": "Microsoft.Resources/resourceGroups", "location": "eastus", "tags": {"env": env}})
    };
    api.post("/v1/resources", group("prod")).await;
    let mut member = record("st1", "eastus");
    member["tags"] = json!({"env": "prod"});
    let id = api.post_id("/v1/resources", member, "resource_id").await;
    // The policy's fan-out comes in a batch of its own, which reads the group from the table.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    common::eventually("the evaluator to hold the group and its member", async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm_evaluator.resources")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 2)
    })
    .await;
    // Non-compliant when the resource's env tag equals its group's: true only if the group is read.
    let policy = api
        .post_id(
            "/v1/policies",
            json!({
                "name": "env differs from the group", "severity": "low", "mode": "indexed",
                "rule": {"if": {"allOf": [
                    {"field": "type", "equals": "Microsoft.Storage/storageAccounts"},
                    {"field": "tags['env']", "equals": "[resourceGroup().tags['env']]"}
                ]}, "then": {"effect": "audit"}},
            }),
            "policy_id",
        )
        .await;
    api.wait_state(&id, &policy, "non_compliant").await;
    api.post("/v1/resources", group("dev")).await;
    api.wait_state(&id, &policy, "compliant").await;
    finish(stop, db).await;
}

/// A resource's first evaluation in a tenant with more policies than one event holds is
/// recorded in several events, each under the store's size limit.
#[tokio::test]
async fn a_first_evaluation_against_many_policies_is_split_across_events() {
    const POLICIES: usize = 130;
    let (db, api, stop) = serve_acme().await;
    let mut policies = Vec::new();
    for i in 0..POLICIES {
        let body = json!({
            "name": format!("tag {i}"), "severity": "low",
            "rule": {"if": {"field": format!("tags['t{i}']"), "exists": "false"}, "then": {"effect": "audit"}},
        });
        policies.push(api.post_id("/v1/policies", body, "policy_id").await);
    }
    let id = api.post_id("/v1/resources", record("st1", "eastus"), "resource_id").await;
    for policy in [&policies[0], &policies[POLICIES - 1]] {
        api.wait_state(&id, policy, "non_compliant").await;
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let sizes: Vec<i64> = sqlx::query_scalar(
        "SELECT json_array_length(data->'results')::bigint FROM es_events WHERE stream_name = $1 ORDER BY stream_revision",
    )
    .bind(format!("compliance-{id}"))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(sizes.iter().sum::<i64>(), POLICIES as i64, "{sizes:?}");
    assert!(sizes.len() >= 2 && sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    finish(stop, db).await;
}
