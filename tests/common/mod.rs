//! What the tests of the `cortex` binary share: running it against a test database, and
//! `cortex serve` on a free port.

#![allow(dead_code)] // each test binary uses its own subset

use std::{
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use cortex_events::testing::TestDatabase;
use serde_json::Value;

pub fn cortex(db: &TestDatabase) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cortex"));
    // Pools of 8: a full `cortex serve` may open up to 4 × this + 3 connections, and two
    // tests run at once against a server that allows 100 (two at the default 16: up to 134).
    c.env("DATABASE_URL", &db.url)
        .env("CORTEX_DB_MAX_CONNECTIONS", "8")
        .env("CORTEX_LOG", "warn")
        .env_remove("CORTEX_NATS_URL")
        .env_remove("CORTEX_CACHE_URL");
    c
}

pub fn json(out: Output) -> Value {
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

pub fn serve(db: &TestDatabase, extra: &[&str]) -> (Child, String) {
    serve_with_env(db, extra, &[])
}

/// `cortex serve` with extra arguments and environment variables, on a free port: the child
/// and its base URL (not yet up: see [`wait_until_up`]).
pub fn serve_with_env(db: &TestDatabase, extra: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = cortex(db)
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

/// Kills (and reaps) the processes it holds when dropped, so that a failing test leaves no
/// server behind.
pub struct Stop(pub Vec<Child>);

impl Drop for Stop {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn wait_until_up(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cortex serve did not come up at {base}");
}

pub async fn status_of(db: &TestDatabase, name: &str) -> Value {
    let all = json(cortex(db).args(["projections", "status", "--json"]).output().unwrap());
    all.as_array().unwrap().iter().find(|s| s["projection"] == name).cloned().unwrap_or(Value::Null)
}

pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
