//! `GET /v1/policies` and `GET /v1/policies/{policy_id}` from `rm_compliance.policies`: every
//! policy that exists (enabled or not; a deleted one is gone), with the counts of its
//! counted results (DESIGN §3; a disabled policy's counts are zero).

use chrono::{DateTime, Utc};
use cortex_projections::compliance::Counts;
use serde::Serialize;
use serde_json::Value;
use sqlx::{Row, postgres::PgRow};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Prepared, ReadError, Reads, pg};
use crate::cursor::{self, Scope};

/// One page of the policy list, by `policy_id` (UUIDv7: creation order).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyQuery {
    pub limit: u32,
    /// The last policy id of the previous page.
    pub after: Option<Uuid>,
}

impl PolicyQuery {
    /// What a cursor of this list is bound to.
    pub fn scope(tenant_id: Uuid) -> Scope {
        Scope::of(&[&tenant_id.to_string(), "policies"])
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyItem {
    pub policy_id: Uuid,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// low, medium, high or critical.
    pub severity: String,
    /// all or indexed.
    pub mode: String,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub scope: Value,
    /// The Azure `policyRule`.
    #[schema(value_type = Object)]
    pub rule: Value,
    #[schema(value_type = Object)]
    pub parameters: Value,
    #[schema(value_type = Object)]
    pub parameter_values: Value,
    /// Revision of the policy's stream: what `If-Match` on `PUT /v1/policies/{id}` compares.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Counted results by state (resources this policy judged), and their total.
    pub compliant: i64,
    pub non_compliant: i64,
    pub exempt: i64,
    pub total: i64,
    /// (compliant + exempt) / total, a fraction in [0, 1]; `null` when total is 0.
    pub percentage: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyPage {
    pub items: Vec<PolicyItem>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

const SELECT: &str = "SELECT policy_id, name, description, category, severity, mode, enabled, scope, rule, \
     parameters, parameter_values, revision, created_at, updated_at, compliant, non_compliant, exempt \
     FROM rm_compliance.policies";

fn item(row: &PgRow) -> Result<PolicyItem, sqlx::Error> {
    let counts = Counts {
        compliant: row.try_get("compliant")?,
        non_compliant: row.try_get("non_compliant")?,
        exempt: row.try_get("exempt")?,
    };
    Ok(PolicyItem {
        policy_id: row.try_get("policy_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        category: row.try_get("category")?,
        severity: row.try_get("severity")?,
        mode: row.try_get("mode")?,
        enabled: row.try_get("enabled")?,
        scope: row.try_get("scope")?,
        rule: row.try_get("rule")?,
        parameters: row.try_get("parameters")?,
        parameter_values: row.try_get("parameter_values")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        compliant: counts.compliant,
        non_compliant: counts.non_compliant,
        exempt: counts.exempt,
        total: counts.total(),
        percentage: counts.percentage(),
    })
}

impl Reads {
    /// One page of the tenant's policies.
    #[tracing::instrument(skip(self, query), fields(limit = query.limit))]
    pub async fn policies(&self, tenant_id: Uuid, query: &PolicyQuery) -> Result<Prepared, ReadError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE tenant_id = $1 AND ($2::uuid IS NULL OR policy_id > $2) ORDER BY policy_id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(query.after)
        .bind(i64::from(query.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(pg("list policies"))?;
        let mut items =
            rows.iter().map(item).collect::<Result<Vec<_>, _>>().map_err(pg("decode policies"))?;
        let next_cursor = if items.len() > query.limit as usize {
            items.truncate(query.limit as usize);
            items.last().map(|last| cursor::encode(PolicyQuery::scope(tenant_id), &last.policy_id))
        } else {
            None
        };
        Prepared::json(&PolicyPage { items, next_cursor })
    }

    /// One policy. The entity tag is its revision and its counts: all the body depends on.
    #[tracing::instrument(skip(self))]
    pub async fn policy(&self, tenant_id: Uuid, policy_id: Uuid) -> Result<Prepared, ReadError> {
        let row = sqlx::query(&format!("{SELECT} WHERE tenant_id = $1 AND policy_id = $2"))
            .bind(tenant_id)
            .bind(policy_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg("read policy"))?
            .ok_or(ReadError::NotFound { what: "policy" })?;
        let policy = item(&row).map_err(pg("decode policy"))?;
        let tag =
            format!("{}-{}-{}-{}", policy.revision, policy.compliant, policy.non_compliant, policy.exempt);
        Prepared::json_tagged(&policy, &tag)
    }
}
