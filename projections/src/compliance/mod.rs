//! The `compliance` read models (schema `rm_compliance`, `migrations/0004_projection_compliance.sql`):
//! the latest result per (resource, policy), policies with their counts, each resource's
//! overall state, summaries per tenant × subscription × resource type and per tenant, and the
//! daily trend.
//!
//! **Counting rule** (DESIGN §3). A result counts iff its state is compliant, non-compliant or
//! exempt, its resource is registered and not deleted, and its policy exists and is enabled.
//! Policy counts count the policy's counted results; a resource's overall state ranks its
//! counted results non-compliant > compliant > exempt (none: it is in no summary); summaries
//! count resources by overall state. So a deleted resource or a disabled or deleted policy
//! leaves the summaries but keeps its results, which count again once it is back.
//!
//! **Load, modify, write.** Whether one result counts depends on rows of three other kinds,
//! and one event can change many counts (disabling a policy touches every resource it
//! judged). Keeping that logic in SQL would spread it over many statements per event; instead
//! each batch is applied to a pure in-memory [`Model`] (also what `cortex audit verify`
//! replays the log into):
//! 1. decode the batch and work out which rows its events can reach (`Needs`),
//! 2. load those rows in four set-based queries (`load`),
//! 3. apply the events one by one in memory, in log order,
//! 4. write what changed back with one `UNNEST` statement per table (`write`); summary
//!    rows get the model's differences added in SQL, so they need not be loaded.
//!
//! About ten round trips per batch whatever its size. Applying event by event in memory is
//! what makes the result independent of how the log is cut into batches — in particular the
//! trend, whose points are taken after each event that changed a tenant's totals.

mod load;
pub mod model;
#[cfg(test)]
mod plan_tests;
pub mod rows;
mod write;

use std::collections::BTreeSet;

use async_trait::async_trait;
use cortex_events::{DomainEvent, EventFilter, RecordedEvent, catalog as ev, stream::category};
use sqlx::PgConnection;
use uuid::Uuid;

pub use load::read_tables;
pub use model::{EventMeta, Model};
pub use rows::{Counts, PolicyRow, ResourceRow, ResultRow, SummaryRow, Tables, TenantTotalsRow, TrendRow};

use crate::projector::{ApplyError, Changes, Projector};
use model::{PolicyKey, ResourceKey, ResultKey};

pub struct ComplianceProjector;

/// Model names in change notices: a resource's compliance (results, overall state, summary
/// contribution), and a policy (its row or its counts).
pub const MODEL_COMPLIANCE: &str = "compliance";
pub const MODEL_POLICIES: &str = "policies";

/// The event types the model reads (the rest of their categories pass as checkpoints).
const EVENT_TYPES: [&str; 12] = [
    "ResourceRegistered",
    "ResourceMoved",
    "ResourceDeleted",
    "PolicyCreated",
    "PolicyRuleChanged",
    "PolicyDetailsChanged",
    "PolicyEnabled",
    "PolicyDisabled",
    "PolicyDeleted",
    "ExemptionGranted",
    "ExemptionRevoked",
    "ComplianceEvaluated",
];

/// The events the model reads: a replay of the whole log skips the others as the runner does.
pub fn filter() -> EventFilter {
    EventFilter::all()
        .categories([category::RESOURCE, category::POLICY, category::COMPLIANCE])
        .event_types(EVENT_TYPES)
}

/// The rows a batch can reach (see "Completeness" in [`model`]).
#[derive(Debug, Default)]
struct Needs {
    /// Resources that start or stop counting: all their results.
    results_of_resources: BTreeSet<ResourceKey>,
    /// The results an evaluation replaces. (Not all the resource's results: the evaluator
    /// re-evaluating a policy's scope names one policy per resource, and loading the dozen
    /// other results of each was most of the projection's time.)
    results: BTreeSet<ResultKey>,
    /// Policies that start or stop counting: all their results.
    results_of_policies: BTreeSet<PolicyKey>,
    /// Resource and policy rows named by the events (those of the results loaded join them).
    resources: BTreeSet<ResourceKey>,
    policies: BTreeSet<PolicyKey>,
    tenants: BTreeSet<Uuid>,
}

impl Needs {
    fn of(events: &[(EventMeta, DomainEvent)]) -> Self {
        let mut needs = Self::default();
        for (meta, event) in events {
            let t = meta.tenant_id;
            needs.tenants.insert(t);
            match event {
                DomainEvent::ResourceRegistered(ev::ResourceRegistered { resource_id, .. })
                | DomainEvent::ResourceDeleted(ev::ResourceDeleted { resource_id, .. }) => {
                    needs.resources.insert((t, *resource_id));
                    needs.results_of_resources.insert((t, *resource_id));
                }
                DomainEvent::ResourceMoved(e) => {
                    needs.resources.insert((t, e.resource_id));
                }
                DomainEvent::PolicyCreated(ev::PolicyCreated { policy_id, .. })
                | DomainEvent::PolicyEnabled(ev::PolicyEnabled { policy_id })
                | DomainEvent::PolicyDisabled(ev::PolicyDisabled { policy_id })
                | DomainEvent::PolicyDeleted(ev::PolicyDeleted { policy_id, .. }) => {
                    needs.policies.insert((t, *policy_id));
                    needs.results_of_policies.insert((t, *policy_id));
                }
                DomainEvent::PolicyRuleChanged(ev::PolicyRuleChanged { policy_id, .. })
                | DomainEvent::PolicyDetailsChanged(ev::PolicyDetailsChanged { policy_id, .. })
                | DomainEvent::ExemptionGranted(ev::ExemptionGranted { policy_id, .. })
                | DomainEvent::ExemptionRevoked(ev::ExemptionRevoked { policy_id, .. }) => {
                    needs.policies.insert((t, *policy_id));
                }
                DomainEvent::ComplianceEvaluated(e) => {
                    needs.resources.insert((t, e.resource_id));
                    for result in &e.results {
                        needs.policies.insert((t, result.policy_id));
                        needs.results.insert((t, e.resource_id, result.policy_id));
                    }
                }
                DomainEvent::ResourceTagsChanged(_)
                | DomainEvent::ResourcePropertiesChanged(_)
                | DomainEvent::ResourceRenamed(_)
                | DomainEvent::AuditSealed(_) => {}
            }
        }
        needs
    }
}

#[async_trait]
impl Projector for ComplianceProjector {
    fn name(&self) -> &'static str {
        "compliance"
    }

    fn filter(&self) -> EventFilter {
        filter()
    }

    fn models(&self) -> &'static [&'static str] {
        &[MODEL_COMPLIANCE, MODEL_POLICIES]
    }

    #[tracing::instrument(name = "projection.compliance.apply", skip_all, fields(events = batch.len()))]
    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[RecordedEvent],
        changes: &mut Changes,
    ) -> Result<(), ApplyError> {
        let events = batch
            .iter()
            .map(|event| Ok((EventMeta::from(event), DomainEvent::from_recorded(event)?)))
            .collect::<Result<Vec<_>, ApplyError>>()?;
        let needs = Needs::of(&events);
        if needs.tenants.is_empty() {
            return Ok(());
        }
        let mut model = load::load(conn, &needs).await?;
        for (meta, event) in &events {
            model.apply(meta, event);
        }
        let delta = model.delta();
        write::write(conn, &delta).await?;
        for &(tenant, resource) in &delta.changed_resources {
            changes.record(tenant, MODEL_COMPLIANCE, resource);
        }
        for &(tenant, policy) in &delta.changed_policies {
            changes.record(tenant, MODEL_POLICIES, policy);
        }
        Ok(())
    }
}
