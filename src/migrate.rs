//! `cortex migrate`: create the database when missing, then apply `migrations/`.

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::{Postgres, migrate::MigrateDatabase, postgres::PgPoolOptions};

use crate::config::DatabaseArgs;

/// Creates the database if needed and applies every pending migration; answers a
/// one-line summary.
#[tracing::instrument(name = "cortex.migrate", skip_all)]
pub async fn run(db: &DatabaseArgs) -> anyhow::Result<String> {
    let url = db.database_url.expose_secret();
    let created = if Postgres::database_exists(url).await.context("checking whether the database exists")? {
        false
    } else {
        Postgres::create_database(url).await.context("creating the database")?;
        true
    };
    let pool =
        PgPoolOptions::new().max_connections(2).connect(url).await.context("connecting to the database")?;
    let migrator = &cortex_events::postgres::MIGRATOR;
    let before = applied_count(&pool).await;
    migrator.run(&pool).await.context("applying migrations")?;
    let after = applied_count(&pool).await;
    pool.close().await;
    let total = migrator.iter().count();
    Ok(format!(
        "{}{} migration(s) applied now, {total} in all",
        if created { "created the database; " } else { "" },
        after.saturating_sub(before)
    ))
}

async fn applied_count(pool: &sqlx::PgPool) -> usize {
    // Absent before the first run: the table is created by the migrator itself.
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| n as usize)
}
