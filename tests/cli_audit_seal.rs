//! `cortex audit keygen | seal | verify` against a real PostgreSQL: tampering with the log as
//! a superuser could (the append-only trigger disabled) is found and named.

mod common;

use std::{os::unix::fs::PermissionsExt, path::Path};

use common::{Stop, cortex, json, serve, wait_until_up};
use cortex_events::testing::TestDatabase;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A tenant, a server, and resources `a`, `b`, `c` registered through the API (`c` twice, so
/// its stream has two events). Answers the resource ids by name.
async fn estate(db: &TestDatabase) -> (Stop, Vec<(String, String)>) {
    let tenant = json(cortex(db).args(["tenants", "create", "acme"]).output().unwrap());
    let key = tenant["api_key"].as_str().unwrap().to_owned();
    let (server, base) = serve(db, &["--only", "command"]);
    let stop = Stop(vec![server]);
    wait_until_up(&base).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (name, location) in
        [("a", "westeurope"), ("b", "westeurope"), ("c", "westeurope"), ("c", "northeurope")]
    {
        let record = json!({"id": format!("/subscriptions/s1/resourceGroups/rg/providers/X.Y/z/{name}"),
                            "name": name, "type": "X.Y/z", "location": location});
        let answer =
            client.post(format!("{base}/v1/resources")).bearer_auth(&key).json(&record).send().await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        let body: Value = answer.json().await.unwrap();
        let id = body["resource_id"].as_str().unwrap().to_owned();
        if !ids.iter().any(|(n, _)| n == name) {
            ids.push((name.to_owned(), id));
        }
    }
    (stop, ids)
}

fn keygen(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cortex"))
        .args(["audit", "keygen", "--out", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (path.to_str().unwrap().to_owned(), public)
}

fn seal(db: &TestDatabase, key: &str) -> Value {
    json(cortex(db).args(["audit", "seal", "--key", key, "--json"]).output().unwrap())
}

/// `audit verify --json` with a kept seal (a file) and its exit code.
fn verify(db: &TestDatabase, kept: Option<&Path>) -> (i32, Value) {
    let mut c = cortex(db);
    c.args(["audit", "verify", "--json"]);
    if let Some(kept) = kept {
        c.args(["--seal", kept.to_str().unwrap()]);
    }
    let out = c.output().unwrap();
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 1, "{code}: {}", String::from_utf8_lossy(&out.stderr));
    (code, serde_json::from_slice(&out.stdout).expect("JSON on stdout"))
}

fn findings(report: &Value) -> Vec<Value> {
    report["findings"].as_array().unwrap().clone()
}

/// Runs `sql` as a superuser who has disabled the log's append-only trigger.
async fn tamper(pool: &PgPool, sql: &str) {
    let mut tx = cortex_events::postgres::begin(pool).await.unwrap();
    sqlx::query("ALTER TABLE es_events DISABLE TRIGGER es_events_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
    sqlx::query("ALTER TABLE es_events ENABLE TRIGGER es_events_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Moves rows out of the log into `saved` (to put back with [`put_back`]).
async fn take_out(pool: &PgPool, filter: &str) {
    tamper(pool, &format!("CREATE TABLE saved AS SELECT * FROM es_events WHERE {filter}; DELETE FROM es_events WHERE {filter};")).await;
}

async fn put_back(pool: &PgPool) {
    tamper(pool, "INSERT INTO es_events OVERRIDING SYSTEM VALUE SELECT * FROM saved; DROP TABLE saved;")
        .await;
}

#[tokio::test]
async fn verify_names_altered_removed_and_swapped_events_and_foreign_seals() {
    let db = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(format!("cortex-audit-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_stop, ids) = estate(&db).await;
    let id = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1.clone();

    // keygen: 0600, the public key printed, never over an existing file.
    let (key, public) = keygen(&dir, "seal.pem");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(public.len(), 64, "{public}");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_cortex"))
        .args(["audit", "keygen", "--out", &key])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "an existing key is not overwritten");

    let kept = seal(&db, &key);
    assert_eq!(kept["public_key"], public.as_str());
    assert_eq!(kept["events"], 4, "the four resource events: {kept}");
    assert_eq!(kept["algorithm"], "ed25519");
    // The digest as the README defines it, recomputed from the table without our code.
    let rows: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
        "SELECT tx_id, seq, stream_name, stream_revision, hash FROM es_events ORDER BY tx_id, seq",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut digest = [0u8; 32];
    for (tx_id, seq, stream, revision, hash) in &rows {
        use sha2::Digest as _;
        let position = format!("{tx_id:016x}{seq:016x}");
        let mut h = sha2::Sha256::new();
        h.update(digest);
        h.update(format!("{position}\n{stream}\n{revision}\n{hash}\n"));
        digest = h.finalize().into();
        if position == kept["position"].as_str().unwrap() {
            break;
        }
    }
    assert_eq!(kept["digest"], hex::encode(digest), "the README's definition");
    let kept_file = dir.join("kept.json");
    std::fs::write(&kept_file, kept.to_string()).unwrap();
    let (code, clean) = verify(&db, Some(&kept_file));
    assert_eq!((code, findings(&clean)), (0, vec![]), "{clean}");
    assert_eq!(clean["seals"], 2, "the seal in the log and the kept one");

    // One event's data changed: its stream and revision named; put back: clean again.
    let b = format!("resource-{}", id("b"));
    tamper(&db.pool, &format!("CREATE TABLE original AS SELECT * FROM es_events WHERE stream_name = '{b}'; \
                               UPDATE es_events SET data = json_build_object('name', 'forged') WHERE stream_name = '{b}'")).await;
    let (code, report) = verify(&db, Some(&kept_file));
    assert_eq!(code, 1);
    let f = findings(&report);
    assert!(
        f.iter().any(|f| f["kind"] == "broken_chain"
            && f["stream"] == b.as_str()
            && f["revision"] == 0
            && f["what"] == "hash"),
        "{report}"
    );
    tamper(&db.pool, "UPDATE es_events e SET data = o.data FROM original o \
                      WHERE e.stream_name = o.stream_name AND e.stream_revision = o.stream_revision; DROP TABLE original").await;
    assert_eq!(verify(&db, Some(&kept_file)).0, 0, "clean once put back");

    // A stream's last event removed: the chains cannot see it, the seal names it.
    let c = format!("resource-{}", id("c"));
    take_out(&db.pool, &format!("stream_name = '{c}' AND stream_revision = 1")).await;
    let (code, report) = verify(&db, Some(&kept_file));
    assert_eq!(code, 1);
    let f = findings(&report);
    assert!(!f.iter().any(|f| f["kind"] == "broken_chain"), "no chain is broken: {report}");
    for source in ["log", "kept"] {
        let named = f.iter().any(|f| f["kind"] == "seal_mismatch" && f["source"] == source);
        assert!(named, "the {source} seal: {report}");
    }
    assert!(
        f.iter().any(|f| f["kind"] == "seal_mismatch" && f["stream"] == c.as_str() && f["revision"] == 1),
        "the log's seal names the stream and the missing revision: {report}"
    );
    put_back(&db.pool).await;
    assert_eq!(verify(&db, Some(&kept_file)).0, 0);

    // A whole stream removed.
    let a = format!("resource-{}", id("a"));
    take_out(&db.pool, &format!("stream_name = '{a}'")).await;
    let (code, report) = verify(&db, Some(&kept_file));
    assert_eq!(code, 1);
    assert!(
        findings(&report).iter().any(|f| f["kind"] == "seal_mismatch"
            && f["stream"] == a.as_str()
            && f["detail"].as_str().unwrap().contains("stream is missing")),
        "{report}"
    );
    put_back(&db.pool).await;

    // Two events' data swapped (a's and b's registrations): both chains break there.
    tamper(
        &db.pool,
        &format!(
            "CREATE TABLE original AS SELECT * FROM es_events WHERE stream_name IN ('{a}', '{b}'); \
         UPDATE es_events e SET data = o.data FROM original o \
          WHERE e.stream_revision = 0 AND o.stream_revision = 0 AND e.stream_name IN ('{a}', '{b}') \
            AND o.stream_name IN ('{a}', '{b}') AND o.stream_name <> e.stream_name"
        ),
    )
    .await;
    let (code, report) = verify(&db, Some(&kept_file));
    assert_eq!(code, 1);
    for stream in [&a, &b] {
        assert!(
            findings(&report)
                .iter()
                .any(|f| f["kind"] == "broken_chain" && f["stream"] == stream.as_str() && f["revision"] == 0),
            "{stream}: {report}"
        );
    }
    tamper(&db.pool, "UPDATE es_events e SET data = o.data FROM original o \
                      WHERE e.stream_name = o.stream_name AND e.stream_revision = o.stream_revision; DROP TABLE original").await;
    assert_eq!(verify(&db, Some(&kept_file)).0, 0);

    // A seal signed by another key is reported against the kept seal's key.
    let (other, other_public) = keygen(&dir, "other.pem");
    seal(&db, &other);
    let (code, report) = verify(&db, Some(&kept_file));
    assert_eq!(code, 1);
    assert_eq!(report["trusted_key"], public.as_str());
    assert!(
        findings(&report)
            .iter()
            .any(|f| f["kind"] == "bad_signature" && f["public_key"] == other_public.as_str()),
        "{report}"
    );

    // A kept seal from another database.
    let elsewhere = TestDatabase::create().await;
    let (stop_elsewhere, _) = estate(&elsewhere).await;
    let foreign = seal(&elsewhere, &key);
    drop(stop_elsewhere);
    elsewhere.drop_database().await;
    let foreign_file = dir.join("foreign.json");
    std::fs::write(&foreign_file, foreign.to_string()).unwrap();
    let (code, report) = verify(&db, Some(&foreign_file));
    assert_eq!(code, 1);
    assert!(
        findings(&report).iter().any(|f| f["kind"] == "seal_mismatch" && f["source"] == "kept"),
        "{report}"
    );

    db.drop_database().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn serve_seals_the_log_on_its_period_and_each_seal_follows_the_one_before() {
    let db = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(format!("cortex-audit-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, public) = keygen(&dir, "seal.pem");
    let tenant = json(cortex(&db).args(["tenants", "create", "acme"]).output().unwrap());
    let api_key = tenant["api_key"].as_str().unwrap().to_owned();
    let (server, base) =
        common::serve_with_env(&db, &[], &[("CORTEX_AUDIT_KEY", &key), ("CORTEX_AUDIT_SEAL_SECONDS", "1")]);
    let _stop = Stop(vec![server]);
    wait_until_up(&base).await;
    let client = reqwest::Client::new();
    let seals = || async {
        sqlx::query_as::<_, (sqlx::types::Json<Value>,)>(
            "SELECT data::jsonb FROM es_events WHERE stream_name = 'audit-seals' ORDER BY stream_revision",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(d,)| d.0)
        .collect::<Vec<Value>>()
    };
    for n in 0..3 {
        let record = json!({"id": format!("/subscriptions/s1/resourceGroups/rg/providers/X.Y/z/r{n}"),
                            "name": format!("r{n}"), "type": "X.Y/z", "location": "westeurope"});
        let answer = client
            .post(format!("{base}/v1/resources"))
            .bearer_auth(&api_key)
            .json(&record)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
        let before = seals().await.len();
        common::eventually("a new seal", async || seals().await.len() > before).await;
    }
    let all = seals().await;
    for pair in all.windows(2) {
        assert_eq!(pair[1]["previous"], pair[0]["digest"], "chained: {pair:?}");
        assert_eq!(pair[1]["previous_position"], pair[0]["position"]);
    }
    assert!(all.iter().all(|s| s["public_key"] == public.as_str()));
    let out = cortex(&db).args(["audit", "verify", "--json", "--key", &key]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["seals"], all.len());
    db.drop_database().await;
    let _ = std::fs::remove_dir_all(&dir);
}
