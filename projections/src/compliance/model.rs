//! The compliance read model in memory, with no I/O: the projector loads a slice of the tables
//! into it, applies a batch and writes back what changed; an audit replays the whole log into
//! an empty one and compares [`Model::tables`] with the tables.
//!
//! Counts are kept incrementally. A result moves its resource's and its policy's counts when
//! its state changes; a resource or a policy that starts or stops counting (registered,
//! deleted, enabled, disabled, created) visits its results once. A resource's contribution to
//! the summaries is (its group, its overall state); every change of a resource row compares
//! the contribution before and after and moves the summary and tenant counts by the
//! difference.
//!
//! **Completeness.** Applying an event reads only rows the model holds, so a partial model
//! must hold every row the event can reach: the resources and policies it names, the results
//! it replaces, every result of a resource it registers or deletes and of a policy it
//! creates, enables, disables or deletes, the resources and policies of those results, and
//! the totals and latest trend day of its tenant. A row that is missing is taken as a row that does not
//! exist. `super::load` loads exactly that.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use cortex_events::{
    DomainEvent, RecordedEvent,
    catalog::{self as ev, ComplianceState, DecodeError},
};
use serde_json::Value;
use uuid::Uuid;

mod output;

pub use output::Delta;

use super::rows::{Counts, PolicyRow, ResourceRow, ResultRow, counts};

/// (tenant, resource).
pub type ResourceKey = (Uuid, Uuid);
/// (tenant, policy).
pub type PolicyKey = (Uuid, Uuid);
/// (tenant, resource, policy).
pub type ResultKey = (Uuid, Uuid, Uuid);
/// (tenant, subscription, resource type), lower-cased.
pub type GroupKey = (Uuid, String, String);

/// What the model needs of an event's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    pub tenant_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The event's revision in its stream.
    pub revision: u64,
}

impl From<&RecordedEvent> for EventMeta {
    fn from(event: &RecordedEvent) -> Self {
        Self {
            tenant_id: event.tenant_id(),
            occurred_at: event.metadata.occurred_at,
            revision: event.revision,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Tenant {
    totals: Counts,
    latest_day: Option<NaiveDate>,
}

/// Keys of the rows changed since the model was loaded.
#[derive(Debug, Default)]
struct Dirty {
    resources: BTreeSet<ResourceKey>,
    policies: BTreeSet<PolicyKey>,
    removed_policies: BTreeSet<PolicyKey>,
    results: BTreeSet<ResultKey>,
    tenants: BTreeSet<Uuid>,
}

#[derive(Debug, Default)]
pub struct Model {
    resources: BTreeMap<ResourceKey, ResourceRow>,
    policies: BTreeMap<PolicyKey, PolicyRow>,
    results: BTreeMap<ResultKey, ResultRow>,
    /// (tenant, policy, resource) of every result held.
    by_policy: BTreeSet<(Uuid, Uuid, Uuid)>,
    tenants: BTreeMap<Uuid, Tenant>,
    /// How each summary row changed since loading: its value, in a model that started empty.
    summary: BTreeMap<GroupKey, Counts>,
    /// Trend points written since loading: the whole trend, in a model that started empty.
    trend: BTreeMap<(Uuid, NaiveDate), Counts>,
    dirty: Dirty,
}

fn contribution(row: &ResourceRow) -> Option<(GroupKey, ComplianceState)> {
    row.state().map(|state| ((row.tenant_id, row.subscription_id.clone(), row.resource_type.clone()), state))
}

fn object(map: &serde_json::Map<String, Value>) -> Value {
    Value::Object(map.clone())
}

impl Model {
    /// A model of the whole log: an empty one fed, in log order, every event of `events`
    /// that the projection reads (the others are skipped, as the runner's filter does).
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Result<Self, DecodeError> {
        let filter = super::filter();
        let mut model = Self::default();
        for event in events.into_iter().filter(|e| filter.matches(e.stream.category(), &e.event_type)) {
            model.apply(&EventMeta::from(event), &DomainEvent::from_recorded(event)?);
        }
        Ok(model)
    }

    pub fn load_resource(&mut self, row: ResourceRow) {
        self.resources.insert((row.tenant_id, row.resource_id), row);
    }

    pub fn load_policy(&mut self, row: PolicyRow) {
        self.policies.insert((row.tenant_id, row.policy_id), row);
    }

    pub fn load_result(&mut self, row: ResultRow) {
        self.by_policy.insert((row.tenant_id, row.policy_id, row.resource_id));
        self.results.insert((row.tenant_id, row.resource_id, row.policy_id), row);
    }

    /// A tenant's current totals and the latest day of its trend.
    pub fn load_tenant(&mut self, tenant_id: Uuid, totals: Counts, latest_day: Option<NaiveDate>) {
        self.tenants.insert(tenant_id, Tenant { totals, latest_day });
    }

    /// Applies one event (catalog events this model does not read change nothing).
    pub fn apply(&mut self, meta: &EventMeta, event: &DomainEvent) {
        let tenant = meta.tenant_id;
        let at = meta.occurred_at;
        let revision = meta.revision as i64;
        let before = self.totals(tenant);
        match event {
            DomainEvent::ResourceRegistered(e) => self.change_resource((tenant, e.resource_id), |row| {
                Some(ResourceRow {
                    tenant_id: tenant,
                    resource_id: e.resource_id,
                    subscription_id: e.subscription_id.to_lowercase(),
                    resource_type: e.resource_type.to_lowercase(),
                    deleted: false,
                    counts: row.map(|r| r.counts).unwrap_or_default(),
                })
            }),
            DomainEvent::ResourceMoved(e) => self.change_resource((tenant, e.resource_id), |row| {
                row.map(|r| ResourceRow { subscription_id: e.subscription_id.to_lowercase(), ..r })
            }),
            DomainEvent::ResourceDeleted(e) => self.change_resource((tenant, e.resource_id), |row| {
                row.map(|r| ResourceRow { deleted: true, ..r })
            }),
            DomainEvent::PolicyCreated(e) => self.change_policy((tenant, e.policy_id), |_| {
                Some(PolicyRow {
                    tenant_id: tenant,
                    policy_id: e.policy_id,
                    name: e.name.clone(),
                    description: e.description.clone(),
                    category: e.category.clone(),
                    severity: e.severity,
                    mode: e.mode,
                    enabled: e.enabled,
                    scope: serde_json::to_value(&e.scope).unwrap_or(Value::Null),
                    rule: e.rule.clone(),
                    parameters: object(&e.parameters),
                    parameter_values: object(&e.parameter_values),
                    revision,
                    created_at: at,
                    updated_at: at,
                    counts: Counts::default(),
                })
            }),
            DomainEvent::PolicyRuleChanged(e) => self.change_policy((tenant, e.policy_id), |row| {
                row.map(|p| PolicyRow {
                    rule: e.rule.clone(),
                    parameters: object(&e.parameters),
                    parameter_values: object(&e.parameter_values),
                    mode: e.mode,
                    revision,
                    updated_at: at,
                    ..p
                })
            }),
            DomainEvent::PolicyDetailsChanged(e) => self.change_policy((tenant, e.policy_id), |row| {
                row.map(|p| PolicyRow {
                    name: e.name.clone(),
                    description: e.description.clone(),
                    category: e.category.clone(),
                    severity: e.severity,
                    scope: serde_json::to_value(&e.scope).unwrap_or(Value::Null),
                    revision,
                    updated_at: at,
                    ..p
                })
            }),
            DomainEvent::PolicyEnabled(e) => self.change_policy((tenant, e.policy_id), |row| {
                row.map(|p| PolicyRow { enabled: true, revision, updated_at: at, ..p })
            }),
            DomainEvent::PolicyDisabled(e) => self.change_policy((tenant, e.policy_id), |row| {
                row.map(|p| PolicyRow { enabled: false, revision, updated_at: at, ..p })
            }),
            DomainEvent::PolicyDeleted(e) => self.change_policy((tenant, e.policy_id), |_| None),
            // Exemptions count through the `exempt` results the evaluator records; here they
            // only move the policy stream's revision.
            DomainEvent::ExemptionGranted(ev::ExemptionGranted { policy_id, .. })
            | DomainEvent::ExemptionRevoked(ev::ExemptionRevoked { policy_id, .. }) => self
                .change_policy((tenant, *policy_id), |row| {
                    row.map(|p| PolicyRow { revision, updated_at: at, ..p })
                }),
            DomainEvent::ComplianceEvaluated(e) => {
                for result in &e.results {
                    self.put_result(ResultRow {
                        tenant_id: tenant,
                        resource_id: e.resource_id,
                        policy_id: result.policy_id,
                        state: result.state,
                        reason: result.reason.clone(),
                        source: e.source.clone(),
                        policy_revision: result.policy_revision.map(|r| r as i64),
                        resource_revision: e.resource_revision.map(|r| r as i64),
                        evaluated_at: at,
                    });
                }
            }
            DomainEvent::ResourceTagsChanged(_)
            | DomainEvent::ResourcePropertiesChanged(_)
            | DomainEvent::ResourceRenamed(_)
            | DomainEvent::AuditSealed(_) => {}
        }
        let after = self.totals(tenant);
        if after != before {
            // Log order is the truth: a writer whose clock is behind cannot rewrite a day
            // the trend has already moved past.
            let t = self.tenants.entry(tenant).or_default();
            let day = t.latest_day.map_or(at.date_naive(), |latest| latest.max(at.date_naive()));
            t.latest_day = Some(day);
            self.trend.insert((tenant, day), after);
        }
    }

    fn totals(&self, tenant: Uuid) -> Counts {
        self.tenants.get(&tenant).map(|t| t.totals).unwrap_or_default()
    }

    fn counting(&self, resource: ResourceKey, policy: PolicyKey) -> bool {
        self.resources.get(&resource).is_some_and(|r| !r.deleted)
            && self.policies.get(&policy).is_some_and(|p| p.enabled)
    }

    /// Replaces a resource row by what `change` makes of it (`None`: no row, nothing to do).
    fn change_resource(
        &mut self,
        key: ResourceKey,
        change: impl FnOnce(Option<ResourceRow>) -> Option<ResourceRow>,
    ) {
        let old = self.resources.get(&key).cloned();
        let Some(mut new) = change(old.clone()) else { return };
        let was_alive = old.as_ref().is_some_and(|r| !r.deleted);
        let alive = !new.deleted;
        if was_alive != alive {
            // Its results start or stop counting: recount the resource and move each
            // policy's counts. (A deleted resource counts nothing, so there is nothing to keep.)
            new.counts = Counts::default();
            let (tenant, resource) = key;
            for (&(_, _, policy), result) in
                self.results.range((tenant, resource, Uuid::nil())..=(tenant, resource, Uuid::max()))
            {
                let Some(p) = self.policies.get_mut(&(tenant, policy)) else { continue };
                if !p.enabled || !counts(result.state) {
                    continue;
                }
                p.counts.add(result.state, if alive { 1 } else { -1 });
                self.dirty.policies.insert((tenant, policy));
                if alive {
                    new.counts.add(result.state, 1);
                }
            }
        }
        self.put_resource(old.as_ref(), new);
    }

    /// Stores a resource row that replaces `old`, moving the summaries by the difference of
    /// their contributions.
    fn put_resource(&mut self, old: Option<&ResourceRow>, new: ResourceRow) {
        let before = old.and_then(contribution);
        let after = contribution(&new);
        if before != after {
            for ((group, state), n) in
                before.into_iter().map(|c| (c, -1)).chain(after.into_iter().map(|c| (c, 1)))
            {
                let tenant = group.0;
                self.summary.entry(group).or_default().add(state, n);
                self.tenants.entry(tenant).or_default().totals.add(state, n);
                self.dirty.tenants.insert(tenant);
            }
        }
        if old != Some(&new) {
            self.dirty.resources.insert((new.tenant_id, new.resource_id));
            self.resources.insert((new.tenant_id, new.resource_id), new);
        }
    }

    /// Replaces a policy row by what `change` makes of it (`None`: no row).
    fn change_policy(&mut self, key: PolicyKey, change: impl FnOnce(Option<PolicyRow>) -> Option<PolicyRow>) {
        let old = self.policies.get(&key).cloned();
        let new = change(old.clone());
        let was_on = old.as_ref().is_some_and(|p| p.enabled);
        let on = new.as_ref().is_some_and(|p| p.enabled);
        let mut policy_counts = old.as_ref().map(|p| p.counts).unwrap_or_default();
        if was_on != on {
            // Its results start or stop counting: recount the policy and move each
            // resource's counts.
            policy_counts = Counts::default();
            let (tenant, policy) = key;
            let results: Vec<(Uuid, ComplianceState)> = self
                .by_policy
                .range((tenant, policy, Uuid::nil())..=(tenant, policy, Uuid::max()))
                .filter_map(|&(_, _, resource)| {
                    let state = self.results.get(&(tenant, resource, policy))?.state;
                    counts(state).then_some((resource, state))
                })
                .collect();
            for (resource, state) in results {
                let Some(old_row) = self.resources.get(&(tenant, resource)).filter(|r| !r.deleted).cloned()
                else {
                    continue;
                };
                let mut row = old_row.clone();
                row.counts.add(state, if on { 1 } else { -1 });
                self.put_resource(Some(&old_row), row);
                if on {
                    policy_counts.add(state, 1);
                }
            }
        }
        match new {
            Some(mut new) => {
                new.counts = policy_counts;
                self.dirty.removed_policies.remove(&key);
                if old.as_ref() != Some(&new) {
                    self.dirty.policies.insert(key);
                    self.policies.insert(key, new);
                }
            }
            None => {
                if self.policies.remove(&key).is_some() {
                    self.dirty.policies.remove(&key);
                    self.dirty.removed_policies.insert(key);
                }
            }
        }
    }

    /// Stores the latest result of a policy on a resource, moving the counts it was and is in.
    fn put_result(&mut self, new: ResultRow) {
        let (tenant, resource, policy) = (new.tenant_id, new.resource_id, new.policy_id);
        let key = (tenant, resource, policy);
        let old = self.results.get(&key);
        if old == Some(&new) {
            return;
        }
        let was = old.map(|r| r.state).filter(|s| counts(*s));
        let is = Some(new.state).filter(|s| counts(*s));
        if was != is && self.counting((tenant, resource), (tenant, policy)) {
            if let Some(p) = self.policies.get_mut(&(tenant, policy)) {
                was.into_iter().for_each(|s| p.counts.add(s, -1));
                is.into_iter().for_each(|s| p.counts.add(s, 1));
                self.dirty.policies.insert((tenant, policy));
            }
            if let Some(old_row) = self.resources.get(&(tenant, resource)).cloned() {
                let mut row = old_row.clone();
                was.into_iter().for_each(|s| row.counts.add(s, -1));
                is.into_iter().for_each(|s| row.counts.add(s, 1));
                self.put_resource(Some(&old_row), row);
            }
        }
        self.dirty.results.insert(key);
        self.by_policy.insert((tenant, policy, resource));
        self.results.insert(key, new);
    }
}
