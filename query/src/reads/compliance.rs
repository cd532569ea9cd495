//! `GET /v1/compliance/summary` and `GET /v1/compliance/trend` from the summary tables the
//! compliance projector keeps (`rm_compliance.tenant_totals`, `summary`, `policies`,
//! `trend`). Percentages follow DESIGN §3 through the projector's own
//! [`Counts::percentage`]: (compliant + exempt) / total, a fraction, `null` at total 0.

use chrono::{Days, NaiveDate};
use cortex_projections::compliance::Counts;
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Prepared, ReadError, Reads, pg};

/// How the summary's groups are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// Resources by overall state, per subscription (lower-cased).
    Subscription,
    /// Resources by overall state, per resource type (lower-cased).
    ResourceType,
    /// Each enabled policy's counted results.
    Policy,
}

impl GroupBy {
    pub const NAMES: [&'static str; 3] = ["subscription", "resource_type", "policy"];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "subscription" => Self::Subscription,
            "resource_type" => Self::ResourceType,
            "policy" => Self::Policy,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SummaryQuery {
    /// No grouping: `groups` is empty.
    pub group_by: Option<GroupBy>,
}

/// The most days a trend covers.
pub const MAX_TREND_DAYS: u32 = 366;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrendQuery {
    pub days: u32,
    /// The last day of the trend (today, UTC, for the route).
    pub until: NaiveDate,
}

/// Counts by state with their total and percentage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tally {
    pub total: i64,
    pub compliant: i64,
    pub non_compliant: i64,
    pub exempt: i64,
    /// (compliant + exempt) / total, a fraction in [0, 1]; `null` when total is 0.
    pub percentage: Option<f64>,
}

impl From<Counts> for Tally {
    fn from(c: Counts) -> Self {
        Self {
            total: c.total(),
            compliant: c.compliant,
            non_compliant: c.non_compliant,
            exempt: c.exempt,
            percentage: c.percentage(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Group {
    /// The subscription id, the resource type, or the policy id.
    pub key: String,
    /// The policy's name (`group_by=policy` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub tally: Tally,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    /// The tenant's resources by overall state.
    #[serde(flatten)]
    pub tally: Tally,
    /// Ordered by key (byte order, whatever the database's collation); groups with a total
    /// of 0 are left out.
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrendPoint {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub tally: Tally,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Trend {
    pub from: NaiveDate,
    pub until: NaiveDate,
    /// One point per day, oldest first: the tenant's totals at the end of that day.
    pub points: Vec<TrendPoint>,
}

fn counts(row: &sqlx::postgres::PgRow) -> Result<Counts, sqlx::Error> {
    Ok(Counts {
        compliant: row.try_get("compliant")?,
        non_compliant: row.try_get("non_compliant")?,
        exempt: row.try_get("exempt")?,
    })
}

impl Reads {
    /// The tenant's totals and, with `group_by`, its groups — read in one statement, so
    /// that the groups add up to the totals they are shown with.
    #[tracing::instrument(skip(self))]
    pub async fn summary(&self, tenant_id: Uuid, query: &SummaryQuery) -> Result<Prepared, ReadError> {
        // Row 0 holds the totals (absent when the tenant has none); the others are groups.
        let groups = match query.group_by {
            None => "",
            Some(GroupBy::Subscription) => {
                "UNION ALL SELECT 1, subscription_id, NULL, sum(compliant)::bigint, \
                 sum(non_compliant)::bigint, sum(exempt)::bigint \
                 FROM rm_compliance.summary WHERE tenant_id = $1 GROUP BY subscription_id"
            }
            Some(GroupBy::ResourceType) => {
                "UNION ALL SELECT 1, resource_type, NULL, sum(compliant)::bigint, \
                 sum(non_compliant)::bigint, sum(exempt)::bigint \
                 FROM rm_compliance.summary WHERE tenant_id = $1 GROUP BY resource_type"
            }
            Some(GroupBy::Policy) => {
                "UNION ALL SELECT 1, policy_id::text, name, compliant, non_compliant, exempt \
                 FROM rm_compliance.policies WHERE tenant_id = $1 AND total > 0"
            }
        };
        let sql = format!(
            "SELECT 0 AS part, NULL::text COLLATE \"C\" AS key, NULL::text AS name, compliant, non_compliant, exempt \
             FROM rm_compliance.tenant_totals WHERE tenant_id = $1 {groups} ORDER BY part, key"
        );
        let rows =
            sqlx::query(&sql).bind(tenant_id).fetch_all(&self.pool).await.map_err(pg("read summary"))?;
        let mut summary = Summary { tally: Counts::default().into(), groups: Vec::new() };
        for row in &rows {
            let decode = || -> Result<(i32, Option<String>, Option<String>, Counts), sqlx::Error> {
                Ok((row.try_get("part")?, row.try_get("key")?, row.try_get("name")?, counts(row)?))
            };
            let (part, key, name, counts) = decode().map_err(pg("decode summary"))?;
            match (part, key) {
                (1, Some(key)) => summary.groups.push(Group { key, name, tally: counts.into() }),
                _ => summary.tally = counts.into(),
            }
        }
        Prepared::json(&summary)
    }

    /// The tenant's totals at the end of each of the `days` days up to `until`: a day
    /// without a change carries the last totals before it (zeros before the first).
    #[tracing::instrument(skip(self))]
    pub async fn trend(&self, tenant_id: Uuid, query: &TrendQuery) -> Result<Prepared, ReadError> {
        let from = query
            .until
            .checked_sub_days(Days::new(u64::from(query.days.max(1)) - 1))
            .unwrap_or(NaiveDate::MIN);
        let rows = sqlx::query(
            "(SELECT day, compliant, non_compliant, exempt FROM rm_compliance.trend \
              WHERE tenant_id = $1 AND day < $2 ORDER BY day DESC LIMIT 1) \
             UNION ALL \
             (SELECT day, compliant, non_compliant, exempt FROM rm_compliance.trend \
              WHERE tenant_id = $1 AND day >= $2 AND day <= $3) \
             ORDER BY day",
        )
        .bind(tenant_id)
        .bind(from)
        .bind(query.until)
        .fetch_all(&self.pool)
        .await
        .map_err(pg("read trend"))?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            let day: NaiveDate = row.try_get("day").map_err(pg("decode trend"))?;
            changes.push((day, counts(row).map_err(pg("decode trend"))?));
        }
        Prepared::json(&Trend { from, until: query.until, points: daily_points(from, query.until, &changes) })
    }
}

/// One point per day from `from` to `until`, each the last change on or before that day.
/// `changes` are ordered by day.
fn daily_points(from: NaiveDate, until: NaiveDate, changes: &[(NaiveDate, Counts)]) -> Vec<TrendPoint> {
    let mut points = Vec::new();
    let (mut current, mut next) = (Counts::default(), 0);
    for day in from.iter_days().take_while(|d| *d <= until) {
        while let Some((_, counts)) = changes.get(next).filter(|(changed, _)| *changed <= day) {
            current = *counts;
            next += 1;
        }
        points.push(TrendPoint { day, tally: current.into() });
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
    }

    #[test]
    fn each_day_carries_the_last_change_on_or_before_it() {
        let c = |n| Counts { compliant: n, non_compliant: 1, exempt: 0 };
        let points = daily_points(day(3), day(7), &[(day(1), c(1)), (day(4), c(2)), (day(6), c(3))]);
        let compliant: Vec<i64> = points.iter().map(|p| p.tally.compliant).collect();
        assert_eq!(compliant, [1, 2, 2, 3, 3]);
        assert_eq!(points.first().map(|p| p.day), Some(day(3)));
        let empty = daily_points(day(1), day(2), &[]);
        assert_eq!(empty.len(), 2);
        assert_eq!(empty[0].tally.total, 0);
        assert_eq!(empty[0].tally.percentage, None);
    }
}
