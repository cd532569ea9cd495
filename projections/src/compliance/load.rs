//! Reading the compliance tables: the slice of rows a batch can reach, or all of them (for an
//! audit or a test). Tables are named unqualified: the caller's `search_path` picks the live
//! or the shadow schema.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use cortex_events::catalog::{ComplianceState, PolicyMode};
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

use super::{
    Needs,
    model::Model,
    rows::{
        Counts, PolicyRow, ResourceRow, ResultRow, SummaryRow, Tables, TenantTotalsRow, TrendRow,
        parse_severity,
    },
};
use crate::projector::{ApplyError, pg};

/// A model holding every row the batch described by `needs` can reach.
#[tracing::instrument(name = "projection.compliance.load", skip_all, fields(tenants = needs.tenants.len()))]
pub(super) async fn load(conn: &mut PgConnection, needs: &Needs) -> Result<Model, ApplyError> {
    let mut model = Model::default();
    let mut resources = needs.resources.clone();
    let mut policies = needs.policies.clone();
    for row in results(conn, needs).await.map_err(pg("load results"))? {
        // A resource or a policy that starts or stops counting visits these results, and
        // with them their other side.
        resources.insert((row.tenant_id, row.resource_id));
        policies.insert((row.tenant_id, row.policy_id));
        model.load_result(row);
    }
    for row in resource_rows(conn, &resources).await.map_err(pg("load resources"))? {
        model.load_resource(row);
    }
    for row in policy_rows(conn, &policies).await.map_err(pg("load policies"))? {
        model.load_policy(row);
    }
    for (tenant, totals, latest_day) in tenants(conn, &needs.tenants).await.map_err(pg("load tenants"))? {
        model.load_tenant(tenant, totals, latest_day);
    }
    Ok(model)
}

// KEYED: the loads below find each key by its own index probe, a subquery `LATERAL` to the
// keys that its `ORDER BY` or `LIMIT` keeps PostgreSQL from flattening into a join. As plain
// joins, PostgreSQL could hash them over a scan of the whole table: a generic plan made while
// the tables were small kept that for the connection's life as they grew (autovacuum off:
// no `ANALYZE` ever replans it), and a custom plan without statistics chose it too (issue 22;
// `plan_tests.rs`).

fn columns<A: Copy, B: Copy>(keys: impl IntoIterator<Item = (A, B)>) -> (Vec<A>, Vec<B>) {
    keys.into_iter().unzip()
}

/// All results of the named resources and policies (a row may come twice; loading it twice
/// is harmless).
#[tracing::instrument(name = "projection.compliance.load_results", skip_all)]
async fn results(conn: &mut PgConnection, needs: &Needs) -> Result<Vec<ResultRow>, sqlx::Error> {
    if needs.results_of_resources.is_empty()
        && needs.results_of_policies.is_empty()
        && needs.results.is_empty()
    {
        return Ok(Vec::new());
    }
    let (t1, r1) = columns(needs.results_of_resources.iter().copied());
    let (t2, p2) = columns(needs.results_of_policies.iter().copied());
    let (mut t3, mut r3, mut p3) = (Vec::new(), Vec::new(), Vec::new());
    for &(t, r, p) in &needs.results {
        t3.push(t);
        r3.push(r);
        p3.push(p);
    }
    // Each key is one index probe (see `KEYED`).
    sqlx::query(
        "SELECT r.* FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, resource_id) CROSS JOIN LATERAL \
             (SELECT * FROM results WHERE tenant_id = k.tenant_id AND resource_id = k.resource_id \
              ORDER BY policy_id) r \
         UNION ALL \
         SELECT r.* FROM UNNEST($3::uuid[], $4::uuid[]) AS k(tenant_id, policy_id) CROSS JOIN LATERAL \
             (SELECT * FROM results WHERE tenant_id = k.tenant_id AND policy_id = k.policy_id \
              ORDER BY resource_id) r \
         UNION ALL \
         SELECT r.* FROM UNNEST($5::uuid[], $6::uuid[], $7::uuid[]) AS k(tenant_id, resource_id, policy_id) \
             CROSS JOIN LATERAL (SELECT * FROM results WHERE tenant_id = k.tenant_id \
                                 AND resource_id = k.resource_id AND policy_id = k.policy_id LIMIT 1) r",
    )
    .bind(t1)
    .bind(r1)
    .bind(t2)
    .bind(p2)
    .bind(t3)
    .bind(r3)
    .bind(p3)
    .fetch_all(conn)
    .await?
    .iter()
    .map(result_row)
    .collect()
}

#[tracing::instrument(name = "projection.compliance.load_resources", skip_all, fields(keys = keys.len()))]
async fn resource_rows(
    conn: &mut PgConnection,
    keys: &BTreeSet<(Uuid, Uuid)>,
) -> Result<Vec<ResourceRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (tenants, ids) = columns(keys.iter().copied());
    // See `KEYED`.
    sqlx::query(
        "SELECT r.* FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, resource_id) CROSS JOIN LATERAL \
             (SELECT * FROM resources WHERE tenant_id = k.tenant_id AND resource_id = k.resource_id LIMIT 1) r",
    )
    .bind(tenants)
    .bind(ids)
    .fetch_all(conn)
    .await?
    .iter()
    .map(resource_row)
    .collect()
}

#[tracing::instrument(name = "projection.compliance.load_policies", skip_all, fields(keys = keys.len()))]
async fn policy_rows(
    conn: &mut PgConnection,
    keys: &BTreeSet<(Uuid, Uuid)>,
) -> Result<Vec<PolicyRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (tenants, ids) = columns(keys.iter().copied());
    // See `KEYED`.
    sqlx::query(
        "SELECT p.* FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, policy_id) CROSS JOIN LATERAL \
             (SELECT * FROM policies WHERE tenant_id = k.tenant_id AND policy_id = k.policy_id LIMIT 1) p",
    )
    .bind(tenants)
    .bind(ids)
    .fetch_all(conn)
    .await?
    .iter()
    .map(policy_row)
    .collect()
}

/// Each tenant's totals (zero when it has no row) and the latest day of its trend.
#[tracing::instrument(name = "projection.compliance.load_tenants", skip_all, fields(tenants = tenants.len()))]
async fn tenants(
    conn: &mut PgConnection,
    tenants: &BTreeSet<Uuid>,
) -> Result<Vec<(Uuid, Counts, Option<NaiveDate>)>, sqlx::Error> {
    let ids: Vec<Uuid> = tenants.iter().copied().collect();
    sqlx::query(
        "SELECT k.tenant_id, coalesce(t.compliant, 0) AS compliant, \
                coalesce(t.non_compliant, 0) AS non_compliant, coalesce(t.exempt, 0) AS exempt, \
                (SELECT max(d.day) FROM trend d WHERE d.tenant_id = k.tenant_id) AS latest_day \
           FROM UNNEST($1::uuid[]) AS k(tenant_id) LEFT JOIN tenant_totals t ON t.tenant_id = k.tenant_id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("tenant_id")?, counts(row)?, row.try_get("latest_day")?)))
    .collect()
}

/// Every row of every table, ordered as [`Tables`] says.
#[tracing::instrument(name = "projection.compliance.read_tables", skip_all)]
pub async fn read_tables(conn: &mut PgConnection) -> Result<Tables, sqlx::Error> {
    let mut tables = Tables {
        resources: all(conn, "resources", resource_row).await?,
        policies: all(conn, "policies", policy_row).await?,
        results: all(conn, "results", result_row).await?,
        summary: all(conn, "summary", summary_row).await?,
        tenant_totals: all(conn, "tenant_totals", tenant_totals_row).await?,
        trend: all(conn, "trend", trend_row).await?,
    };
    // Sorted here rather than by SQL: text keys by bytes, whatever the database's collation.
    tables.resources.sort_by_key(|r| (r.tenant_id, r.resource_id));
    tables.policies.sort_by_key(|p| (p.tenant_id, p.policy_id));
    tables.results.sort_by_key(|r| (r.tenant_id, r.resource_id, r.policy_id));
    tables.summary.sort_by(|a, b| {
        (a.tenant_id, &a.subscription_id, &a.resource_type).cmp(&(
            b.tenant_id,
            &b.subscription_id,
            &b.resource_type,
        ))
    });
    tables.tenant_totals.sort_by_key(|t| t.tenant_id);
    tables.trend.sort_by_key(|t| (t.tenant_id, t.day));
    Ok(tables)
}

async fn all<T>(
    conn: &mut PgConnection,
    table: &str,
    decode: fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(conn).await?.iter().map(decode).collect()
}

fn bad(what: &str, text: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {text:?}").into())
}

fn counts(row: &PgRow) -> Result<Counts, sqlx::Error> {
    Ok(Counts {
        compliant: row.try_get("compliant")?,
        non_compliant: row.try_get("non_compliant")?,
        exempt: row.try_get("exempt")?,
    })
}

fn resource_row(row: &PgRow) -> Result<ResourceRow, sqlx::Error> {
    Ok(ResourceRow {
        tenant_id: row.try_get("tenant_id")?,
        resource_id: row.try_get("resource_id")?,
        subscription_id: row.try_get("subscription_id")?,
        resource_type: row.try_get("resource_type")?,
        deleted: row.try_get("deleted")?,
        counts: counts(row)?,
    })
}

fn policy_row(row: &PgRow) -> Result<PolicyRow, sqlx::Error> {
    let severity: &str = row.try_get("severity")?;
    let mode: &str = row.try_get("mode")?;
    Ok(PolicyRow {
        tenant_id: row.try_get("tenant_id")?,
        policy_id: row.try_get("policy_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        category: row.try_get("category")?,
        severity: parse_severity(severity).ok_or_else(|| bad("severity", severity))?,
        mode: PolicyMode::parse(mode).ok_or_else(|| bad("mode", mode))?,
        enabled: row.try_get("enabled")?,
        scope: row.try_get("scope")?,
        rule: row.try_get("rule")?,
        parameters: row.try_get("parameters")?,
        parameter_values: row.try_get("parameter_values")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        counts: counts(row)?,
    })
}

fn result_row(row: &PgRow) -> Result<ResultRow, sqlx::Error> {
    let state: &str = row.try_get("state")?;
    Ok(ResultRow {
        tenant_id: row.try_get("tenant_id")?,
        resource_id: row.try_get("resource_id")?,
        policy_id: row.try_get("policy_id")?,
        state: ComplianceState::parse(state).ok_or_else(|| bad("result state", state))?,
        reason: row.try_get("reason")?,
        source: row.try_get("source")?,
        policy_revision: row.try_get("policy_revision")?,
        resource_revision: row.try_get("resource_revision")?,
        evaluated_at: row.try_get("evaluated_at")?,
    })
}

fn summary_row(row: &PgRow) -> Result<SummaryRow, sqlx::Error> {
    Ok(SummaryRow {
        tenant_id: row.try_get("tenant_id")?,
        subscription_id: row.try_get("subscription_id")?,
        resource_type: row.try_get("resource_type")?,
        counts: counts(row)?,
    })
}

fn tenant_totals_row(row: &PgRow) -> Result<TenantTotalsRow, sqlx::Error> {
    Ok(TenantTotalsRow { tenant_id: row.try_get("tenant_id")?, counts: counts(row)? })
}

fn trend_row(row: &PgRow) -> Result<TrendRow, sqlx::Error> {
    Ok(TrendRow { tenant_id: row.try_get("tenant_id")?, day: row.try_get("day")?, counts: counts(row)? })
}
