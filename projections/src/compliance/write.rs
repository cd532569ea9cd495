//! Writing a batch's [`Delta`] back: one set-based statement per table, each skipped when it
//! has nothing to write. Only this projection's runner writes these tables (one active
//! runner, compare-and-set checkpoint), so reads and writes of one batch cannot interleave
//! with another's.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    model::Delta,
    rows::{Counts, severity_text},
};
use crate::projector::{ApplyError, pg};

#[tracing::instrument(name = "projection.compliance.write", skip_all, fields(
    results = delta.results.len(), resources = delta.resources.len(), policies = delta.policies.len()))]
pub(super) async fn write(conn: &mut PgConnection, delta: &Delta<'_>) -> Result<(), ApplyError> {
    results(conn, delta).await.map_err(pg("write results"))?;
    resources(conn, delta).await.map_err(pg("write resources"))?;
    policies(conn, delta).await.map_err(pg("write policies"))?;
    summary(conn, delta).await.map_err(pg("write summary"))?;
    tenant_totals(conn, delta).await.map_err(pg("write tenant totals"))?;
    trend(conn, delta).await.map_err(pg("write trend"))?;
    Ok(())
}

/// Counts as three columns.
#[derive(Default)]
struct CountColumns {
    compliant: Vec<i64>,
    non_compliant: Vec<i64>,
    exempt: Vec<i64>,
}

impl CountColumns {
    fn push(&mut self, c: Counts) {
        self.compliant.push(c.compliant);
        self.non_compliant.push(c.non_compliant);
        self.exempt.push(c.exempt);
    }
}

#[tracing::instrument(name = "projection.compliance.write_results", skip_all)]
async fn results(conn: &mut PgConnection, delta: &Delta<'_>) -> Result<(), sqlx::Error> {
    if delta.results.is_empty() {
        return Ok(());
    }
    let rows = &delta.results;
    sqlx::query(
        "INSERT INTO results (tenant_id, resource_id, policy_id, state, reason, source, policy_revision, \
                              resource_revision, evaluated_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
                              $7::bigint[], $8::bigint[], $9::timestamptz[]) \
         ON CONFLICT (tenant_id, resource_id, policy_id) DO UPDATE SET state = EXCLUDED.state, \
            reason = EXCLUDED.reason, source = EXCLUDED.source, policy_revision = EXCLUDED.policy_revision, \
            resource_revision = EXCLUDED.resource_revision, evaluated_at = EXCLUDED.evaluated_at",
    )
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.resource_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.policy_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.policy_revision).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.resource_revision).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.evaluated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "projection.compliance.write_resources", skip_all)]
async fn resources(conn: &mut PgConnection, delta: &Delta<'_>) -> Result<(), sqlx::Error> {
    if delta.resources.is_empty() {
        return Ok(());
    }
    let rows = &delta.resources;
    let mut counts = CountColumns::default();
    rows.iter().for_each(|r| counts.push(r.counts));
    sqlx::query(
        "INSERT INTO resources (tenant_id, resource_id, subscription_id, resource_type, deleted, compliant, \
                                non_compliant, exempt) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bool[], $6::bigint[], \
                              $7::bigint[], $8::bigint[]) \
         ON CONFLICT (tenant_id, resource_id) DO UPDATE SET subscription_id = EXCLUDED.subscription_id, \
            resource_type = EXCLUDED.resource_type, deleted = EXCLUDED.deleted, compliant = EXCLUDED.compliant, \
            non_compliant = EXCLUDED.non_compliant, exempt = EXCLUDED.exempt",
    )
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.resource_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.subscription_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.resource_type.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.deleted).collect::<Vec<_>>())
    .bind(counts.compliant)
    .bind(counts.non_compliant)
    .bind(counts.exempt)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the removed policies and upserts the changed ones (disjoint sets) in one statement.
#[tracing::instrument(name = "projection.compliance.write_policies", skip_all)]
async fn policies(conn: &mut PgConnection, delta: &Delta<'_>) -> Result<(), sqlx::Error> {
    if delta.policies.is_empty() && delta.removed_policies.is_empty() {
        return Ok(());
    }
    let rows = &delta.policies;
    let mut counts = CountColumns::default();
    rows.iter().for_each(|p| counts.push(p.counts));
    let (gone_tenants, gone_ids): (Vec<Uuid>, Vec<Uuid>) = delta.removed_policies.iter().copied().unzip();
    let json = |f: fn(&super::PolicyRow) -> &Value| rows.iter().map(|p| f(p).clone()).collect::<Vec<Value>>();
    sqlx::query(
        "WITH gone AS (DELETE FROM policies p USING UNNEST($1::uuid[], $2::uuid[]) AS g(tenant_id, policy_id) \
                        WHERE p.tenant_id = g.tenant_id AND p.policy_id = g.policy_id) \
         INSERT INTO policies (tenant_id, policy_id, name, description, category, severity, mode, enabled, scope, \
                               rule, parameters, parameter_values, revision, created_at, updated_at, compliant, \
                               non_compliant, exempt) \
         SELECT * FROM UNNEST($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
                              $10::bool[], $11::jsonb[], $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::bigint[], \
                              $16::timestamptz[], $17::timestamptz[], $18::bigint[], $19::bigint[], $20::bigint[]) \
         ON CONFLICT (tenant_id, policy_id) DO UPDATE SET name = EXCLUDED.name, \
            description = EXCLUDED.description, category = EXCLUDED.category, severity = EXCLUDED.severity, \
            mode = EXCLUDED.mode, enabled = EXCLUDED.enabled, scope = EXCLUDED.scope, rule = EXCLUDED.rule, \
            parameters = EXCLUDED.parameters, parameter_values = EXCLUDED.parameter_values, \
            revision = EXCLUDED.revision, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
            compliant = EXCLUDED.compliant, non_compliant = EXCLUDED.non_compliant, exempt = EXCLUDED.exempt",
    )
    .bind(gone_tenants)
    .bind(gone_ids)
    .bind(rows.iter().map(|p| p.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| p.policy_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| p.description.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| p.category.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| severity_text(p.severity)).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| p.mode.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| p.enabled).collect::<Vec<_>>())
    .bind(json(|p| &p.scope))
    .bind(json(|p| &p.rule))
    .bind(json(|p| &p.parameters))
    .bind(json(|p| &p.parameter_values))
    .bind(rows.iter().map(|p| p.revision).collect::<Vec<_>>())
    .bind(rows.iter().map(|p| p.created_at).collect::<Vec<DateTime<Utc>>>())
    .bind(rows.iter().map(|p| p.updated_at).collect::<Vec<DateTime<Utc>>>())
    .bind(counts.compliant)
    .bind(counts.non_compliant)
    .bind(counts.exempt)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds the model's differences to the summary rows: a row that reaches zero is deleted, a
/// group without a row gets one. The three parts touch disjoint rows, so one statement (one
/// snapshot) does it.
#[tracing::instrument(name = "projection.compliance.write_summary", skip_all, fields(groups = delta.summary.len()))]
async fn summary(conn: &mut PgConnection, delta: &Delta<'_>) -> Result<(), sqlx::Error> {
    if delta.summary.is_empty() {
        return Ok(());
    }
    let mut counts = CountColumns::default();
    delta.summary.iter().for_each(|(_, c)| counts.push(*c));
    sqlx::query(
        "WITH d AS (SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
                                         $6::bigint[]) \
                      AS d(tenant_id, subscription_id, resource_type, compliant, non_compliant, exempt)), \
              s AS (SELECT s.tenant_id, s.subscription_id, s.resource_type, \
                           s.compliant + d.compliant AS compliant, s.non_compliant + d.non_compliant AS non_compliant, \
                           s.exempt + d.exempt AS exempt \
                      FROM summary s JOIN d USING (tenant_id, subscription_id, resource_type)), \
              updated AS (UPDATE summary t SET compliant = s.compliant, non_compliant = s.non_compliant, \
                                               exempt = s.exempt \
                            FROM s WHERE (t.tenant_id, t.subscription_id, t.resource_type) \
                                       = (s.tenant_id, s.subscription_id, s.resource_type) \
                                     AND s.compliant + s.non_compliant + s.exempt > 0), \
              deleted AS (DELETE FROM summary t USING s \
                           WHERE (t.tenant_id, t.subscription_id, t.resource_type) \
                               = (s.tenant_id, s.subscription_id, s.resource_type) \
                             AND s.compliant + s.non_compliant + s.exempt = 0) \
         INSERT INTO summary (tenant_id, subscription_id, resource_type, compliant, non_compliant, exempt) \
         SELECT d.* FROM d WHERE NOT EXISTS (SELECT 1 FROM s WHERE (s.tenant_id, s.subscription_id, s.resource_type) \
                                                                = (d.tenant_id, d.subscription_id, d.resource_type))",
    )
    .bind(delta.summary.iter().map(|(g, _)| g.0).collect::<Vec<_>>())
    .bind(delta.summary.iter().map(|(g, _)| g.1.as_str()).collect::<Vec<_>>())
    .bind(delta.summary.iter().map(|(g, _)| g.2.as_str()).collect::<Vec<_>>())
    .bind(counts.compliant)
    .bind(counts.non_compliant)
    .bind(counts.exempt)
    .execute(conn)
    .await?;
    Ok(())
}

/// New tenant totals: upserted, or deleted when they are zero.
#[tracing::instrument(name = "projection.compliance.write_tenant_totals", skip_all)]
async fn tenant_totals(conn: &mut PgConnection, delta: &Delta<'_>) -> Result<(), sqlx::Error> {
    if delta.tenant_totals.is_empty() {
        return Ok(());
    }
    let mut counts = CountColumns::default();
    delta.tenant_totals.iter().for_each(|(_, c)| counts.push(*c));
    sqlx::query(
        "WITH d AS (SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[]) \
                      AS d(tenant_id, compliant, non_compliant, exempt)), \
              deleted AS (DELETE FROM tenant_totals t USING d \
                           WHERE t.tenant_id = d.tenant_id AND d.compliant + d.non_compliant + d.exempt = 0) \
         INSERT INTO tenant_totals (tenant_id, compliant, non_compliant, exempt) \
         SELECT * FROM d WHERE d.compliant + d.non_compliant + d.exempt > 0 \
         ON CONFLICT (tenant_id) DO UPDATE SET compliant = EXCLUDED.compliant, \
            non_compliant = EXCLUDED.non_compliant, exempt = EXCLUDED.exempt",
    )
    .bind(delta.tenant_totals.iter().map(|(t, _)| *t).collect::<Vec<_>>())
    .bind(counts.compliant)
    .bind(counts.non_compliant)
    .bind(counts.exempt)
    .execute(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "projection.compliance.write_trend", skip_all, fields(points = delta.trend.len()))]
async fn trend(conn: &mut PgConnection, delta: &Delta<'_>) -> Result<(), sqlx::Error> {
    if delta.trend.is_empty() {
        return Ok(());
    }
    let mut counts = CountColumns::default();
    delta.trend.iter().for_each(|t| counts.push(t.counts));
    sqlx::query(
        "INSERT INTO trend (tenant_id, day, compliant, non_compliant, exempt) \
         SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[]) \
         ON CONFLICT (tenant_id, day) DO UPDATE SET compliant = EXCLUDED.compliant, \
            non_compliant = EXCLUDED.non_compliant, exempt = EXCLUDED.exempt",
    )
    .bind(delta.trend.iter().map(|t| t.tenant_id).collect::<Vec<_>>())
    .bind(delta.trend.iter().map(|t| t.day).collect::<Vec<NaiveDate>>())
    .bind(counts.compliant)
    .bind(counts.non_compliant)
    .bind(counts.exempt)
    .execute(conn)
    .await?;
    Ok(())
}
