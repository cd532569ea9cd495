//! Tenants and their API keys.
//!
//! A key reads `cx_<key id>_<secret>`: the key id (a UUID, in hex) names the row, the secret
//! (256 random bits, in hex) is stored only as its SHA-256. [`KeyRing`] holds every key's
//! hash in memory, so the hot path checks a request without a database round trip; a key
//! it does not know is looked up once (a key created by `cortex tenants create` in another
//! process works at once), and the whole ring is reloaded periodically so that a revoked key
//! stops working within that period.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use dashmap::DashMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Who a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: Uuid,
    pub key_id: Uuid,
}

impl Caller {
    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("key:{}", self.key_id)
    }
}

/// A new tenant and its first key (printed once; only the hash is kept).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewTenant {
    pub tenant_id: Uuid,
    pub api_key: String,
}

#[derive(Debug, thiserror::Error)]
#[error("postgresql: {step}")]
pub struct TenantStoreError {
    step: &'static str,
    #[source]
    source: sqlx::Error,
}

fn pg(step: &'static str) -> impl FnOnce(sqlx::Error) -> TenantStoreError {
    move |source| TenantStoreError { step, source }
}

/// Creates a tenant with one API key.
#[tracing::instrument(skip(pool))]
pub async fn create_tenant(pool: &PgPool, name: &str) -> Result<NewTenant, TenantStoreError> {
    let tenant_id = Uuid::now_v7();
    let mut tx = cortex_events::postgres::begin(pool).await.map_err(pg("begin"))?;
    sqlx::query("INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)")
        .bind(tenant_id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(pg("insert tenant"))?;
    let api_key = insert_key(&mut tx, tenant_id).await?;
    tx.commit().await.map_err(pg("commit"))?;
    Ok(NewTenant { tenant_id, api_key })
}

async fn insert_key(tx: &mut sqlx::PgConnection, tenant_id: Uuid) -> Result<String, TenantStoreError> {
    let key_id = Uuid::now_v7();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    sqlx::query("INSERT INTO api_keys (key_id, tenant_id, secret_hash) VALUES ($1, $2, $3)")
        .bind(key_id)
        .bind(tenant_id)
        .bind(hash_secret(&secret).to_vec())
        .execute(tx)
        .await
        .map_err(pg("insert api key"))?;
    Ok(format!("cx_{}_{secret}", key_id.simple()))
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// `cx_<32 hex>_<64 hex>` → (key id, secret).
fn parse_key(key: &str) -> Option<(Uuid, &str)> {
    let rest = key.strip_prefix("cx_")?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
enum Entry {
    Key {
        tenant_id: Uuid,
        secret_hash: [u8; 32],
    },
    /// Looked up and not found (or revoked): not asked again before `until`.
    Absent {
        until: Instant,
    },
}

/// Every API key's hash, in memory. Cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    pool: PgPool,
    keys: Arc<DashMap<Uuid, Entry>>,
    negative_ttl: Duration,
}

impl KeyRing {
    /// An empty ring; call [`KeyRing::reload`] to fill it.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, keys: Arc::new(DashMap::new()), negative_ttl: Duration::from_secs(10) }
    }

    /// Replaces the ring with the keys in the database (revoked keys drop out).
    #[tracing::instrument(skip(self))]
    pub async fn reload(&self) -> Result<usize, TenantStoreError> {
        let rows =
            sqlx::query("SELECT key_id, tenant_id, secret_hash FROM api_keys WHERE revoked_at IS NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(pg("load api keys"))?;
        let mut live = std::collections::HashSet::with_capacity(rows.len());
        for row in rows {
            let key_id: Uuid = row.get(0);
            if let Some(entry) = entry_of(row.get(1), row.get(2)) {
                live.insert(key_id);
                self.keys.insert(key_id, entry);
            }
        }
        // Keys no longer live drop out, and so do expired "not found" memories (else every
        // random key id ever tried would stay in memory).
        let now = Instant::now();
        self.keys.retain(|id, e| match e {
            Entry::Key { .. } => live.contains(id),
            Entry::Absent { until } => *until > now,
        });
        Ok(live.len())
    }

    /// The caller a bearer key belongs to; `None` when it is malformed, unknown or revoked.
    pub async fn authenticate(&self, key: &str) -> Result<Option<Caller>, TenantStoreError> {
        let Some((key_id, secret)) = parse_key(key) else { return Ok(None) };
        let cached = self.keys.get(&key_id).map(|e| e.clone());
        let entry = match cached {
            Some(Entry::Absent { until }) if until > Instant::now() => return Ok(None),
            Some(entry @ Entry::Key { .. }) => entry,
            _ => self.fetch(key_id).await?,
        };
        Ok(match entry {
            Entry::Key { tenant_id, secret_hash } if same_digest(&secret_hash, &hash_secret(secret)) => {
                Some(Caller { tenant_id, key_id })
            }
            _ => None,
        })
    }

    #[tracing::instrument(skip(self))]
    async fn fetch(&self, key_id: Uuid) -> Result<Entry, TenantStoreError> {
        let row = sqlx::query(
            "SELECT tenant_id, secret_hash FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg("look up api key"))?;
        let entry = row
            .and_then(|row| entry_of(row.get(0), row.get(1)))
            .unwrap_or(Entry::Absent { until: Instant::now() + self.negative_ttl });
        self.keys.insert(key_id, entry.clone());
        Ok(entry)
    }
}

fn entry_of(tenant_id: Uuid, hash: Vec<u8>) -> Option<Entry> {
    Some(Entry::Key { tenant_id, secret_hash: hash.try_into().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_parses_into_its_id_and_secret() {
        let id = Uuid::now_v7();
        let secret = "ab".repeat(32);
        assert_eq!(parse_key(&format!("cx_{}_{secret}", id.simple())), Some((id, secret.as_str())));
    }

    #[test]
    fn malformed_keys_are_refused_without_a_lookup() {
        let id = Uuid::now_v7().simple().to_string();
        for bad in
            ["", "cx_", "cx_nothex_00", &format!("cx_{id}_short"), &format!("xx_{id}_{}", "a".repeat(64))]
        {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }
}
