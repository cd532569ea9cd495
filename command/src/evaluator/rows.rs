//! The evaluator's working state in PostgreSQL (`migrations/0006_evaluator.sql`, schema
//! `rm_evaluator`, on the runner's `search_path`): the row types, set-based loads and the
//! end-of-batch write.

use chrono::{DateTime, Utc};
use cortex_events::catalog::{ComplianceState, PolicyMode, PolicyScope, Tags};
use serde_json::{Map, Value};
use sqlx::{PgConnection, Row, postgres::PgRow, types::Json};
use uuid::Uuid;

use super::EvalError;

/// A resource as its events left it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    pub tenant_id: Uuid,
    pub resource_id: Uuid,
    pub revision: u64,
    pub cloud_id: String,
    pub name: String,
    pub resource_type: String,
    pub location: String,
    pub kind: Option<String>,
    pub tags: Tags,
    pub properties: Map<String, Value>,
    pub subscription_id: String,
    pub resource_group: String,
    pub deleted: bool,
}

impl ResourceRow {
    /// Whether the record is a resource group (either of Azure's spellings of the type).
    pub fn is_group(&self) -> bool {
        self.resource_type.eq_ignore_ascii_case("Microsoft.Resources/resourceGroups")
            || self.resource_type.eq_ignore_ascii_case("Microsoft.Resources/subscriptions/resourceGroups")
    }

    /// The key of the group this resource is in: (tenant, subscription, group), lower-cased.
    pub fn group_key(&self) -> GroupKey {
        (self.tenant_id, self.subscription_id.to_lowercase(), self.resource_group.to_lowercase())
    }

    /// The key under which this resource, a group, is found: (tenant, subscription, name).
    pub fn own_group_key(&self) -> GroupKey {
        (self.tenant_id, self.subscription_id.to_lowercase(), self.name.to_lowercase())
    }

    /// The record the rule engine evaluates.
    pub fn to_rules(&self) -> cortex_rules::Resource {
        cortex_rules::Resource {
            id: self.cloud_id.clone(),
            name: self.name.clone(),
            resource_type: self.resource_type.clone(),
            location: self.location.clone(),
            kind: self.kind.clone(),
            tags: self.tags.clone(),
            properties: Value::Object(self.properties.clone()),
            subscription_id: Some(self.subscription_id.clone()),
            resource_group: Some(self.resource_group.clone()),
            extra: Map::new(),
        }
    }

    /// What `resourceGroup()` reads of this resource, a group.
    pub fn group_info(&self) -> cortex_rules::ResourceGroupInfo {
        cortex_rules::ResourceGroupInfo {
            name: self.name.clone(),
            location: Some(self.location.clone()).filter(|l| !l.is_empty()),
            tags: self.tags.clone(),
        }
    }
}

/// (tenant, subscription, group name), lower-cased.
pub type GroupKey = (Uuid, String, String);

/// A policy with the rule that decides its results.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    pub tenant_id: Uuid,
    pub policy_id: Uuid,
    pub rule_revision: u64,
    pub mode: PolicyMode,
    pub rule: Value,
    pub parameters: Map<String, Value>,
    pub parameter_values: Map<String, Value>,
    pub scope: PolicyScope,
    pub enabled: bool,
    pub deleted: bool,
}

impl PolicyRow {
    /// Whether the evaluator evaluates it.
    pub fn is_live(&self) -> bool {
        self.enabled && !self.deleted
    }
}

/// An exemption granted and not revoked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemptionRow {
    pub tenant_id: Uuid,
    pub exemption_id: Uuid,
    pub policy_id: Uuid,
    pub resource_id: Uuid,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub expired: bool,
}

impl ExemptionRow {
    /// Whether it exempts its pair at `now`.
    pub fn applies_at(&self, now: DateTime<Utc>) -> bool {
        !self.expired && self.expires_at.is_none_or(|at| at > now)
    }
}

/// The evaluator's last result for one (resource, policy).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub state: ComplianceState,
    pub reason: Option<String>,
    pub policy_revision: Option<u64>,
}

/// A stored value this code does not know (a table written by a newer version).
fn bad(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {value:?}").into())
}

fn rev(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn irev(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub const RESOURCE_COLUMNS: &str = "r.tenant_id, r.resource_id, r.revision, r.cloud_id, r.name, r.resource_type, \
     r.location, r.kind, r.tags, r.properties, r.subscription_id, r.resource_group, r.deleted";

/// A resource row from [`RESOURCE_COLUMNS`] (at the start of the row).
pub fn resource_of(row: &PgRow) -> Result<ResourceRow, sqlx::Error> {
    Ok(ResourceRow {
        tenant_id: row.try_get(0)?,
        resource_id: row.try_get(1)?,
        revision: rev(row.try_get(2)?),
        cloud_id: row.try_get(3)?,
        name: row.try_get(4)?,
        resource_type: row.try_get(5)?,
        location: row.try_get(6)?,
        kind: row.try_get(7)?,
        tags: row.try_get::<Json<Tags>, _>(8)?.0,
        properties: row.try_get::<Json<Map<String, Value>>, _>(9)?.0,
        subscription_id: row.try_get(10)?,
        resource_group: row.try_get(11)?,
        deleted: row.try_get(12)?,
    })
}

/// A decision from three columns starting at `at` (state, reason, policy revision), if any.
pub fn decision_at(row: &PgRow, at: usize) -> Result<Option<Decision>, sqlx::Error> {
    let state: Option<String> = row.try_get(at)?;
    Ok(match state {
        None => None,
        Some(state) => Some(Decision {
            state: ComplianceState::parse(&state).ok_or_else(|| bad("decision state", &state))?,
            reason: row.try_get(at + 1)?,
            policy_revision: row.try_get::<Option<i64>, _>(at + 2)?.map(rev),
        }),
    })
}

fn pg(step: &'static str) -> impl FnOnce(sqlx::Error) -> EvalError {
    move |source| EvalError::Postgres { step, source }
}

/// The statement of [`resources`]: one primary-key probe per id, planned at each execution
/// (an unnamed statement: `persistent(false)`).
///
/// As `resource_id = ANY($2)`, a custom plan without statistics (autovacuum off) counted each
/// of 1,000 ids as 0.5 % of the table and read the whole tenant: 1.06 s for one batch at
/// c29d881 in `ops/bench/commands` (issue 22). As probes with a cached generic plan, the plan
/// made while the table was empty cannot tell the primary key from the group index (both lead
/// with `tenant_id`, and empty they cost the same): PostgreSQL took the group index and
/// filtered on `resource_id`, reading the whole tenant for every id once the table had grown.
/// Planned anew, the probes know the table's size and take the primary key. `OFFSET 0` keeps
/// PostgreSQL from flattening them into a join (`LIMIT 1` would invite a walk of another index
/// hoping for an early match).
pub(crate) fn resources_by_id() -> String {
    format!(
        "SELECT {RESOURCE_COLUMNS} FROM unnest($2::uuid[]) AS k(resource_id) CROSS JOIN LATERAL \
           (SELECT * FROM resources WHERE tenant_id = $1 AND resource_id = k.resource_id OFFSET 0) r"
    )
}

#[tracing::instrument(name = "evaluator.load_resources", skip_all, fields(n = ids.len()))]
pub async fn resources(
    conn: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<ResourceRow>, EvalError> {
    let rows = sqlx::query(&resources_by_id())
        .persistent(false)
        .bind(tenant)
        .bind(ids)
        .fetch_all(conn)
        .await
        .map_err(pg("load resources"))?;
    rows.iter().map(resource_of).collect::<Result<_, _>>().map_err(pg("decode resources"))
}

/// The registered (not deleted) group with this key, if any (the first by id if two share
/// it). No `ORDER BY … LIMIT 1` in SQL: with it the planner may walk the primary key through
/// every resource of the tenant instead of probing the groups index.
#[tracing::instrument(name = "evaluator.load_group", skip_all)]
pub async fn group(conn: &mut PgConnection, key: &GroupKey) -> Result<Option<ResourceRow>, EvalError> {
    let rows = sqlx::query(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = $1 AND lower(r.subscription_id) = $2 \
           AND lower(r.name) = $3 AND r.is_group AND NOT r.deleted"
    ))
    .bind(key.0)
    .bind(&key.1)
    .bind(&key.2)
    .fetch_all(conn)
    .await
    .map_err(pg("load a resource group"))?;
    let mut found =
        rows.iter().map(resource_of).collect::<Result<Vec<_>, _>>().map_err(pg("decode a resource group"))?;
    found.sort_by_key(|g| g.resource_id);
    Ok(found.into_iter().next())
}

/// How many resources (not deleted) a tenant has: the total of a fan-out's progress.
#[tracing::instrument(name = "evaluator.count_resources", skip_all)]
pub async fn count_resources(conn: &mut PgConnection, tenant: Uuid) -> Result<i64, EvalError> {
    sqlx::query_scalar("SELECT count(*) FROM resources WHERE tenant_id = $1 AND NOT deleted")
        .bind(tenant)
        .fetch_one(conn)
        .await
        .map_err(pg("count a tenant's resources"))
}

/// Every registered (not deleted) group of a tenant, by id.
#[tracing::instrument(name = "evaluator.load_groups", skip_all)]
pub async fn groups(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<ResourceRow>, EvalError> {
    let rows = sqlx::query(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = $1 AND r.is_group AND NOT r.deleted \
         ORDER BY r.resource_id"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await
    .map_err(pg("load a tenant's resource groups"))?;
    rows.iter().map(resource_of).collect::<Result<_, _>>().map_err(pg("decode resource groups"))
}

/// The ids of the members (not deleted) of a group.
#[tracing::instrument(name = "evaluator.load_members", skip_all)]
pub async fn members(conn: &mut PgConnection, key: &GroupKey) -> Result<Vec<Uuid>, EvalError> {
    sqlx::query_scalar(
        "SELECT resource_id FROM resources WHERE tenant_id = $1 AND lower(subscription_id) = $2 \
           AND lower(resource_group) = $3 AND NOT deleted AND NOT is_group ORDER BY resource_id",
    )
    .bind(key.0)
    .bind(&key.1)
    .bind(&key.2)
    .fetch_all(conn)
    .await
    .map_err(pg("load group members"))
}

#[tracing::instrument(name = "evaluator.load_policies", skip_all)]
pub async fn policies(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<PolicyRow>, EvalError> {
    let rows = sqlx::query(
        "SELECT tenant_id, policy_id, rule_revision, mode, rule, parameters, parameter_values, scope, enabled, \
                deleted FROM policies WHERE tenant_id = $1 ORDER BY policy_id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await
    .map_err(pg("load policies"))?;
    let decode = |row: &PgRow| -> Result<PolicyRow, sqlx::Error> {
        Ok(PolicyRow {
            tenant_id: row.try_get(0)?,
            policy_id: row.try_get(1)?,
            rule_revision: rev(row.try_get(2)?),
            mode: {
                let mode: String = row.try_get(3)?;
                PolicyMode::parse(&mode).ok_or_else(|| bad("policy mode", &mode))?
            },
            rule: row.try_get::<Json<Value>, _>(4)?.0,
            parameters: row.try_get::<Json<Map<String, Value>>, _>(5)?.0,
            parameter_values: row.try_get::<Json<Map<String, Value>>, _>(6)?.0,
            scope: row.try_get::<Json<PolicyScope>, _>(7)?.0,
            enabled: row.try_get(8)?,
            deleted: row.try_get(9)?,
        })
    };
    rows.iter().map(decode).collect::<Result<_, _>>().map_err(pg("decode policies"))
}

const EXEMPTION_COLUMNS: &str =
    "tenant_id, exemption_id, policy_id, resource_id, reason, expires_at, expired";

fn exemption_of(row: &PgRow) -> Result<ExemptionRow, sqlx::Error> {
    Ok(ExemptionRow {
        tenant_id: row.try_get(0)?,
        exemption_id: row.try_get(1)?,
        policy_id: row.try_get(2)?,
        resource_id: row.try_get(3)?,
        reason: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        expired: row.try_get(6)?,
    })
}

/// The exemptions of a tenant not yet expired (expired ones decide nothing any more).
#[tracing::instrument(name = "evaluator.load_exemptions", skip_all)]
pub async fn exemptions(conn: &mut PgConnection, tenant: Uuid) -> Result<Vec<ExemptionRow>, EvalError> {
    let rows = sqlx::query(&format!(
        "SELECT {EXEMPTION_COLUMNS} FROM exemptions WHERE tenant_id = $1 AND NOT expired"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await
    .map_err(pg("load exemptions"))?;
    rows.iter().map(exemption_of).collect::<Result<_, _>>().map_err(pg("decode exemptions"))
}

/// Exemptions not yet expired whose time is at or before `until`, earliest first.
#[tracing::instrument(name = "evaluator.load_due", skip_all)]
pub async fn due_exemptions(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
) -> Result<Vec<ExemptionRow>, EvalError> {
    let rows = sqlx::query(&format!(
        "SELECT {EXEMPTION_COLUMNS} FROM exemptions WHERE NOT expired AND expires_at <= $1 \
         ORDER BY expires_at, tenant_id, exemption_id"
    ))
    .bind(until)
    .fetch_all(conn)
    .await
    .map_err(pg("load due exemptions"))?;
    rows.iter().map(exemption_of).collect::<Result<_, _>>().map_err(pg("decode exemptions"))
}

/// When the next exemption expires.
#[tracing::instrument(name = "evaluator.next_expiry", skip_all)]
pub async fn next_expiry(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, EvalError> {
    sqlx::query_scalar("SELECT min(expires_at) FROM exemptions WHERE NOT expired")
        .fetch_one(conn)
        .await
        .map_err(pg("find the next expiry"))
}

/// Decisions as (resource, policy, decision), and stream revisions as (resource, revision).
pub type StoredDecisions = (Vec<(Uuid, Uuid, Decision)>, Vec<(Uuid, u64)>);

/// A page row: the resource, its decision for the policy, its compliance stream revision.
pub type PageRow = (ResourceRow, Option<Decision>, Option<u64>);

/// Every decision of these resources, with each one's compliance stream revision.
#[tracing::instrument(name = "evaluator.load_decisions", skip_all, fields(n = ids.len()))]
pub async fn decisions(
    conn: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<StoredDecisions, EvalError> {
    // One primary-key probe per resource. `resource_id = ANY($2)` let a plan made without
    // statistics (autovacuum off) count each of 1,000 ids as 0.5 % of the table and read
    // the whole tenant instead (68 ms a batch at 300,000 decisions); the `ORDER BY` keeps
    // PostgreSQL from flattening the probes into such a join (issue 22).
    let rows = sqlx::query(
        "SELECT d.resource_id, d.policy_id, d.state, d.reason, d.policy_revision \
           FROM unnest($2::uuid[]) AS k(resource_id) \
           CROSS JOIN LATERAL (SELECT resource_id, policy_id, state, reason, policy_revision FROM decisions \
                               WHERE tenant_id = $1 AND resource_id = k.resource_id ORDER BY policy_id) d",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(pg("load decisions"))?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let decision = decision_at(row, 2).map_err(pg("decode decisions"))?;
        if let Some(decision) = decision {
            found.push((
                row.try_get(0).map_err(pg("decode decisions"))?,
                row.try_get(1).map_err(pg("decode decisions"))?,
                decision,
            ));
        }
    }
    let revisions = sqlx::query("SELECT resource_id, revision FROM streams WHERE resource_id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
        .map_err(pg("load stream revisions"))?
        .iter()
        .map(|row| Ok((row.try_get(0)?, rev(row.try_get(1)?))))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(pg("decode stream revisions"))?;
    Ok((found, revisions))
}

/// One page of a tenant's resources (not deleted) after `after`, by id, each with the
/// decision for `policy` and its compliance stream revision.
#[tracing::instrument(name = "evaluator.page", skip_all)]
pub async fn page(
    conn: &mut PgConnection,
    tenant: Uuid,
    policy: Uuid,
    after: Uuid,
    limit: usize,
) -> Result<Vec<PageRow>, EvalError> {
    let rows = sqlx::query(&format!(
        // The page first (a primary-key range), then one index probe per row for its decision
        // and stream revision: `LIMIT 1` keeps the planner from turning the lateral lookups
        // into joins over the whole decisions table (millions of rows), which it chose for
        // plain joins before statistics existed.
        "SELECT {RESOURCE_COLUMNS}, d.state, d.reason, d.policy_revision, s.revision FROM \
           (SELECT * FROM resources WHERE tenant_id = $1 AND resource_id > $3 AND NOT deleted \
             ORDER BY resource_id LIMIT $4) r \
         LEFT JOIN LATERAL (SELECT state, reason, policy_revision FROM decisions \
             WHERE tenant_id = r.tenant_id AND resource_id = r.resource_id AND policy_id = $2 LIMIT 1) d ON true \
         LEFT JOIN LATERAL (SELECT revision FROM streams WHERE resource_id = r.resource_id LIMIT 1) s ON true \
         ORDER BY r.resource_id"
    ))
    .bind(tenant)
    .bind(policy)
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await
    .map_err(pg("load a page of resources"))?;
    rows.iter()
        .map(|row| {
            Ok((resource_of(row)?, decision_at(row, 13)?, row.try_get::<Option<i64>, _>(16)?.map(rev)))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(pg("decode a page of resources"))
}

/// Everything a batch changed, written in one statement per table.
#[derive(Debug, Default)]
pub struct Writes<'a> {
    pub resources: Vec<&'a ResourceRow>,
    pub policies: Vec<&'a PolicyRow>,
    pub exemptions: Vec<&'a ExemptionRow>,
    pub removed_exemptions: Vec<(Uuid, Uuid)>,
    pub decisions: Vec<(Uuid, Uuid, Uuid, &'a Decision)>,
    pub streams: Vec<(Uuid, u64)>,
}

#[tracing::instrument(name = "evaluator.write", skip_all, fields(
    resources = w.resources.len(), decisions = w.decisions.len(), streams = w.streams.len()))]
pub async fn write(conn: &mut PgConnection, w: &Writes<'_>) -> Result<(), EvalError> {
    if !w.resources.is_empty() {
        let r = &w.resources;
        sqlx::query(
            "INSERT INTO resources (tenant_id, resource_id, revision, cloud_id, name, resource_type, location, kind, \
                                    tags, properties, subscription_id, resource_group, deleted) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
                                  $7::text[], $8::text[], $9::jsonb[], $10::jsonb[], $11::text[], $12::text[], $13::bool[]) \
             ON CONFLICT (tenant_id, resource_id) DO UPDATE SET revision = EXCLUDED.revision, \
                cloud_id = EXCLUDED.cloud_id, name = EXCLUDED.name, resource_type = EXCLUDED.resource_type, \
                location = EXCLUDED.location, kind = EXCLUDED.kind, tags = EXCLUDED.tags, \
                properties = EXCLUDED.properties, subscription_id = EXCLUDED.subscription_id, \
                resource_group = EXCLUDED.resource_group, deleted = EXCLUDED.deleted",
        )
        .bind(r.iter().map(|x| x.tenant_id).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.resource_id).collect::<Vec<_>>())
        .bind(r.iter().map(|x| irev(x.revision)).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.cloud_id.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.name.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.resource_type.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.location.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.kind.as_deref()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| Json(&x.tags)).collect::<Vec<_>>())
        .bind(r.iter().map(|x| Json(&x.properties)).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.subscription_id.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.resource_group.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.deleted).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(pg("write resources"))?;
    }
    if !w.policies.is_empty() {
        let p = &w.policies;
        sqlx::query(
            "INSERT INTO policies (tenant_id, policy_id, rule_revision, mode, rule, parameters, parameter_values, \
                                   scope, enabled, deleted) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::jsonb[], $6::jsonb[], \
                                  $7::jsonb[], $8::jsonb[], $9::bool[], $10::bool[]) \
             ON CONFLICT (tenant_id, policy_id) DO UPDATE SET rule_revision = EXCLUDED.rule_revision, \
                mode = EXCLUDED.mode, rule = EXCLUDED.rule, parameters = EXCLUDED.parameters, \
                parameter_values = EXCLUDED.parameter_values, scope = EXCLUDED.scope, \
                enabled = EXCLUDED.enabled, deleted = EXCLUDED.deleted",
        )
        .bind(p.iter().map(|x| x.tenant_id).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.policy_id).collect::<Vec<_>>())
        .bind(p.iter().map(|x| irev(x.rule_revision)).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.mode.as_str()).collect::<Vec<_>>())
        .bind(p.iter().map(|x| Json(&x.rule)).collect::<Vec<_>>())
        .bind(p.iter().map(|x| Json(&x.parameters)).collect::<Vec<_>>())
        .bind(p.iter().map(|x| Json(&x.parameter_values)).collect::<Vec<_>>())
        .bind(p.iter().map(|x| Json(&x.scope)).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.enabled).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.deleted).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(pg("write policies"))?;
    }
    if !w.removed_exemptions.is_empty() {
        sqlx::query(
            "DELETE FROM exemptions e USING UNNEST($1::uuid[], $2::uuid[]) AS x(tenant_id, exemption_id) \
             WHERE e.tenant_id = x.tenant_id AND e.exemption_id = x.exemption_id",
        )
        .bind(w.removed_exemptions.iter().map(|x| x.0).collect::<Vec<_>>())
        .bind(w.removed_exemptions.iter().map(|x| x.1).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(pg("remove exemptions"))?;
    }
    if !w.exemptions.is_empty() {
        let e = &w.exemptions;
        sqlx::query(
            "INSERT INTO exemptions (tenant_id, exemption_id, policy_id, resource_id, reason, expires_at, expired) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::timestamptz[], \
                                  $7::bool[]) \
             ON CONFLICT (tenant_id, exemption_id) DO UPDATE SET policy_id = EXCLUDED.policy_id, \
                resource_id = EXCLUDED.resource_id, reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at, \
                expired = EXCLUDED.expired",
        )
        .bind(e.iter().map(|x| x.tenant_id).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.exemption_id).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.policy_id).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.resource_id).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.reason.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.expires_at).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.expired).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(pg("write exemptions"))?;
    }
    if !w.decisions.is_empty() {
        let d = &w.decisions;
        sqlx::query(
            "INSERT INTO decisions (tenant_id, resource_id, policy_id, state, reason, policy_revision) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[]) \
             ON CONFLICT (tenant_id, resource_id, policy_id) DO UPDATE SET state = EXCLUDED.state, \
                reason = EXCLUDED.reason, policy_revision = EXCLUDED.policy_revision",
        )
        .bind(d.iter().map(|x| x.0).collect::<Vec<_>>())
        .bind(d.iter().map(|x| x.1).collect::<Vec<_>>())
        .bind(d.iter().map(|x| x.2).collect::<Vec<_>>())
        .bind(d.iter().map(|x| x.3.state.as_str()).collect::<Vec<_>>())
        .bind(d.iter().map(|x| x.3.reason.as_deref()).collect::<Vec<_>>())
        .bind(d.iter().map(|x| x.3.policy_revision.map(irev)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(pg("write decisions"))?;
    }
    if !w.streams.is_empty() {
        sqlx::query(
            "INSERT INTO streams (resource_id, revision) SELECT * FROM UNNEST($1::uuid[], $2::bigint[]) \
             ON CONFLICT (resource_id) DO UPDATE SET revision = EXCLUDED.revision",
        )
        .bind(w.streams.iter().map(|x| x.0).collect::<Vec<_>>())
        .bind(w.streams.iter().map(|x| irev(x.1)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(pg("write stream revisions"))?;
    }
    Ok(())
}
