//! `cortex migrate` against a real PostgreSQL: creates a missing database, then is a no-op.

use std::process::Command;

use cortex_events::testing::replace_database;
use sqlx::{Connection, Executor, PgConnection};

fn admin_url() -> String {
    std::env::var("CORTEX_TEST_DATABASE_URL")
        .unwrap_or_else(|_| cortex_events::testing::DEFAULT_ADMIN_URL.into())
}

fn migrate(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cortex"))
        .arg("migrate")
        .env("DATABASE_URL", url)
        .output()
        .expect("run cortex")
}

#[tokio::test]
async fn migrate_creates_a_missing_database_and_is_idempotent() {
    let name = format!("cortex_test_{}", uuid::Uuid::now_v7().simple());
    let url = replace_database(&admin_url(), &name);

    let first = migrate(&url);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.starts_with("created the database;"), "{out}");

    let mut conn = PgConnection::connect(&url).await.expect("the database exists now");
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'es_events'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 1, "the event store table is there");
    conn.close().await.unwrap();

    let again = migrate(&url);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("0 migration(s) applied now"));

    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    admin.execute(format!("DROP DATABASE \"{name}\" WITH (FORCE)").as_str()).await.unwrap();
}

#[test]
fn migrate_against_an_unreachable_server_fails_with_the_cause() {
    let out = migrate("postgres://postgres@127.0.0.1:1/nowhere");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checking whether the database exists") && err.contains("refused"), "{err}");
}
