//! `cortex tenants create` and `cortex serve` as an operator runs them: the key printed once
//! works against the served API, only its hash is stored, and SIGTERM stops the server.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use cortex_events::testing::TestDatabase;

fn cortex(db: &TestDatabase) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cortex"));
    c.env("DATABASE_URL", &db.url).env("CORTEX_LOG", "warn");
    c
}

#[tokio::test]
async fn a_created_tenant_key_works_against_the_served_api_and_sigterm_stops_it() {
    let db = TestDatabase::create().await;
    let out = cortex(&db).args(["tenants", "create", "acme"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let key = printed["api_key"].as_str().unwrap().to_owned();
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT secret_hash FROM api_keys").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!key.contains(&hex::encode(&stored)), "the key is not its hash");
    let in_db: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE position($1 in encode(secret_hash, 'hex')) > 0",
    )
    .bind(&key[key.len() - 64..])
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(in_db, 0, "the secret itself is stored nowhere");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = cortex(&db)
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "cortex serve did not come up");
    let record = serde_json::json!({
        "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1",
        "name": "st1", "type": "Microsoft.Storage/storageAccounts", "location": "westeurope"
    });
    let answer =
        client.post(format!("{base}/v1/resources")).bearer_auth(&key).json(&record).send().await.unwrap();
    assert_eq!(answer.status(), 201);

    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = server.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = exited.unwrap_or_else(|| {
        let _ = server.kill();
        panic!("cortex serve did not stop on SIGTERM")
    });
    assert!(status.success(), "{status:?}");
    db.drop_database().await;
}
