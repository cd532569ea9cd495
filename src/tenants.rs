//! `cortex tenants create NAME`: a tenant and its first API key, printed once as JSON.

use anyhow::Context;

use crate::config::DatabaseArgs;

#[tracing::instrument(name = "cortex.tenants.create", skip(db))]
pub async fn create(db: &DatabaseArgs, name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!name.trim().is_empty() && name.len() <= 200, "a tenant name is 1 to 200 characters");
    let pool = db.pool().await?;
    let tenant = cortex_command::tenants::create_tenant(&pool, name).await.context("creating the tenant")?;
    pool.close().await;
    Ok(serde_json::to_string(&tenant)?)
}
