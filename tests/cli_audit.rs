//! `cortex audit …` against a real PostgreSQL, on a history written through the API.

mod common;

use common::{Stop, cortex, json, serve, wait_until_up};
use cortex_events::testing::TestDatabase;
use serde_json::{Value, json};

const CLOUD_ID: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";

fn record(name: &str, location: &str, tags: Value) -> Value {
    json!({"id": CLOUD_ID, "name": name, "type": "Microsoft.Compute/virtualMachines",
           "location": location, "tags": tags})
}

/// The changes of one history item as (field, before, after).
fn changes(item: &Value) -> Vec<(String, Value, Value)> {
    item["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["field"].as_str().unwrap().to_owned(), c["before"].clone(), c["after"].clone()))
        .collect()
}

#[tokio::test]
async fn history_follows_one_cloud_id_through_retag_rename_delete_and_registration_again() {
    let db = TestDatabase::create().await;
    let tenant = json(cortex(&db).args(["tenants", "create", "acme"]).output().unwrap());
    let key = tenant["api_key"].as_str().unwrap().to_owned();
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let (server, base) = serve(&db, &["--only", "command"]);
    let _stop = Stop(vec![server]);
    wait_until_up(&base).await;
    let client = reqwest::Client::new();
    let post = |body: Value| {
        let request = client.post(format!("{base}/v1/resources")).bearer_auth(&key).json(&body);
        async move {
            let answer = request.send().await.unwrap();
            assert!(answer.status().is_success(), "{}", answer.status());
            answer.json::<Value>().await.unwrap()
        }
    };
    let first = post(record("vm1", "westeurope", json!({"env": "dev", "team": "a"}))).await;
    let id = first["resource_id"].as_str().unwrap().to_owned();
    post(record("vm1", "westeurope", json!({"env": "prod"}))).await;
    post(record("vm1-renamed", "westeurope", json!({"env": "prod"}))).await;
    let deleted = client.delete(format!("{base}/v1/resources/{id}")).bearer_auth(&key).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    post(record("vm1-renamed", "northeurope", json!({"env": "prod"}))).await;

    let by_cloud_id = json(
        cortex(&db)
            .args(["audit", "history", "--cloud-id", CLOUD_ID, "--tenant", &tenant_id, "--json"])
            .output()
            .unwrap(),
    );
    let by_id = json(cortex(&db).args(["audit", "history", "--resource", &id, "--json"]).output().unwrap());
    assert_eq!(by_cloud_id, by_id, "the same entity either way");
    let items = by_id["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|i| i["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "ResourceRegistered",
            "ResourceTagsChanged",
            "ResourceRenamed",
            "ResourceDeleted",
            "ResourceRegistered"
        ]
    );
    for (n, item) in items.iter().enumerate() {
        assert_eq!(item["revision"], n as u64, "oldest first");
        assert!(item["actor"].as_str().unwrap().starts_with("key:"), "{item}");
        assert!(item["source"].is_null(), "inventory events carry no source");
        for field in ["stream", "position", "event_id", "occurred_at", "correlation_id"] {
            assert!(item[field].is_string(), "{field} in {item}");
        }
    }
    assert!(changes(&items[0]).contains(&("tags.env".into(), Value::Null, json!("dev"))));
    assert_eq!(
        changes(&items[1]),
        [("tags.team".into(), json!("a"), Value::Null), ("tags.env".into(), json!("dev"), json!("prod"))]
    );
    assert_eq!(changes(&items[2]), [("name".into(), json!("vm1"), json!("vm1-renamed"))]);
    assert_eq!(changes(&items[3]), [("deleted".into(), Value::Null, json!(true))]);
    let again = changes(&items[4]);
    assert!(again.contains(&("deleted".into(), json!(true), Value::Null)), "{again:?}");
    assert!(again.contains(&("location".into(), json!("westeurope"), json!("northeurope"))), "{again:?}");

    // For people: a table naming the events and the changes.
    let table = cortex(&db).args(["audit", "history", "--resource", &id]).output().unwrap();
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("ResourceRenamed") && text.contains("name: \"vm1\" → \"vm1-renamed\""), "{text}");

    // A reader that goes away (`| head`): the rest is dropped quietly, no panic.
    let mut gone = cortex(&db)
        .args(["audit", "history", "--resource", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(gone.stdout.take());
    let ended = gone.wait_with_output().unwrap();
    assert!(ended.status.success(), "{:?}: {}", ended.status, String::from_utf8_lossy(&ended.stderr));

    // An entity never recorded: exit 1, said on stderr; a cloud id without its tenant: usage.
    let none = cortex(&db)
        .args(["audit", "history", "--resource", &uuid::Uuid::now_v7().to_string()])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("never been recorded"));
    let usage = cortex(&db).args(["audit", "history", "--cloud-id", CLOUD_ID]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "{}", String::from_utf8_lossy(&usage.stderr));
    db.drop_database().await;
}
