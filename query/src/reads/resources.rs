//! `GET /v1/resources` and `GET /v1/resources/{resource_id}` from `rm_resources.resources`,
//! with each resource's overall compliance state (`rm_compliance.resources`) and, for one
//! resource, its latest result per policy (`rm_compliance.results`).
//!
//! Lists are keyset-paginated on `resource_id`, the last column of every filter index in
//! `migrations/0003_projection_resources.sql`: a resource's id never changes, so paging
//! while others write never shows an item twice nor skips one that existed throughout. The
//! filters use the indexes' very expressions (`lower(type)`, `to_tsvector('simple', name)`,
//! …) so that the indexes serve them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder, Row, postgres::PgRow};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Prepared, ReadError, Reads, pg};
use crate::cursor::{self, Scope};

/// A tag condition: `tag=k:v` (the tag has exactly this value) or `tag=k` (the tag exists).
/// Keys and values compare exactly (case-sensitive), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TagFilter {
    Equals { key: String, value: String },
    Exists { key: String },
}

/// The overall compliance state a resource must have (`compliance=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComplianceFilter {
    Compliant,
    NonCompliant,
    Exempt,
}

impl ComplianceFilter {
    pub const NAMES: [&'static str; 3] = ["compliant", "non_compliant", "exempt"];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "compliant" => Self::Compliant,
            "non_compliant" => Self::NonCompliant,
            "exempt" => Self::Exempt,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "compliant",
            Self::NonCompliant => "non_compliant",
            Self::Exempt => "exempt",
        }
    }
}

/// The filters of a resource list, normalised the way the read model compares them:
/// subscription, group and type lower-cased, location lower-cased without spaces, tag
/// conditions sorted, search words lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResourceFilter {
    pub subscription_id: Option<String>,
    pub resource_group: Option<String>,
    pub resource_type: Option<String>,
    pub location: Option<String>,
    pub tags: Vec<TagFilter>,
    /// Words of `q`: each must begin a word of the name.
    pub words: Vec<String>,
    pub compliance: Option<ComplianceFilter>,
}

impl ResourceFilter {
    /// Normalises the filter values (see the type's doc).
    pub fn normalised(mut self) -> Self {
        let lower = |v: Option<String>| v.map(|s| s.to_lowercase());
        self.subscription_id = lower(self.subscription_id);
        self.resource_group = lower(self.resource_group);
        self.resource_type = lower(self.resource_type);
        self.location = self.location.map(|l| l.to_lowercase().replace(' ', ""));
        self.tags.sort();
        self.tags.dedup();
        self
    }

    /// The search words of a `q` text: its runs of letters and digits, lower-cased. Empty
    /// when it has none.
    pub fn words_of(q: &str) -> Vec<String> {
        q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    }

    /// What a cursor of this list is bound to.
    pub fn scope(&self, tenant_id: Uuid) -> Scope {
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|t| match t {
                TagFilter::Equals { key, value } => format!("={key}\u{0}{value}"),
                TagFilter::Exists { key } => format!("?{key}"),
            })
            .collect();
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "\u{0}".to_owned());
        let tenant = tenant_id.to_string();
        let (sub, group, kind, location) = (
            opt(&self.subscription_id),
            opt(&self.resource_group),
            opt(&self.resource_type),
            opt(&self.location),
        );
        let (tags, words) = (tags.join("\u{1}"), self.words.join(" "));
        let compliance = self.compliance.map_or("", ComplianceFilter::as_str);
        Scope::of(&[&tenant, "resources", &sub, &group, &kind, &location, &tags, &words, compliance])
    }

    /// `prefix:* & prefix:* …` for `to_tsquery`; the words hold letters and digits only,
    /// so nothing in them is tsquery syntax.
    fn tsquery(&self) -> String {
        self.words.iter().map(|w| format!("{w}:*")).collect::<Vec<_>>().join(" & ")
    }
}

/// One page of a resource list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceQuery {
    pub filter: ResourceFilter,
    pub limit: u32,
    /// The last resource id of the previous page.
    pub after: Option<Uuid>,
}

/// A resource as the read model holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResourceItem {
    pub resource_id: Uuid,
    /// The cloud provider's id of the resource (`id` of the inventory record).
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[schema(value_type = Object)]
    pub tags: Value,
    #[schema(value_type = Object)]
    pub properties: Value,
    pub subscription_id: String,
    pub resource_group: String,
    /// Revision of the resource's stream: the last event applied.
    pub revision: i64,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Overall state over the enabled policies' results (non_compliant > compliant >
    /// exempt); absent when no result counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance_state: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourcePage {
    pub items: Vec<ResourceItem>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The latest result of one enabled policy on the resource.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceEntry {
    pub policy_id: Uuid,
    /// compliant, non_compliant, exempt, not_applicable or error.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub evaluated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceDetail {
    #[serde(flatten)]
    pub resource: ResourceItem,
    pub compliance: Vec<ComplianceEntry>,
}

const COLUMNS: &str = "r.resource_id, r.cloud_id, r.name, r.type, r.location, r.kind, r.tags, r.properties, \
     r.subscription_id, r.resource_group, r.revision, r.registered_at, r.updated_at, c.state AS compliance_state";

const FROM: &str = "FROM rm_resources.resources r \
     LEFT JOIN rm_compliance.resources c ON c.tenant_id = r.tenant_id AND c.resource_id = r.resource_id";

fn item(row: &PgRow) -> Result<ResourceItem, sqlx::Error> {
    Ok(ResourceItem {
        resource_id: row.try_get("resource_id")?,
        id: row.try_get("cloud_id")?,
        name: row.try_get("name")?,
        resource_type: row.try_get("type")?,
        location: row.try_get("location")?,
        kind: row.try_get("kind")?,
        tags: row.try_get("tags")?,
        properties: row.try_get("properties")?,
        subscription_id: row.try_get("subscription_id")?,
        resource_group: row.try_get("resource_group")?,
        revision: row.try_get("revision")?,
        registered_at: row.try_get("registered_at")?,
        updated_at: row.try_get("updated_at")?,
        compliance_state: row.try_get("compliance_state")?,
    })
}

impl Reads {
    /// One page of the tenant's resources matching the filter, by `resource_id`.
    #[tracing::instrument(skip(self, query), fields(limit = query.limit))]
    pub async fn resources(&self, tenant_id: Uuid, query: &ResourceQuery) -> Result<Prepared, ReadError> {
        let f = &query.filter;
        let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} {FROM} WHERE r.tenant_id = "));
        sql.push_bind(tenant_id);
        if let Some(v) = &f.subscription_id {
            sql.push(" AND lower(r.subscription_id) = lower(").push_bind(v).push(")");
        }
        if let Some(v) = &f.resource_group {
            sql.push(" AND lower(r.resource_group) = lower(").push_bind(v).push(")");
        }
        if let Some(v) = &f.resource_type {
            sql.push(" AND lower(r.type) = lower(").push_bind(v).push(")");
        }
        if let Some(v) = &f.location {
            sql.push(" AND lower(replace(r.location, ' ', '')) = lower(replace(")
                .push_bind(v)
                .push(", ' ', ''))");
        }
        for tag in &f.tags {
            match tag {
                TagFilter::Equals { key, value } => {
                    // Containment: what the GIN (jsonb_path_ops) index on tags serves.
                    sql.push(" AND r.tags @> ").push_bind(serde_json::json!({ key: value }));
                }
                TagFilter::Exists { key } => {
                    sql.push(" AND r.tags ? ").push_bind(key);
                }
            }
        }
        if !f.words.is_empty() {
            sql.push(" AND to_tsvector('simple', r.name) @@ to_tsquery('simple', ")
                .push_bind(f.tsquery())
                .push(")");
        }
        if let Some(state) = f.compliance {
            sql.push(" AND c.state = ").push_bind(state.as_str());
        }
        if let Some(after) = query.after {
            sql.push(" AND r.resource_id > ").push_bind(after);
        }
        // One row more than the page: whether there is a next page, without a count.
        sql.push(" ORDER BY r.resource_id LIMIT ").push_bind(i64::from(query.limit) + 1);
        let rows = sql.build().fetch_all(&self.pool).await.map_err(pg("list resources"))?;
        let mut items =
            rows.iter().map(item).collect::<Result<Vec<_>, _>>().map_err(pg("decode resources"))?;
        let next_cursor = if items.len() > query.limit as usize {
            items.truncate(query.limit as usize);
            items.last().map(|last| cursor::encode(f.scope(tenant_id), &last.resource_id))
        } else {
            None
        };
        Prepared::json(&ResourcePage { items, next_cursor })
    }

    /// One resource with its latest result per enabled policy. The entity tag is the
    /// stream revision (which fixes every resource column) and a digest of the compliance
    /// part, the only thing that changes without a new revision.
    #[tracing::instrument(skip(self))]
    pub async fn resource(&self, tenant_id: Uuid, resource_id: Uuid) -> Result<Prepared, ReadError> {
        let sql = format!(
            "SELECT {COLUMNS}, x.policy_ids, x.states, x.reasons, x.evaluated_ats {FROM} \
             CROSS JOIN LATERAL ( \
                 SELECT array_agg(res.policy_id ORDER BY res.policy_id) AS policy_ids, \
                        array_agg(res.state ORDER BY res.policy_id) AS states, \
                        array_agg(res.reason ORDER BY res.policy_id) AS reasons, \
                        array_agg(res.evaluated_at ORDER BY res.policy_id) AS evaluated_ats \
                 FROM rm_compliance.results res \
                 JOIN rm_compliance.policies p \
                   ON p.tenant_id = res.tenant_id AND p.policy_id = res.policy_id AND p.enabled \
                 WHERE res.tenant_id = r.tenant_id AND res.resource_id = r.resource_id) x \
             WHERE r.tenant_id = $1 AND r.resource_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(resource_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg("read resource"))?
            .ok_or(ReadError::NotFound { what: "resource" })?;
        let decode = |row: &PgRow| -> Result<ResourceDetail, sqlx::Error> {
            let policy_ids: Vec<Uuid> = row.try_get::<Option<_>, _>("policy_ids")?.unwrap_or_default();
            let states: Vec<String> = row.try_get::<Option<_>, _>("states")?.unwrap_or_default();
            let reasons: Vec<Option<String>> = row.try_get::<Option<_>, _>("reasons")?.unwrap_or_default();
            let times: Vec<DateTime<Utc>> = row.try_get::<Option<_>, _>("evaluated_ats")?.unwrap_or_default();
            let compliance = policy_ids
                .into_iter()
                .zip(states)
                .zip(reasons)
                .zip(times)
                .map(|(((policy_id, state), reason), evaluated_at)| ComplianceEntry {
                    policy_id,
                    state,
                    reason,
                    evaluated_at,
                })
                .collect();
            Ok(ResourceDetail { resource: item(row)?, compliance })
        };
        let detail = decode(&row).map_err(pg("decode resource"))?;
        let compliance = serde_json::to_vec(&(&detail.resource.compliance_state, &detail.compliance))
            .map_err(ReadError::Encode)?;
        let tag = format!("{}-{}", detail.resource.revision, &hex::encode(Sha256::digest(&compliance))[..16]);
        Prepared::json_tagged(&detail, &tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_runs_of_letters_and_digits() {
        assert_eq!(ResourceFilter::words_of("St-Prod_01 web.app"), ["st", "prod", "01", "web", "app"]);
        assert!(ResourceFilter::words_of(" -:'&|! ").is_empty());
        let f = ResourceFilter { words: ResourceFilter::words_of("a'b|c"), ..Default::default() };
        assert_eq!(f.tsquery(), "a:* & b:* & c:*");
    }

    #[test]
    fn two_spellings_of_one_filter_bind_cursors_alike() {
        let t = Uuid::now_v7();
        let a = ResourceFilter {
            resource_type: Some("Microsoft.Storage/storageAccounts".into()),
            location: Some("West Europe".into()),
            tags: vec![TagFilter::Exists { key: "b".into() }, TagFilter::Exists { key: "a".into() }],
            ..Default::default()
        }
        .normalised();
        let b = ResourceFilter {
            resource_type: Some("microsoft.storage/storageaccounts".into()),
            location: Some("westeurope".into()),
            tags: vec![TagFilter::Exists { key: "a".into() }, TagFilter::Exists { key: "b".into() }],
            ..Default::default()
        }
        .normalised();
        assert_eq!(a, b);
        assert_eq!(a.scope(t), b.scope(t));
        assert_ne!(a.scope(t), a.scope(Uuid::now_v7()));
        assert_ne!(a.scope(t), ResourceFilter::default().scope(t));
    }
}
