//! Answers as they stood at a past time, by replay (issue 23; DESIGN §8's `as_of` rows).
//!
//! The compliance summary at TIME is the compliance projection's own model
//! ([`cortex_projections::compliance::Model`], no I/O) fed, in log order, every event of the
//! tenant that the projection reads and that was recorded at or before TIME; its tables are
//! then cut as `GET /v1/compliance/summary` cuts the live ones. One code path decides both,
//! so a past answer is what the live route answered then, once the projection had caught up.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cortex_events::{DomainEvent, EventStore, RecordedEvent, StoreError, catalog::DecodeError};
use cortex_projections::compliance::{Counts, EventMeta, Model};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::reads::{
    GroupBy,
    compliance::{Group, Summary},
    resources::{ComplianceEntry, ResourceDetail, ResourceItem},
};

#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored event does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("a stored event does not apply: {0}")]
    Apply(#[from] cortex_projections::ApplyError),
}

/// Where to cut a resource's history.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Everything recorded at or before this time.
    At(DateTime<Utc>),
    /// The stream up to this revision (and the compliance results recorded by then).
    Revision(u64),
}

/// A resource at a past point.
#[derive(Debug)]
pub enum ResourceAt {
    /// No event of it yet (or it is another tenant's).
    NotYet,
    /// Deleted by then (and not registered again).
    Deleted,
    /// As `GET /v1/resources/{id}` answered then.
    Found(Box<ResourceDetail>),
}

/// The resource as it stood at `cut`: its record by the resources projection's own fold of
/// its stream, its results and overall state by the compliance model at that time. `tenant`:
/// the caller's (another tenant's resource is [`ResourceAt::NotYet`]); `None` takes the
/// stream's.
#[tracing::instrument(skip(store))]
pub async fn resource_at(
    store: &dyn EventStore,
    tenant: Option<Uuid>,
    resource_id: Uuid,
    cut: Cut,
) -> Result<ResourceAt, AsOfError> {
    let stream = cortex_events::StreamName::resource(resource_id);
    let mut events =
        store.read_streams(std::slice::from_ref(&stream)).await?.remove(&stream).unwrap_or_default();
    let Some(owner) = events.first().map(RecordedEvent::tenant_id) else { return Ok(ResourceAt::NotYet) };
    if tenant.is_some_and(|t| t != owner) {
        return Ok(ResourceAt::NotYet);
    }
    events.retain(|e| match cut {
        Cut::At(at) => e.recorded_at <= at,
        Cut::Revision(n) => e.revision <= n,
    });
    let Some(last) = events.last() else { return Ok(ResourceAt::NotYet) };
    let at = match cut {
        Cut::At(at) => at,
        Cut::Revision(_) => last.recorded_at,
    };
    let Some(row) = cortex_projections::resources::row_after(&events)? else {
        return Ok(ResourceAt::Deleted);
    };
    let tables = compliance_model_at(store, owner, at).await?.tables();
    let enabled: std::collections::BTreeSet<Uuid> =
        tables.policies.iter().filter(|p| p.tenant_id == owner && p.enabled).map(|p| p.policy_id).collect();
    let mut compliance: Vec<ComplianceEntry> = tables
        .results
        .iter()
        .filter(|r| r.tenant_id == owner && r.resource_id == resource_id && enabled.contains(&r.policy_id))
        .map(|r| ComplianceEntry {
            policy_id: r.policy_id,
            state: r.state.as_str().to_owned(),
            reason: r.reason.clone(),
            evaluated_at: r.evaluated_at,
        })
        .collect();
    compliance.sort_by_key(|c| c.policy_id);
    let state = tables
        .resources
        .iter()
        .find(|r| r.tenant_id == owner && r.resource_id == resource_id)
        .and_then(|r| r.state())
        .map(|s| s.as_str().to_owned());
    Ok(ResourceAt::Found(Box::new(ResourceDetail {
        resource: ResourceItem {
            resource_id,
            id: row.cloud_id,
            name: row.name,
            resource_type: row.resource_type,
            location: row.location,
            kind: row.kind,
            tags: row.tags,
            properties: row.properties,
            subscription_id: row.subscription_id,
            resource_group: row.resource_group,
            revision: row.revision,
            registered_at: row.registered_at,
            updated_at: row.updated_at,
            compliance_state: state,
        },
        compliance,
    })))
}

/// The tenant's compliance model as it stood at `at`: every event of the tenant that the
/// compliance projection reads, recorded at or before `at`, applied in log order.
#[tracing::instrument(skip(store))]
pub async fn compliance_model_at(
    store: &dyn EventStore,
    tenant: Uuid,
    at: DateTime<Utc>,
) -> Result<Model, AsOfError> {
    let mut model = Model::default();
    let mut events = super::events_to_head(store, None, cortex_projections::compliance::filter()).await?;
    while let Some(event) = events.try_next().await? {
        // Not a stop at the first later event: a transaction that started earlier can commit
        // later, so recording times are not quite in log order.
        if event.tenant_id() != tenant || event.recorded_at > at {
            continue;
        }
        model.apply(&EventMeta::from(&*event), &DomainEvent::from_recorded(&event)?);
    }
    Ok(model)
}

/// `GET /v1/compliance/summary` as it stood at `at`.
pub async fn summary_at(
    store: &dyn EventStore,
    tenant: Uuid,
    at: DateTime<Utc>,
    group_by: Option<GroupBy>,
) -> Result<Summary, AsOfError> {
    Ok(summary_of(&compliance_model_at(store, tenant, at).await?, tenant, group_by))
}

/// The summary of one tenant's model, cut as the live route cuts the tables (groups in byte
/// order of their keys, as the route orders them).
pub fn summary_of(model: &Model, tenant: Uuid, group_by: Option<GroupBy>) -> Summary {
    let tables = model.tables();
    let tally =
        tables.tenant_totals.iter().find(|t| t.tenant_id == tenant).map(|t| t.counts).unwrap_or_default();
    let mut groups: BTreeMap<String, (Option<String>, Counts)> = BTreeMap::new();
    let mut add = |key: String, name: Option<String>, c: Counts| {
        let entry = groups.entry(key).or_insert((name, Counts::default()));
        entry.1.compliant += c.compliant;
        entry.1.non_compliant += c.non_compliant;
        entry.1.exempt += c.exempt;
    };
    match group_by {
        None => {}
        Some(GroupBy::Subscription) => {
            for row in tables.summary.iter().filter(|r| r.tenant_id == tenant) {
                add(row.subscription_id.clone(), None, row.counts);
            }
        }
        Some(GroupBy::ResourceType) => {
            for row in tables.summary.iter().filter(|r| r.tenant_id == tenant) {
                add(row.resource_type.clone(), None, row.counts);
            }
        }
        Some(GroupBy::Policy) => {
            for row in tables.policies.iter().filter(|r| r.tenant_id == tenant && r.counts.total() > 0) {
                add(row.policy_id.to_string(), Some(row.name.clone()), row.counts);
            }
        }
    }
    Summary {
        tally: tally.into(),
        groups: groups.into_iter().map(|(key, (name, c))| Group { key, name, tally: c.into() }).collect(),
    }
}
