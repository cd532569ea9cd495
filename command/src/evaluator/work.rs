//! One batch (or tick) of the evaluator: the state it loaded and changed, the triggers, and
//! the appends.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use chrono::{DateTime, Utc};
use cortex_events::{
    DomainEvent, ExpectedRevision, NewEvent, Provenance, RecordedEvent, StoreError, StreamName,
    catalog::{self as ev, ComplianceEvaluated, PolicyResult},
    store::Direction,
};
use cortex_rules::{ResourceContext, ResourceGroupInfo};
use futures::StreamExt;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    EVENT_ID_NAMESPACE, EvalError, Evaluator, Outcome,
    judge::{in_scope, is_news, judge},
    rows::{self, Decision, ExemptionRow, GroupKey, PolicyRow, ResourceRow, Writes},
};
use crate::aggregate::compliance::RESERVED_SOURCE;

/// Most results in one event: each is bounded (`judge::MAX_DETAILS_BYTES`,
/// `MAX_REASON_CHARS`) to some 6 KB, so an event stays well under the store's 1 MiB limit.
const RESULTS_PER_EVENT: usize = 100;

type ResourceKey = (Uuid, Uuid);
type PairKey = (Uuid, Uuid, Uuid);

/// Files `exemption` under its (tenant, resource, policy) pair.
fn index_pair(pairs: &mut HashMap<PairKey, BTreeSet<Uuid>>, tenant: Uuid, exemption: &ExemptionRow) {
    pairs
        .entry((tenant, exemption.resource_id, exemption.policy_id))
        .or_default()
        .insert(exemption.exemption_id);
}

/// What caused an evaluation: the id the appended events' ids derive from, and the
/// provenance they inherit.
#[derive(Debug, Clone)]
struct Trigger {
    id: Uuid,
    correlation_id: Uuid,
    traceparent: Option<String>,
}

impl Trigger {
    fn of(event: &RecordedEvent) -> Self {
        Self {
            id: event.event_id(),
            correlation_id: event.metadata.correlation_id,
            traceparent: event.metadata.traceparent.clone(),
        }
    }

    /// An expiry, decided on the resource and rule revisions given: the same state gives the
    /// same id (an idempotent retry whichever path, event or timer, decides it); a state that
    /// moved on (a timer's append whose commit was lost, then an event) gives a new one.
    fn expiry(exemption: &ExemptionRow, resource_revision: Option<u64>, rule_revision: Option<u64>) -> Self {
        let name = format!("{}/expired/{resource_revision:?}/{rule_revision:?}", exemption.exemption_id);
        let id = Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes());
        Self { id, correlation_id: exemption.exemption_id, traceparent: None }
    }

    /// The id of the `part`th event this trigger appends to the resource's stream (almost
    /// always the only one: see [`RESULTS_PER_EVENT`]).
    fn event_id(&self, resource: Uuid, part: usize) -> Uuid {
        let name = if part == 0 {
            format!("{}/{resource}", self.id)
        } else {
            format!("{}/{resource}/{part}", self.id)
        };
        Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
    }
}

/// An append waiting for the next flush.
struct Pending {
    resource: Uuid,
    expected: Option<u64>,
    event: NewEvent,
}

pub(super) struct Work<'e> {
    ev: &'e Evaluator,
    /// Resources known to this batch (`None`: no row).
    resources: HashMap<ResourceKey, Option<ResourceRow>>,
    dirty_resources: BTreeSet<ResourceKey>,
    /// Groups changed in this batch, by key (`None`: no group there any more).
    group_overrides: HashMap<GroupKey, Option<ResourceKey>>,
    /// Groups looked up in the database.
    groups: HashMap<GroupKey, Option<ResourceRow>>,
    /// Tenants whose groups are all in `groups` (a key missing there has no group).
    all_groups: HashSet<Uuid>,
    policies: HashMap<Uuid, BTreeMap<Uuid, Arc<PolicyRow>>>,
    dirty_policies: BTreeSet<(Uuid, Uuid)>,
    /// Each tenant's exemptions not yet expired (and those expired in this batch).
    exemptions: HashMap<Uuid, BTreeMap<Uuid, ExemptionRow>>,
    /// The exemptions of each (tenant, resource, policy), so that a fan-out does not scan
    /// the tenant's list for every pair.
    exemption_pairs: HashMap<PairKey, BTreeSet<Uuid>>,
    dirty_exemptions: BTreeSet<(Uuid, Uuid)>,
    removed_exemptions: BTreeSet<(Uuid, Uuid)>,
    /// Decisions known to this batch; for a resource in `decided`, every one of them.
    decisions: HashMap<PairKey, Decision>,
    decided: HashSet<ResourceKey>,
    dirty_decisions: BTreeSet<PairKey>,
    /// Compliance stream revisions known to this batch (`None`: no stream yet).
    revisions: HashMap<Uuid, Option<u64>>,
    dirty_streams: BTreeSet<Uuid>,
    /// Exemptions due to expire, earliest first: (expires_at, tenant, exemption).
    due: BTreeSet<(DateTime<Utc>, Uuid, Uuid)>,
    pending: Vec<Pending>,
    outcome: Outcome,
    reported: bool,
}

impl<'e> Work<'e> {
    pub(super) fn new(ev: &'e Evaluator) -> Self {
        Self {
            ev,
            resources: HashMap::new(),
            dirty_resources: BTreeSet::new(),
            group_overrides: HashMap::new(),
            groups: HashMap::new(),
            all_groups: HashSet::new(),
            policies: HashMap::new(),
            dirty_policies: BTreeSet::new(),
            exemptions: HashMap::new(),
            exemption_pairs: HashMap::new(),
            dirty_exemptions: BTreeSet::new(),
            removed_exemptions: BTreeSet::new(),
            decisions: HashMap::new(),
            decided: HashSet::new(),
            dirty_decisions: BTreeSet::new(),
            revisions: HashMap::new(),
            dirty_streams: BTreeSet::new(),
            due: BTreeSet::new(),
            pending: Vec::new(),
            outcome: Outcome::default(),
            reported: false,
        }
    }

    pub(super) fn reported_progress(&self) -> bool {
        self.reported
    }

    pub(super) async fn run_batch(
        &mut self,
        conn: &mut PgConnection,
        batch: &[RecordedEvent],
    ) -> Result<(), EvalError> {
        let events = batch
            .iter()
            .map(|e| Ok((e, DomainEvent::from_recorded(e)?)))
            .collect::<Result<Vec<_>, EvalError>>()?;
        self.preload(conn, &events).await?;
        if let Some(latest) = events.iter().map(|(e, _)| e.metadata.occurred_at).max() {
            for exemption in rows::due_exemptions(conn, latest).await? {
                self.due.insert((
                    exemption.expires_at.unwrap_or(latest),
                    exemption.tenant_id,
                    exemption.exemption_id,
                ));
            }
        }
        for (recorded, event) in &events {
            let now = recorded.metadata.occurred_at;
            self.expire_until(conn, now).await?;
            self.handle(conn, recorded, event, now).await?;
        }
        self.flush().await
    }

    pub(super) async fn run_tick(
        &mut self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> Result<(), EvalError> {
        for exemption in rows::due_exemptions(conn, now).await? {
            self.due.insert((
                exemption.expires_at.unwrap_or(now),
                exemption.tenant_id,
                exemption.exemption_id,
            ));
        }
        self.expire_until(conn, now).await?;
        self.flush().await
    }

    /// Loads in a few set-based queries what the batch's events name: their resources and
    /// those resources' decisions, and their tenants' policies and exemptions.
    async fn preload(
        &mut self,
        conn: &mut PgConnection,
        events: &[(&RecordedEvent, DomainEvent)],
    ) -> Result<(), EvalError> {
        let mut by_tenant: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
        for (recorded, event) in events {
            let ids = by_tenant.entry(recorded.tenant_id()).or_default();
            if let Some(id) = resource_of(event) {
                ids.insert(id);
            }
        }
        for (tenant, ids) in by_tenant {
            let ids: Vec<Uuid> = ids.into_iter().collect();
            self.ensure_resources(conn, tenant, &ids).await?;
            self.ensure_decisions(conn, tenant, &ids).await?;
            self.ensure_policies(conn, tenant).await?;
            self.ensure_exemptions(conn, tenant).await?;
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        conn: &mut PgConnection,
        recorded: &RecordedEvent,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<(), EvalError> {
        let tenant = recorded.tenant_id();
        let trigger = Trigger::of(recorded);
        let revision = recorded.revision;
        match event {
            DomainEvent::ResourceRegistered(e) => {
                let row = ResourceRow {
                    tenant_id: tenant,
                    resource_id: e.resource_id,
                    revision,
                    cloud_id: e.cloud_id.clone(),
                    name: e.name.clone(),
                    resource_type: e.resource_type.clone(),
                    location: e.location.clone(),
                    kind: e.kind.clone(),
                    tags: e.tags.clone(),
                    properties: e.properties.clone(),
                    subscription_id: e.subscription_id.clone(),
                    resource_group: e.resource_group.clone(),
                    deleted: false,
                };
                self.ensure_resources(conn, tenant, &[e.resource_id]).await?;
                let before = self.set_resource(row);
                self.resource_changed(conn, &trigger, (tenant, e.resource_id), before, true, now).await?;
            }
            DomainEvent::ResourceTagsChanged(e) => {
                self.change_resource(conn, &trigger, tenant, e.resource_id, revision, true, now, |r| {
                    r.tags = e.tags.clone();
                })
                .await?;
            }
            DomainEvent::ResourcePropertiesChanged(e) => {
                self.change_resource(conn, &trigger, tenant, e.resource_id, revision, false, now, |r| {
                    r.properties = e.properties.clone();
                    r.kind = e.kind.clone();
                })
                .await?;
            }
            DomainEvent::ResourceMoved(e) => {
                self.change_resource(conn, &trigger, tenant, e.resource_id, revision, true, now, |r| {
                    r.subscription_id = e.subscription_id.clone();
                    r.resource_group = e.resource_group.clone();
                    r.location = e.location.clone();
                })
                .await?;
            }
            DomainEvent::ResourceRenamed(e) => {
                self.change_resource(conn, &trigger, tenant, e.resource_id, revision, true, now, |r| {
                    r.name = e.name.clone();
                })
                .await?;
            }
            DomainEvent::ResourceDeleted(e) => {
                self.change_resource(conn, &trigger, tenant, e.resource_id, revision, true, now, |r| {
                    r.deleted = true;
                })
                .await?;
            }
            DomainEvent::PolicyCreated(e) => {
                self.ensure_policies(conn, tenant).await?;
                let row = PolicyRow {
                    tenant_id: tenant,
                    policy_id: e.policy_id,
                    rule_revision: revision,
                    mode: e.mode,
                    rule: e.rule.clone(),
                    parameters: e.parameters.clone(),
                    parameter_values: e.parameter_values.clone(),
                    scope: e.scope.clone(),
                    enabled: e.enabled,
                    deleted: false,
                };
                self.set_policy(row);
                self.fan_out(conn, &trigger, tenant, e.policy_id, now).await?;
            }
            DomainEvent::PolicyRuleChanged(e) => {
                if self
                    .change_policy(conn, tenant, e.policy_id, |p| {
                        p.rule = e.rule.clone();
                        p.parameters = e.parameters.clone();
                        p.parameter_values = e.parameter_values.clone();
                        p.mode = e.mode;
                        p.rule_revision = revision;
                        true
                    })
                    .await?
                {
                    self.fan_out(conn, &trigger, tenant, e.policy_id, now).await?;
                }
            }
            DomainEvent::PolicyDetailsChanged(e) => {
                if self
                    .change_policy(conn, tenant, e.policy_id, |p| {
                        let moved = p.scope != e.scope;
                        p.scope = e.scope.clone();
                        moved
                    })
                    .await?
                {
                    self.fan_out(conn, &trigger, tenant, e.policy_id, now).await?;
                }
            }
            DomainEvent::PolicyEnabled(e) => {
                if self
                    .change_policy(conn, tenant, e.policy_id, |p| !std::mem::replace(&mut p.enabled, true))
                    .await?
                {
                    self.fan_out(conn, &trigger, tenant, e.policy_id, now).await?;
                }
            }
            DomainEvent::PolicyDisabled(e) => {
                self.change_policy(conn, tenant, e.policy_id, |p| {
                    p.enabled = false;
                    false
                })
                .await?;
            }
            DomainEvent::PolicyDeleted(e) => {
                self.change_policy(conn, tenant, e.policy_id, |p| {
                    p.deleted = true;
                    false
                })
                .await?;
            }
            DomainEvent::ExemptionGranted(e) => {
                self.ensure_exemptions(conn, tenant).await?;
                let row = ExemptionRow {
                    tenant_id: tenant,
                    exemption_id: e.exemption_id,
                    policy_id: e.policy_id,
                    resource_id: e.resource_id,
                    reason: e.reason.clone(),
                    // Microseconds, as stored: the same instant whether read back or not.
                    expires_at: e.expires_at.map(|t| chrono::SubsecRound::trunc_subsecs(t, 6)),
                    expired: false,
                };
                if let Some(at) = row.expires_at {
                    self.due.insert((at, tenant, row.exemption_id));
                }
                index_pair(&mut self.exemption_pairs, tenant, &row);
                self.exemptions.entry(tenant).or_default().insert(row.exemption_id, row);
                self.removed_exemptions.remove(&(tenant, e.exemption_id));
                self.dirty_exemptions.insert((tenant, e.exemption_id));
                self.evaluate(conn, &trigger, (tenant, e.resource_id), Some(e.policy_id), now).await?;
            }
            DomainEvent::ExemptionRevoked(e) => {
                self.ensure_exemptions(conn, tenant).await?;
                if let Some(list) = self.exemptions.get_mut(&tenant) {
                    list.remove(&e.exemption_id);
                }
                if let Some(ids) = self.exemption_pairs.get_mut(&(tenant, e.resource_id, e.policy_id)) {
                    ids.remove(&e.exemption_id);
                }
                self.dirty_exemptions.remove(&(tenant, e.exemption_id));
                self.removed_exemptions.insert((tenant, e.exemption_id));
                self.evaluate(conn, &trigger, (tenant, e.resource_id), Some(e.policy_id), now).await?;
            }
            DomainEvent::ComplianceEvaluated(_) | DomainEvent::AuditSealed(_) => {}
        }
        Ok(())
    }

    /// Lets every exemption due at or before `now` expire, earliest first.
    async fn expire_until(&mut self, conn: &mut PgConnection, now: DateTime<Utc>) -> Result<(), EvalError> {
        while let Some(&(at, tenant, exemption_id)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            self.ensure_exemptions(conn, tenant).await?;
            let Some(row) = self.exemptions.get_mut(&tenant).and_then(|l| l.get_mut(&exemption_id)) else {
                continue;
            };
            if row.expired || row.expires_at != Some(at) {
                continue;
            }
            row.expired = true;
            let row = row.clone();
            self.dirty_exemptions.insert((tenant, exemption_id));
            tracing::info!(%tenant, exemption = %exemption_id, policy = %row.policy_id, resource = %row.resource_id, "exemption expired");
            self.ensure_resources(conn, tenant, &[row.resource_id]).await?;
            self.ensure_policies(conn, tenant).await?;
            let resource_revision =
                self.resources.get(&(tenant, row.resource_id)).cloned().flatten().map(|r| r.revision);
            let rule_revision =
                self.policies.get(&tenant).and_then(|p| p.get(&row.policy_id)).map(|p| p.rule_revision);
            let trigger = Trigger::expiry(&row, resource_revision, rule_revision);
            self.evaluate(conn, &trigger, (tenant, row.resource_id), Some(row.policy_id), at).await?;
        }
        Ok(())
    }

    /// Replaces a resource row, keeping the group index of this batch current; answers the
    /// row before.
    fn set_resource(&mut self, row: ResourceRow) -> Option<ResourceRow> {
        let key = (row.tenant_id, row.resource_id);
        let before = self.resources.get(&key).cloned().flatten();
        if let Some(old) = before.as_ref().filter(|r| r.is_group()) {
            self.group_overrides.insert(old.own_group_key(), None);
        }
        if row.is_group() && !row.deleted {
            self.group_overrides.insert(row.own_group_key(), Some(key));
        }
        self.resources.insert(key, Some(row));
        self.dirty_resources.insert(key);
        before
    }

    #[allow(clippy::too_many_arguments)]
    async fn change_resource(
        &mut self,
        conn: &mut PgConnection,
        trigger: &Trigger,
        tenant: Uuid,
        resource_id: Uuid,
        revision: u64,
        touches_group: bool,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut ResourceRow),
    ) -> Result<(), EvalError> {
        self.ensure_resources(conn, tenant, &[resource_id]).await?;
        let Some(mut row) = self.resources.get(&(tenant, resource_id)).cloned().flatten() else {
            tracing::warn!(%tenant, resource = %resource_id, "a change of a resource the evaluator never saw registered; skipped");
            return Ok(());
        };
        change(&mut row);
        row.revision = revision;
        let before = self.set_resource(row);
        self.resource_changed(conn, trigger, (tenant, resource_id), before, touches_group, now).await
    }

    /// After a resource row changed: evaluate it, and the members of the group it is or was.
    async fn resource_changed(
        &mut self,
        conn: &mut PgConnection,
        trigger: &Trigger,
        key: ResourceKey,
        before: Option<ResourceRow>,
        touches_group: bool,
        now: DateTime<Utc>,
    ) -> Result<(), EvalError> {
        self.evaluate(conn, trigger, key, None, now).await?;
        if !touches_group {
            return Ok(());
        }
        let after = self.resources.get(&key).cloned().flatten();
        let mut groups: BTreeSet<GroupKey> = BTreeSet::new();
        for row in [before.as_ref(), after.as_ref()].into_iter().flatten().filter(|r| r.is_group()) {
            groups.insert(row.own_group_key());
        }
        for group in groups {
            self.members_changed(conn, trigger, &group, now).await?;
        }
        Ok(())
    }

    /// Re-evaluates the members of a group (its tags, location or existence changed).
    async fn members_changed(
        &mut self,
        conn: &mut PgConnection,
        trigger: &Trigger,
        group: &GroupKey,
        now: DateTime<Utc>,
    ) -> Result<(), EvalError> {
        let tenant = group.0;
        let mut members: BTreeSet<Uuid> = rows::members(conn, group).await?.into_iter().collect();
        for (key, row) in &self.resources {
            if let Some(row) = row.as_ref().filter(|r| key.0 == tenant && !r.is_group() && !r.deleted) {
                if &row.group_key() == group {
                    members.insert(key.1);
                }
            }
        }
        let members: Vec<Uuid> = members.into_iter().collect();
        for chunk in members.chunks(self.ev.settings.page) {
            self.ensure_resources(conn, tenant, chunk).await?;
            self.ensure_decisions(conn, tenant, chunk).await?;
            for &member in chunk {
                self.evaluate(conn, trigger, (tenant, member), None, now).await?;
            }
            self.flush().await?;
        }
        Ok(())
    }

    fn set_policy(&mut self, row: PolicyRow) {
        let key = (row.tenant_id, row.policy_id);
        self.policies.entry(row.tenant_id).or_default().insert(row.policy_id, Arc::new(row));
        self.dirty_policies.insert(key);
    }

    /// Applies `change` to a known policy; answers what `change` answered (whether its scope
    /// must be evaluated), and whether the policy is live.
    async fn change_policy(
        &mut self,
        conn: &mut PgConnection,
        tenant: Uuid,
        policy_id: Uuid,
        change: impl FnOnce(&mut PolicyRow) -> bool,
    ) -> Result<bool, EvalError> {
        self.ensure_policies(conn, tenant).await?;
        let Some(current) = self.policies.get(&tenant).and_then(|p| p.get(&policy_id)) else {
            tracing::warn!(%tenant, policy = %policy_id, "a change of a policy the evaluator never saw created; skipped");
            return Ok(false);
        };
        let mut row = PolicyRow::clone(current);
        let evaluate = change(&mut row);
        let live = row.is_live();
        self.set_policy(row);
        Ok(evaluate && live)
    }

    fn live_policies(&self, tenant: Uuid, only: Option<Uuid>) -> Vec<Arc<PolicyRow>> {
        self.policies
            .get(&tenant)
            .map(|all| {
                all.values()
                    .filter(|p| p.is_live() && only.is_none_or(|id| id == p.policy_id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn exemption_for(
        &self,
        tenant: Uuid,
        resource: Uuid,
        policy: Uuid,
        now: DateTime<Utc>,
    ) -> Option<&ExemptionRow> {
        let all = self.exemptions.get(&tenant)?;
        self.exemption_pairs
            .get(&(tenant, resource, policy))?
            .iter()
            .filter_map(|id| all.get(id))
            .find(|e| e.applies_at(now))
    }

    /// The registered group of `resource`, as this batch knows it.
    async fn group_of(
        &mut self,
        conn: &mut PgConnection,
        resource: &ResourceRow,
    ) -> Result<Option<ResourceGroupInfo>, EvalError> {
        let key = resource.group_key();
        if let Some(found) = self.group_overrides.get(&key) {
            return Ok(found.and_then(|k| self.resources.get(&k).cloned().flatten()).map(|g| g.group_info()));
        }
        if !self.groups.contains_key(&key) {
            let found = if self.all_groups.contains(&resource.tenant_id) {
                None
            } else {
                rows::group(conn, &key).await?
            };
            self.groups.insert(key.clone(), found);
        }
        // A group changed in this batch has an override under its current key: one found
        // here that changed has moved away.
        let found = self.groups.get(&key).cloned().flatten();
        Ok(found
            .filter(|g| !self.dirty_resources.contains(&(g.tenant_id, g.resource_id)))
            .map(|g| g.group_info()))
    }

    /// Evaluates one resource against its tenant's live policies (or only one of them) and
    /// queues what is news.
    async fn evaluate(
        &mut self,
        conn: &mut PgConnection,
        trigger: &Trigger,
        key: ResourceKey,
        only: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), EvalError> {
        let (tenant, id) = key;
        self.ensure_resources(conn, tenant, &[id]).await?;
        let Some(resource) = self.resources.get(&key).cloned().flatten().filter(|r| !r.deleted) else {
            return Ok(());
        };
        self.ensure_decisions(conn, tenant, &[id]).await?;
        self.ensure_policies(conn, tenant).await?;
        self.ensure_exemptions(conn, tenant).await?;
        let group = self.group_of(conn, &resource).await?;
        let record = resource.to_rules();
        let ctx = ResourceContext::new(&record, group.as_ref(), None);
        let mut results = Vec::new();
        for policy in self.live_policies(tenant, only) {
            let compiled = self.ev.compiled(&policy);
            let exemption = self.exemption_for(tenant, id, policy.policy_id, now);
            let result = judge(&policy, &compiled, &ctx, &resource, exemption, now);
            let last = self.decisions.get(&(tenant, id, policy.policy_id));
            if is_news(&result, last, in_scope(&policy.scope, &resource)) {
                results.push(result);
            }
        }
        self.outcome.evaluated += 1;
        self.record(trigger, &resource, results);
        Ok(())
    }

    /// Re-evaluates a tenant's resources against one policy, a page at a time.
    async fn fan_out(
        &mut self,
        conn: &mut PgConnection,
        trigger: &Trigger,
        tenant: Uuid,
        policy_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), EvalError> {
        let Some(policy) = self.live_policies(tenant, Some(policy_id)).pop() else { return Ok(()) };
        self.ensure_exemptions(conn, tenant).await?;
        let compiled = self.ev.compiled(&policy);
        let started = Instant::now();
        // Every group of the tenant at once: one query instead of one per group met.
        if self.all_groups.insert(tenant) {
            for group in rows::groups(conn, tenant).await? {
                // The first by id when two share a name (as `rows::group` picks).
                self.groups.entry(group.own_group_key()).or_insert(Some(group));
            }
        }
        let total: i64 = rows::count_resources(conn, tenant).await?;
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut after = Uuid::nil();
        let mut done = 0u64;
        let mut last_report = Instant::now();
        loop {
            let page = rows::page(conn, tenant, policy_id, after, self.ev.settings.page).await?;
            let Some(last) = page.last() else { break };
            after = last.0.resource_id;
            for (row, stored, revision) in page {
                let key = (tenant, row.resource_id);
                done += 1;
                let row = match self.resources.get(&key) {
                    Some(known) => {
                        seen.insert(row.resource_id);
                        match known.as_ref().filter(|r| !r.deleted) {
                            Some(r) => r.clone(),
                            None => continue,
                        }
                    }
                    None => row,
                };
                let last = if self.decided.contains(&key) {
                    self.decisions.get(&(tenant, row.resource_id, policy_id)).cloned()
                } else {
                    self.decisions.get(&(tenant, row.resource_id, policy_id)).cloned().or(stored)
                };
                self.revisions.entry(row.resource_id).or_insert(revision);
                self.judge_one(conn, trigger, &policy, &compiled, &row, last.as_ref(), now).await?;
            }
            self.flush().await?;
            if last_report.elapsed().as_millis() >= 500 {
                last_report = Instant::now();
                self.reported = true;
                self.ev
                    .report_progress(Some(json!({
                        "work": "policy scope", "tenant_id": tenant, "policy_id": policy_id,
                        "done": done, "total": total,
                    })))
                    .await;
            }
        }
        // Resources this batch registered (or knows) that the table does not hold yet.
        let extra: Vec<ResourceRow> = self
            .resources
            .iter()
            .filter(|(k, _)| k.0 == tenant && !seen.contains(&k.1))
            .filter_map(|(_, r)| r.clone().filter(|r| !r.deleted))
            .collect();
        for row in extra {
            self.ensure_decisions(conn, tenant, &[row.resource_id]).await?;
            let last = self.decisions.get(&(tenant, row.resource_id, policy_id)).cloned();
            self.judge_one(conn, trigger, &policy, &compiled, &row, last.as_ref(), now).await?;
        }
        self.flush().await?;
        tracing::info!(%tenant, policy = %policy_id, resources = done, ms = started.elapsed().as_millis() as u64, "policy scope evaluated");
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn judge_one(
        &mut self,
        conn: &mut PgConnection,
        trigger: &Trigger,
        policy: &PolicyRow,
        compiled: &super::judge::Compiled,
        resource: &ResourceRow,
        last: Option<&Decision>,
        now: DateTime<Utc>,
    ) -> Result<(), EvalError> {
        let group = self.group_of(conn, resource).await?;
        let record = resource.to_rules();
        let ctx = ResourceContext::new(&record, group.as_ref(), None);
        let exemption = self.exemption_for(resource.tenant_id, resource.resource_id, policy.policy_id, now);
        let result = judge(policy, compiled, &ctx, resource, exemption, now);
        self.outcome.evaluated += 1;
        if is_news(&result, last, in_scope(&policy.scope, resource)) {
            self.record(trigger, resource, vec![result]);
        }
        Ok(())
    }

    /// Queues a `ComplianceEvaluated` with `results` (if any) and takes them as the pairs'
    /// last decisions.
    fn record(&mut self, trigger: &Trigger, resource: &ResourceRow, results: Vec<PolicyResult>) {
        if results.is_empty() {
            return;
        }
        let (tenant, id) = (resource.tenant_id, resource.resource_id);
        for result in &results {
            let key = (tenant, id, result.policy_id);
            self.decisions.insert(key, Decision::from(result));
            self.dirty_decisions.insert(key);
        }
        let provenance = Provenance {
            tenant_id: tenant,
            actor: format!("system:{}", super::ACTOR),
            correlation_id: trigger.correlation_id,
            causation_id: trigger.id,
            traceparent: trigger.traceparent.clone(),
        };
        // A tenant with hundreds of policies: several events, each under the store's size limit.
        for (part, chunk) in results.chunks(RESULTS_PER_EVENT).enumerate() {
            let expected = self.revisions.get(&id).copied().flatten();
            self.revisions.insert(id, Some(expected.map_or(0, |r| r + 1)));
            self.dirty_streams.insert(id);
            let event = DomainEvent::from(ComplianceEvaluated {
                resource_id: id,
                resource_revision: Some(resource.revision),
                source: RESERVED_SOURCE.to_owned(),
                results: chunk.to_vec(),
            })
            .into_new_event(provenance.clone())
            .with_id(trigger.event_id(id, part));
            self.pending.push(Pending { resource: id, expected, event });
        }
    }

    /// Appends everything queued: one chain per stream (in queue order), chains side by side.
    async fn flush(&mut self) -> Result<(), EvalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut chains: Vec<(Uuid, Vec<Pending>)> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        for p in self.pending.drain(..) {
            match index.get(&p.resource) {
                Some(&i) => chains[i].1.push(p),
                None => {
                    index.insert(p.resource, chains.len());
                    chains.push((p.resource, vec![p]));
                }
            }
        }
        let store = &self.ev.store;
        let results: Vec<Result<(Uuid, u64, u64), EvalError>> = futures::stream::iter(chains)
            .map(|(resource, chain)| append_chain(store.as_ref(), resource, chain))
            .buffer_unordered(self.ev.settings.concurrency.max(1))
            .collect()
            .await;
        for result in results {
            let (resource, head, appended) = result?;
            self.revisions.insert(resource, Some(head));
            self.dirty_streams.insert(resource);
            self.outcome.appended += appended;
        }
        Ok(())
    }

    async fn ensure_resources(
        &mut self,
        conn: &mut PgConnection,
        tenant: Uuid,
        ids: &[Uuid],
    ) -> Result<(), EvalError> {
        let missing: Vec<Uuid> =
            ids.iter().copied().filter(|id| !self.resources.contains_key(&(tenant, *id))).collect();
        if missing.is_empty() {
            return Ok(());
        }
        for row in rows::resources(conn, tenant, &missing).await? {
            self.resources.insert((tenant, row.resource_id), Some(row));
        }
        for id in missing {
            self.resources.entry((tenant, id)).or_insert(None);
        }
        Ok(())
    }

    async fn ensure_decisions(
        &mut self,
        conn: &mut PgConnection,
        tenant: Uuid,
        ids: &[Uuid],
    ) -> Result<(), EvalError> {
        let missing: Vec<Uuid> =
            ids.iter().copied().filter(|id| !self.decided.contains(&(tenant, *id))).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let (decisions, revisions) = rows::decisions(conn, tenant, &missing).await?;
        for (resource, policy, decision) in decisions {
            // What this batch decided is newer than what is stored.
            self.decisions.entry((tenant, resource, policy)).or_insert(decision);
        }
        for (resource, revision) in revisions {
            self.revisions.entry(resource).or_insert(Some(revision));
        }
        for id in missing {
            self.revisions.entry(id).or_insert(None);
            self.decided.insert((tenant, id));
        }
        Ok(())
    }

    async fn ensure_policies(&mut self, conn: &mut PgConnection, tenant: Uuid) -> Result<(), EvalError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.policies.entry(tenant) {
            let loaded = rows::policies(conn, tenant).await?;
            slot.insert(loaded.into_iter().map(|p| (p.policy_id, Arc::new(p))).collect());
        }
        Ok(())
    }

    async fn ensure_exemptions(&mut self, conn: &mut PgConnection, tenant: Uuid) -> Result<(), EvalError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.exemptions.entry(tenant) {
            let loaded = rows::exemptions(conn, tenant).await?;
            for e in &loaded {
                index_pair(&mut self.exemption_pairs, tenant, e);
            }
            slot.insert(loaded.into_iter().map(|e| (e.exemption_id, e)).collect());
        }
        Ok(())
    }

    /// Writes what the batch changed (in the caller's transaction).
    pub(super) async fn write(self, conn: &mut PgConnection) -> Result<Outcome, EvalError> {
        let mut w = Writes::default();
        for key in &self.dirty_resources {
            if let Some(Some(row)) = self.resources.get(key) {
                w.resources.push(row);
            }
        }
        for (tenant, id) in &self.dirty_policies {
            if let Some(row) = self.policies.get(tenant).and_then(|p| p.get(id)) {
                w.policies.push(row);
            }
        }
        for (tenant, id) in &self.dirty_exemptions {
            if let Some(row) = self.exemptions.get(tenant).and_then(|e| e.get(id)) {
                w.exemptions.push(row);
            }
        }
        w.removed_exemptions = self.removed_exemptions.iter().copied().collect();
        for key in &self.dirty_decisions {
            if let Some(d) = self.decisions.get(key) {
                w.decisions.push((key.0, key.1, key.2, d));
            }
        }
        for id in &self.dirty_streams {
            if let Some(Some(revision)) = self.revisions.get(id) {
                w.streams.push((*id, *revision));
            }
        }
        rows::write(conn, &w).await?;
        Ok(self.outcome)
    }
}

/// The resource an event is about, if it is about one.
fn resource_of(event: &DomainEvent) -> Option<Uuid> {
    match event {
        DomainEvent::ResourceRegistered(ev::ResourceRegistered { resource_id, .. })
        | DomainEvent::ResourceTagsChanged(ev::ResourceTagsChanged { resource_id, .. })
        | DomainEvent::ResourcePropertiesChanged(ev::ResourcePropertiesChanged { resource_id, .. })
        | DomainEvent::ResourceMoved(ev::ResourceMoved { resource_id, .. })
        | DomainEvent::ResourceRenamed(ev::ResourceRenamed { resource_id, .. })
        | DomainEvent::ResourceDeleted(ev::ResourceDeleted { resource_id, .. })
        | DomainEvent::ExemptionGranted(ev::ExemptionGranted { resource_id, .. })
        | DomainEvent::ExemptionRevoked(ev::ExemptionRevoked { resource_id, .. }) => Some(*resource_id),
        _ => None,
    }
}

const MAX_ATTEMPTS: usize = 8;

/// Appends one stream's queued events in order. The first goes at the revision the state
/// expects; each next one after the previous. On a conflict the events after the expected
/// revision are searched for this event's id (appended before a restart, with an external
/// scanner's result after it): found, it is done; not found, it goes after them. Answers the
/// stream's head and how many events were appended.
#[tracing::instrument(name = "evaluator.append", skip_all, fields(%resource, events = chain.len()))]
async fn append_chain(
    store: &dyn cortex_events::EventStore,
    resource: Uuid,
    chain: Vec<Pending>,
) -> Result<(Uuid, u64, u64), EvalError> {
    let stream = StreamName::compliance(resource);
    let mut head: Option<u64> = chain.first().and_then(|p| p.expected);
    let mut appended = 0u64;
    for p in chain {
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            let expected = head.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            match store.append(&stream, expected, vec![p.event.clone()]).await {
                Ok(outcome) => {
                    head = Some(outcome.revision);
                    appended += 1;
                    break;
                }
                Err(StoreError::DuplicateEventId { .. }) => {
                    // Stored before, further back; `expected` held, so it is the head.
                    break;
                }
                Err(StoreError::WrongExpectedRevision { actual, .. }) if attempts < MAX_ATTEMPTS => {
                    let from = head.map_or(0, |h| h + 1);
                    let after = store
                        .read_stream(&stream, from, Direction::Forwards, 4096)
                        .await
                        .map_err(|source| EvalError::Append { stream: stream.to_string(), source })?;
                    head = actual;
                    if after.iter().any(|e| e.event_id() == p.event.event_id) {
                        break;
                    }
                }
                Err(StoreError::WrongExpectedRevision { .. }) => {
                    return Err(EvalError::Contended { stream: stream.to_string(), attempts });
                }
                Err(source) => return Err(EvalError::Append { stream: stream.to_string(), source }),
            }
        }
    }
    Ok((resource, head.unwrap_or(0), appended))
}
