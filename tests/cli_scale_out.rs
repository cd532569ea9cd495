//! The scaled-out topology of DESIGN §7 as separate processes: `cortex serve --only command`,
//! `--only projections`, and two `--only query` instances, against one NATS and one cache
//! (both the test's own). A write is invalidated in both query instances; each reports its
//! dependencies in `/readyz`.

mod common;

use std::time::Duration;

use common::{Stop, cortex, json, serve, wait_until_up};
use cortex_events::testing::{Server, TestDatabase};
use serde_json::{Value, json};

#[tokio::test]
async fn two_query_instances_stay_coherent_with_one_nats_and_one_cache() {
    let db = TestDatabase::create().await;
    let (nats, redis) = (Server::nats().await, Server::redis().await);
    let nats_url = format!("nats://127.0.0.1:{}", nats.port);
    let cache_url = format!("redis://127.0.0.1:{}/", redis.port);
    let key = json(cortex(&db).args(["tenants", "create", "acme"]).output().unwrap())["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let topology = ["--nats-url", &nats_url, "--cache-url", &cache_url];
    let only = |c: &'static str| [&topology[..], &["--only", c]].concat();
    let (command, command_url) = serve(&db, &only("command"));
    let (projections, _) = serve(&db, &only("projections"));
    let (q1, q1_url) = serve(&db, &only("query"));
    let (q2, q2_url) = serve(&db, &only("query"));
    let _stop = Stop(vec![command, projections, q1, q2]);
    for base in [&command_url, &q1_url, &q2_url] {
        wait_until_up(base).await;
    }
    let client = reqwest::Client::new();
    let get = async |base: &str, path: &str, after: Option<&str>| -> (u16, Value) {
        let mut r = client.get(format!("{base}{path}")).bearer_auth(&key);
        if let Some(a) = after {
            r = r.header("X-Cortex-After", a);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    };
    let write = async |env: &str| -> (String, i64, String) {
        let record = json!({
            "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stscale",
            "name": "stscale", "type": "Microsoft.Storage/storageAccounts", "location": "westeurope",
            "tags": {"env": env}
        });
        let a = client
            .post(format!("{command_url}/v1/resources"))
            .bearer_auth(&key)
            .json(&record)
            .send()
            .await
            .unwrap();
        assert!(a.status().is_success());
        let a: Value = a.json().await.unwrap();
        (
            a["resource_id"].as_str().unwrap().to_owned(),
            a["revision"].as_i64().unwrap(),
            a["position"].as_str().unwrap().to_owned(),
        )
    };

    // Each query instance is live once it has heard NATS (its readiness says so).
    for base in [&q1_url, &q2_url] {
        let mut live = false;
        for _ in 0..100 {
            let (status, body) = get(base, "/readyz", None).await;
            if status == 200 && body["dependencies"]["notices"]["status"] == "ok" {
                assert_eq!(body["dependencies"]["cache"]["status"], "ok", "{body}");
                live = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(live, "{base} never saw its notices live");
    }

    let (id, rev, position) = write("dev").await;
    let path = format!("/v1/resources/{id}");
    for base in [&q1_url, &q2_url] {
        let (status, body) = get(base, &path, Some(&position)).await;
        assert_eq!((status, body["revision"].as_i64()), (200, Some(rev)), "{body}");
        assert_eq!(get(base, &path, None).await.1["tags"]["env"], "dev");
    }
    let (_, rev2, _) = write("prod").await;
    for base in [&q1_url, &q2_url] {
        let mut seen = Value::Null;
        for _ in 0..100 {
            seen = get(base, &path, None).await.1;
            if seen["revision"].as_i64() == Some(rev2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen["tags"]["env"], "prod", "{base} still serves the old answer: {seen}");
    }
    drop(_stop);
    db.drop_database().await;
}
