//! The compliance read models: scenarios with exact numbers for each counting rule, and random
//! histories whose rows must not depend on how the log is cut into batches, must equal what
//! the pure model replays, and must equal a recount from `results` in SQL.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use cortex_events::{
    Catalog, DomainEvent, EventStore, ExpectedRevision, Provenance, RecordedEvent, StreamName,
    SubscriptionItem,
    catalog::{self as ev, ComplianceState, ComplianceState::*},
    postgres::PostgresEventStore,
    testing::TestDatabase,
};
use cortex_projections::{
    Changes, ComplianceProjector, Projector, Runner, RunnerSettings,
    compliance::{Model, read_tables},
};
use futures::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use uuid::Uuid;

/// (compliant, non_compliant, exempt, total, percentage) as a table shows them.
type Counted = (i64, i64, i64, i64, Option<f64>);

const NOTHING: Counted = (0, 0, 0, 0, None);

fn store_of(db: &TestDatabase) -> Arc<dyn EventStore> {
    Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())))
}

fn runner(db: &TestDatabase, store: &Arc<dyn EventStore>, batch_size: usize) -> Runner<ComplianceProjector> {
    let settings = RunnerSettings {
        batch_size,
        batch_wait: Duration::from_millis(5),
        standby_poll: Duration::from_millis(50),
        ..RunnerSettings::default()
    };
    Runner::new(store.clone(), db.pool.clone(), ComplianceProjector, settings)
}

async fn append(
    store: &Arc<dyn EventStore>,
    tenant: Uuid,
    at: DateTime<Utc>,
    stream: StreamName,
    event: DomainEvent,
) {
    let mut new = event.into_new_event(Provenance::system(tenant, "test"));
    new.occurred_at = at;
    store.append(&stream, ExpectedRevision::Any, vec![new]).await.unwrap();
}

fn time(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

fn registered(resource_id: Uuid, subscription_id: &str, resource_type: &str) -> DomainEvent {
    ev::ResourceRegistered {
        resource_id,
        cloud_id: format!(
            "/subscriptions/{subscription_id}/resourceGroups/rg/providers/{resource_type}/{resource_id}"
        ),
        name: resource_id.to_string(),
        resource_type: resource_type.into(),
        location: "westeurope".into(),
        kind: None,
        tags: BTreeMap::new(),
        properties: serde_json::Map::new(),
        subscription_id: subscription_id.into(),
        resource_group: "rg".into(),
    }
    .into()
}

fn policy_created(policy_id: Uuid, enabled: bool) -> DomainEvent {
    ev::PolicyCreated {
        policy_id,
        name: format!("policy {policy_id}"),
        description: Some("a test policy".into()),
        category: None,
        severity: ev::Severity::High,
        mode: ev::PolicyMode::Indexed,
        rule: json!({"if": {"field": "type", "equals": "X/y"}, "then": {"effect": "audit"}}),
        parameters: serde_json::Map::new(),
        parameter_values: serde_json::Map::new(),
        scope: ev::PolicyScope::default(),
        enabled,
    }
    .into()
}

fn evaluated(resource_id: Uuid, results: &[(Uuid, ComplianceState)]) -> DomainEvent {
    ev::ComplianceEvaluated {
        resource_id,
        resource_revision: Some(0),
        source: "policycortex".into(),
        results: results
            .iter()
            .map(|&(policy_id, state)| ev::PolicyResult {
                policy_id,
                state,
                reason: Some(format!("{state:?}")),
                details: None,
                policy_revision: Some(0),
            })
            .collect(),
    }
    .into()
}

/// One tenant's estate in a database of its own, with a clock the events carry.
struct Estate {
    db: TestDatabase,
    store: Arc<dyn EventStore>,
    tenant: Uuid,
    now: DateTime<Utc>,
}

impl Estate {
    async fn new() -> Self {
        let db = TestDatabase::create().await;
        let store = store_of(&db);
        Self { db, store, tenant: Uuid::now_v7(), now: time(2, 12) }
    }

    async fn append(&self, stream: StreamName, event: DomainEvent) {
        append(&self.store, self.tenant, self.now, stream, event).await;
    }

    async fn register(&self, resource: Uuid, subscription: &str, resource_type: &str) {
        self.append(StreamName::resource(resource), registered(resource, subscription, resource_type)).await;
    }

    async fn delete(&self, resource: Uuid) {
        let e = ev::ResourceDeleted {
            resource_id: resource,
            cloud_id: "/x".into(),
            name: "x".into(),
            resource_type: "X/y".into(),
        };
        self.append(StreamName::resource(resource), e.into()).await;
    }

    async fn move_to(&self, resource: Uuid, subscription: &str) {
        let e = ev::ResourceMoved {
            resource_id: resource,
            subscription_id: subscription.into(),
            resource_group: "rg".into(),
            location: "westeurope".into(),
            previous_subscription_id: "?".into(),
            previous_resource_group: "rg".into(),
            previous_location: "westeurope".into(),
        };
        self.append(StreamName::resource(resource), e.into()).await;
    }

    async fn policy(&self, policy: Uuid, enabled: bool) {
        self.append(StreamName::policy(policy), policy_created(policy, enabled)).await;
    }

    async fn set_enabled(&self, policy: Uuid, enabled: bool) {
        let e: DomainEvent = if enabled {
            ev::PolicyEnabled { policy_id: policy }.into()
        } else {
            ev::PolicyDisabled { policy_id: policy }.into()
        };
        self.append(StreamName::policy(policy), e).await;
    }

    async fn delete_policy(&self, policy: Uuid) {
        let e = ev::PolicyDeleted { policy_id: policy, name: "gone".into() };
        self.append(StreamName::policy(policy), e.into()).await;
    }

    async fn evaluate(&self, resource: Uuid, results: &[(Uuid, ComplianceState)]) {
        self.append(StreamName::compliance(resource), evaluated(resource, results)).await;
    }

    async fn project(&self) {
        runner(&self.db, &self.store, 500).run_until_caught_up().await.unwrap();
    }

    /// (subscription, type) → counts, in key order.
    async fn summary(&self) -> Vec<(String, String, Counted)> {
        type Line = (String, String, i64, i64, i64, i64, Option<f64>);
        let rows: Vec<Line> = sqlx::query_as(
            "SELECT subscription_id, resource_type, compliant, non_compliant, exempt, total, percentage \
               FROM rm_compliance.summary WHERE tenant_id = $1 ORDER BY 1, 2",
        )
        .bind(self.tenant)
        .fetch_all(&self.db.pool)
        .await
        .unwrap();
        rows.into_iter().map(|(s, t, c, n, e, total, p)| (s, t, (c, n, e, total, p))).collect()
    }

    async fn totals(&self) -> Counted {
        sqlx::query_as(
            "SELECT compliant, non_compliant, exempt, total, percentage FROM rm_compliance.tenant_totals \
              WHERE tenant_id = $1",
        )
        .bind(self.tenant)
        .fetch_optional(&self.db.pool)
        .await
        .unwrap()
        .unwrap_or(NOTHING)
    }

    /// A policy's counts; `None` when it has no row.
    async fn policy_counts(&self, policy: Uuid) -> Option<Counted> {
        sqlx::query_as(
            "SELECT compliant, non_compliant, exempt, total, percentage FROM rm_compliance.policies \
              WHERE tenant_id = $1 AND policy_id = $2",
        )
        .bind(self.tenant)
        .bind(policy)
        .fetch_optional(&self.db.pool)
        .await
        .unwrap()
    }

    /// A resource's overall state and deleted flag.
    async fn resource(&self, resource: Uuid) -> (Option<String>, bool) {
        sqlx::query_as(
            "SELECT state, deleted FROM rm_compliance.resources WHERE tenant_id = $1 AND resource_id = $2",
        )
        .bind(self.tenant)
        .bind(resource)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    async fn trend(&self) -> Vec<(NaiveDate, i64, i64, i64)> {
        sqlx::query_as(
            "SELECT day, compliant, non_compliant, exempt FROM rm_compliance.trend WHERE tenant_id = $1 ORDER BY day",
        )
        .bind(self.tenant)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    /// Checks the tables against a replay and a recount, then drops the database.
    async fn finish(self) {
        assert_consistent(&self.db, &self.store, "rm_compliance").await;
        self.db.drop_database().await;
    }
}

fn ids<const N: usize>() -> [Uuid; N] {
    std::array::from_fn(|_| Uuid::now_v7())
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

#[tokio::test]
async fn results_count_by_state_and_a_resource_takes_its_worst_counted_state() {
    let estate = Estate::new().await;
    let [p1, p2, p3, p4, p5] = ids();
    let [ra, rb, rc, rd, re] = ids();
    for p in [p1, p2, p3, p4, p5] {
        estate.policy(p, true).await;
    }
    for r in [ra, rb, rc, rd, re] {
        estate.register(r, "sub-1", "X/y").await;
    }
    estate.evaluate(ra, &[(p1, Compliant), (p2, NonCompliant)]).await;
    estate.evaluate(rb, &[(p1, Compliant), (p3, Exempt)]).await;
    estate.evaluate(rc, &[(p3, Exempt), (p4, NotApplicable)]).await;
    estate.evaluate(rd, &[(p4, NotApplicable), (p5, Error)]).await;
    estate.project().await;

    assert_eq!(estate.resource(ra).await.0.as_deref(), Some("non_compliant"));
    assert_eq!(estate.resource(rb).await.0.as_deref(), Some("compliant"));
    assert_eq!(estate.resource(rc).await.0.as_deref(), Some("exempt"));
    assert_eq!(estate.resource(rd).await.0, None, "not_applicable and error do not count");
    assert_eq!(estate.resource(re).await.0, None, "no results");
    let third = 2.0 / 3.0;
    // rd and re are in no summary: total counts applicable (counted) resources only.
    assert_eq!(estate.summary().await, vec![("sub-1".into(), "x/y".into(), (1, 1, 1, 3, Some(third)))]);
    assert_eq!(estate.totals().await, (1, 1, 1, 3, Some(third)));
    assert_eq!(estate.policy_counts(p1).await, Some((2, 0, 0, 2, Some(1.0))));
    assert_eq!(estate.policy_counts(p2).await, Some((0, 1, 0, 1, Some(0.0))));
    assert_eq!(estate.policy_counts(p3).await, Some((0, 0, 2, 2, Some(1.0))), "exempt counts as passing");
    assert_eq!(estate.policy_counts(p4).await, Some(NOTHING), "percentage is NULL at total 0");
    assert_eq!(estate.policy_counts(p5).await, Some(NOTHING));

    // A later result replaces the earlier one for the policies it lists and keeps the others.
    estate.evaluate(rb, &[(p1, NonCompliant)]).await;
    estate.evaluate(ra, &[(p2, NotApplicable)]).await;
    estate.project().await;
    assert_eq!(estate.resource(ra).await.0.as_deref(), Some("compliant"));
    assert_eq!(estate.resource(rb).await.0.as_deref(), Some("non_compliant"));
    assert_eq!(estate.policy_counts(p1).await, Some((1, 1, 0, 2, Some(0.5))));
    assert_eq!(estate.policy_counts(p2).await, Some(NOTHING));
    assert_eq!(estate.policy_counts(p3).await, Some((0, 0, 2, 2, Some(1.0))));
    assert_eq!(estate.totals().await, (1, 1, 1, 3, Some(third)));
    estate.finish().await;
}

#[tokio::test]
async fn a_disabled_policy_stops_counting_everywhere_and_counts_again_once_enabled() {
    let estate = Estate::new().await;
    let [p1, p2] = ids();
    let [ra, rb] = ids();
    estate.policy(p1, true).await;
    estate.policy(p2, true).await;
    estate.register(ra, "sub-1", "X/y").await;
    estate.register(rb, "sub-1", "X/y").await;
    estate.evaluate(ra, &[(p1, NonCompliant), (p2, Compliant)]).await;
    estate.evaluate(rb, &[(p1, NonCompliant)]).await;
    estate.project().await;
    assert_eq!(estate.summary().await, vec![("sub-1".into(), "x/y".into(), (0, 2, 0, 2, Some(0.0)))]);
    assert_eq!(estate.policy_counts(p1).await, Some((0, 2, 0, 2, Some(0.0))));

    estate.set_enabled(p1, false).await;
    estate.project().await;
    assert_eq!(estate.policy_counts(p1).await, Some(NOTHING));
    assert_eq!(estate.policy_counts(p2).await, Some((1, 0, 0, 1, Some(1.0))));
    assert_eq!(estate.resource(ra).await.0.as_deref(), Some("compliant"));
    assert_eq!(estate.resource(rb).await.0, None);
    assert_eq!(estate.summary().await, vec![("sub-1".into(), "x/y".into(), (1, 0, 0, 1, Some(1.0)))]);
    assert_eq!(estate.totals().await, (1, 0, 0, 1, Some(1.0)));

    // A result recorded while the policy is disabled counts once it is enabled.
    estate.evaluate(rb, &[(p1, Compliant)]).await;
    estate.set_enabled(p1, true).await;
    estate.project().await;
    assert_eq!(estate.policy_counts(p1).await, Some((1, 1, 0, 2, Some(0.5))));
    assert_eq!(estate.resource(ra).await.0.as_deref(), Some("non_compliant"));
    assert_eq!(estate.resource(rb).await.0.as_deref(), Some("compliant"));
    assert_eq!(estate.totals().await, (1, 1, 0, 2, Some(0.5)));

    // A policy created disabled counts nothing until enabled.
    let p3 = Uuid::now_v7();
    estate.policy(p3, false).await;
    estate.evaluate(rb, &[(p3, NonCompliant)]).await;
    estate.project().await;
    assert_eq!(estate.policy_counts(p3).await, Some(NOTHING));
    assert_eq!(estate.resource(rb).await.0.as_deref(), Some("compliant"));
    estate.finish().await;
}

#[tokio::test]
async fn a_deleted_policy_loses_its_row_and_its_results_stop_counting() {
    let estate = Estate::new().await;
    let [p1, p2] = ids();
    let [ra, rb] = ids();
    estate.policy(p1, true).await;
    estate.policy(p2, true).await;
    estate.register(ra, "sub-1", "X/y").await;
    estate.register(rb, "sub-1", "X/y").await;
    estate.evaluate(ra, &[(p1, NonCompliant), (p2, Exempt)]).await;
    estate.evaluate(rb, &[(p1, Compliant)]).await;
    estate.delete_policy(p1).await;
    estate.project().await;
    assert_eq!(estate.policy_counts(p1).await, None, "the row is gone");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_compliance.results WHERE policy_id = $1")
        .bind(p1)
        .fetch_one(&estate.db.pool)
        .await
        .unwrap();
    assert_eq!(kept, 2, "its results stay");
    assert_eq!(estate.resource(ra).await.0.as_deref(), Some("exempt"));
    assert_eq!(estate.resource(rb).await.0, None);
    assert_eq!(estate.summary().await, vec![("sub-1".into(), "x/y".into(), (0, 0, 1, 1, Some(1.0)))]);
    assert_eq!(estate.totals().await, (0, 0, 1, 1, Some(1.0)));
    estate.finish().await;
}

#[tokio::test]
async fn a_deleted_resource_leaves_the_summaries_and_counts_again_once_registered_again() {
    let estate = Estate::new().await;
    let p1 = Uuid::now_v7();
    let [ra, rb] = ids();
    estate.policy(p1, true).await;
    estate.register(ra, "sub-1", "X/y").await;
    estate.register(rb, "sub-2", "X/y").await;
    estate.evaluate(ra, &[(p1, NonCompliant)]).await;
    estate.evaluate(rb, &[(p1, Compliant)]).await;
    estate.project().await;
    assert_eq!(estate.totals().await, (1, 1, 0, 2, Some(0.5)));

    estate.delete(ra).await;
    estate.project().await;
    assert_eq!(estate.resource(ra).await, (None, true), "the row stays, flagged");
    assert_eq!(estate.summary().await, vec![("sub-2".into(), "x/y".into(), (1, 0, 0, 1, Some(1.0)))]);
    assert_eq!(estate.policy_counts(p1).await, Some((1, 0, 0, 1, Some(1.0))));
    assert_eq!(estate.totals().await, (1, 0, 0, 1, Some(1.0)));

    // Registered again (elsewhere): its kept result counts again, in its new group.
    estate.register(ra, "sub-3", "X/y").await;
    estate.project().await;
    assert_eq!(estate.resource(ra).await, (Some("non_compliant".into()), false));
    assert_eq!(
        estate.summary().await,
        vec![
            ("sub-2".into(), "x/y".into(), (1, 0, 0, 1, Some(1.0))),
            ("sub-3".into(), "x/y".into(), (0, 1, 0, 1, Some(0.0))),
        ]
    );
    assert_eq!(estate.policy_counts(p1).await, Some((1, 1, 0, 2, Some(0.5))));

    // Results recorded for a resource before it is registered count from its registration.
    let rc = Uuid::now_v7();
    estate.evaluate(rc, &[(p1, Compliant)]).await;
    estate.project().await;
    assert_eq!(estate.policy_counts(p1).await, Some((1, 1, 0, 2, Some(0.5))));
    estate.register(rc, "sub-2", "X/y").await;
    estate.project().await;
    assert_eq!(estate.policy_counts(p1).await, Some((2, 1, 0, 3, Some(2.0 / 3.0))));

    // Everything deleted: no summary or totals rows remain.
    for r in [ra, rb, rc] {
        estate.delete(r).await;
    }
    estate.project().await;
    assert_eq!(estate.summary().await, vec![]);
    assert_eq!(estate.totals().await, NOTHING);
    assert_eq!(estate.policy_counts(p1).await, Some(NOTHING));
    estate.finish().await;
}

#[tokio::test]
async fn a_moved_resource_takes_its_state_to_its_new_subscription() {
    let estate = Estate::new().await;
    let p1 = Uuid::now_v7();
    let [ra, rb, rc] = ids();
    estate.policy(p1, true).await;
    estate.register(ra, "sub-1", "X/y").await;
    estate.register(rb, "sub-1", "X/y").await;
    // Spellings of one subscription and one type are one group.
    estate.register(rc, "SUB-2", "x/Y").await;
    estate.evaluate(ra, &[(p1, NonCompliant)]).await;
    estate.evaluate(rb, &[(p1, Compliant)]).await;
    estate.evaluate(rc, &[(p1, Compliant)]).await;
    estate.project().await;
    assert_eq!(
        estate.summary().await,
        vec![
            ("sub-1".into(), "x/y".into(), (1, 1, 0, 2, Some(0.5))),
            ("sub-2".into(), "x/y".into(), (1, 0, 0, 1, Some(1.0))),
        ]
    );

    estate.move_to(ra, "Sub-2").await;
    estate.project().await;
    assert_eq!(
        estate.summary().await,
        vec![
            ("sub-1".into(), "x/y".into(), (1, 0, 0, 1, Some(1.0))),
            ("sub-2".into(), "x/y".into(), (1, 1, 0, 2, Some(0.5))),
        ]
    );
    estate.move_to(rb, "sub-2").await;
    estate.project().await;
    assert_eq!(estate.summary().await, vec![("sub-2".into(), "x/y".into(), (2, 1, 0, 3, Some(2.0 / 3.0)))]);
    assert_eq!(estate.totals().await, (2, 1, 0, 3, Some(2.0 / 3.0)), "a move changes no total");
    estate.finish().await;
}

#[tokio::test]
async fn the_trend_keeps_each_days_last_totals_and_never_goes_back_a_day() {
    let mut estate = Estate::new().await;
    let p1 = Uuid::now_v7();
    let [ra, rb] = ids();
    estate.now = time(1, 8);
    estate.policy(p1, true).await;
    estate.register(ra, "sub-1", "X/y").await;
    estate.register(rb, "sub-1", "X/y").await;
    estate.evaluate(ra, &[(p1, Compliant)]).await;
    estate.now = time(1, 12);
    estate.evaluate(rb, &[(p1, NonCompliant)]).await;
    estate.now = time(1, 15);
    // Changes nothing counted: no new point.
    estate.evaluate(rb, &[(p1, NonCompliant)]).await;
    estate.project().await;
    assert_eq!(estate.trend().await, vec![(day(1), 1, 1, 0)]);

    estate.now = time(2, 9);
    estate.evaluate(rb, &[(p1, Compliant)]).await;
    // A writer whose clock is a day behind: its change lands on the latest day, not before.
    estate.now = time(1, 23);
    estate.evaluate(ra, &[(p1, Exempt)]).await;
    // Day 3 changes nothing counted; day 4 empties the totals, which is a point too.
    estate.now = time(3, 10);
    estate.evaluate(ra, &[(p1, Exempt)]).await;
    estate.now = time(4, 10);
    estate.set_enabled(p1, false).await;
    estate.project().await;
    assert_eq!(estate.trend().await, vec![(day(1), 1, 1, 0), (day(2), 1, 0, 1), (day(4), 0, 0, 0)]);
    assert_eq!(estate.totals().await, NOTHING);
    estate.finish().await;
}

#[tokio::test]
async fn a_batch_records_what_it_changed_for_change_notices() {
    let estate = Estate::new().await;
    let [p1, p2] = ids();
    let [ra, rb, rc] = ids();
    estate.policy(p1, true).await;
    estate.policy(p2, true).await;
    for r in [ra, rb, rc] {
        estate.register(r, "sub-1", "X/y").await;
    }
    estate.evaluate(ra, &[(p1, NonCompliant)]).await;
    estate.evaluate(rb, &[(p1, Compliant), (p2, Compliant)]).await;
    estate.evaluate(rc, &[(p2, Compliant)]).await;
    estate.project().await;
    let head = estate.store.head().await.unwrap();

    estate.set_enabled(p1, false).await;
    let batch = read_log(&estate.store, head).await;
    let mut tx = cortex_events::postgres::begin(&estate.db.pool).await.unwrap();
    sqlx::query("SET LOCAL search_path = rm_compliance, public").execute(&mut *tx).await.unwrap();
    let mut changes = Changes::default();
    ComplianceProjector.apply(&mut tx, &batch, &mut changes).await.unwrap();
    tx.rollback().await.unwrap();
    let recorded: Vec<(Uuid, &str, Vec<String>)> =
        changes.iter().map(|(t, m, ids)| (t, m, ids.iter().cloned().collect())).collect();
    let mut judged = vec![ra.to_string(), rb.to_string()];
    judged.sort();
    assert_eq!(
        recorded,
        vec![(estate.tenant, "compliance", judged), (estate.tenant, "policies", vec![p1.to_string()])],
        "the resources p1 judged, not rc"
    );
    estate.project().await;
    estate.finish().await;
}

/// Events after `from` (the whole log for `None`) that the projector reads, in log order.
async fn read_log(store: &Arc<dyn EventStore>, from: Option<cortex_events::Position>) -> Vec<RecordedEvent> {
    let mut subscription = store.subscribe_all(from, ComplianceProjector.filter());
    let mut events = Vec::new();
    while let Some(item) = subscription.next().await {
        match item.unwrap() {
            SubscriptionItem::Event(event) => events.push(*event),
            SubscriptionItem::CaughtUp => break,
            SubscriptionItem::Checkpoint(_) => {}
        }
    }
    events
}

/// The tables of `schema` equal what the model replays from the whole log, and every count
/// equals a recount from `results` in SQL.
async fn assert_consistent(db: &TestDatabase, store: &Arc<dyn EventStore>, schema: &str) {
    let log = read_log(store, None).await;
    let replayed = Model::replay(&log).unwrap().tables();
    let tables = tables_of(db, schema).await;
    let differences = tables.differences(&replayed);
    assert!(differences.is_empty(), "{schema} differs from a replay:\n{}", differences.join("\n"));
    let mismatches = recount_mismatches(db, schema).await;
    assert!(mismatches.is_empty(), "{schema} differs from a recount: {mismatches:?}");
}

async fn tables_of(db: &TestDatabase, schema: &str) -> cortex_projections::compliance::Tables {
    let mut tx = cortex_events::postgres::begin(&db.pool).await.unwrap();
    sqlx::query(&format!("SET LOCAL search_path = {schema}, public")).execute(&mut *tx).await.unwrap();
    let tables = read_tables(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    tables
}

/// Every count of `schema` recounted from its `results` by the counting rule, in SQL
/// independent of the projector: the names of the checks that found a difference.
async fn recount_mismatches(db: &TestDatabase, schema: &str) -> Vec<String> {
    let counted = format!(
        "counted AS (
            SELECT x.tenant_id, x.resource_id, x.policy_id, x.state
              FROM {schema}.results x
              JOIN {schema}.resources r ON r.tenant_id = x.tenant_id AND r.resource_id = x.resource_id
              JOIN {schema}.policies p ON p.tenant_id = x.tenant_id AND p.policy_id = x.policy_id
             WHERE NOT r.deleted AND p.enabled AND x.state IN ('compliant', 'non_compliant', 'exempt')),
         per_resource AS (
            SELECT r.tenant_id, r.resource_id, r.subscription_id, r.resource_type,
                   count(*) FILTER (WHERE c.state = 'compliant') AS compliant,
                   count(*) FILTER (WHERE c.state = 'non_compliant') AS non_compliant,
                   count(*) FILTER (WHERE c.state = 'exempt') AS exempt
              FROM {schema}.resources r LEFT JOIN counted c USING (tenant_id, resource_id)
             GROUP BY 1, 2, 3, 4),
         overall AS (
            SELECT *, CASE WHEN non_compliant > 0 THEN 'non_compliant' WHEN compliant > 0 THEN 'compliant'
                           WHEN exempt > 0 THEN 'exempt' END AS state
              FROM per_resource)"
    );
    let by_state = "count(*) FILTER (WHERE state = 'compliant'), count(*) FILTER (WHERE state = 'non_compliant'), \
                    count(*) FILTER (WHERE state = 'exempt')";
    let checks = [
        (
            "resources",
            format!(
                "SELECT tenant_id, resource_id, compliant, non_compliant, exempt, state FROM overall
                 EXCEPT ALL SELECT tenant_id, resource_id, compliant, non_compliant, exempt, state FROM {schema}.resources"
            ),
        ),
        (
            "policies",
            format!(
                "SELECT p.tenant_id, p.policy_id, count(c.state) FILTER (WHERE c.state = 'compliant'),
                        count(c.state) FILTER (WHERE c.state = 'non_compliant'),
                        count(c.state) FILTER (WHERE c.state = 'exempt')
                   FROM {schema}.policies p LEFT JOIN counted c USING (tenant_id, policy_id) GROUP BY 1, 2
                 EXCEPT ALL SELECT tenant_id, policy_id, compliant, non_compliant, exempt FROM {schema}.policies"
            ),
        ),
        (
            "summary",
            format!(
                "(SELECT tenant_id, subscription_id, resource_type, {by_state} FROM overall WHERE state IS NOT NULL
                   GROUP BY 1, 2, 3
                  EXCEPT ALL SELECT tenant_id, subscription_id, resource_type, compliant, non_compliant, exempt
                   FROM {schema}.summary)
                 UNION ALL
                 (SELECT tenant_id, subscription_id, resource_type, compliant, non_compliant, exempt FROM {schema}.summary
                  EXCEPT ALL SELECT tenant_id, subscription_id, resource_type, {by_state} FROM overall
                   WHERE state IS NOT NULL GROUP BY 1, 2, 3)"
            ),
        ),
        (
            "tenant_totals",
            format!(
                "(SELECT tenant_id, {by_state} FROM overall WHERE state IS NOT NULL GROUP BY 1
                  EXCEPT ALL SELECT tenant_id, compliant, non_compliant, exempt FROM {schema}.tenant_totals)
                 UNION ALL
                 (SELECT tenant_id, compliant, non_compliant, exempt FROM {schema}.tenant_totals
                  EXCEPT ALL SELECT tenant_id, {by_state} FROM overall WHERE state IS NOT NULL GROUP BY 1)"
            ),
        ),
        (
            "generated columns",
            ["policies", "summary", "tenant_totals", "trend"]
                .map(|t| {
                    format!(
                        "SELECT 1 FROM {schema}.{t} WHERE total <> compliant + non_compliant + exempt
                            OR percentage IS DISTINCT FROM CASE WHEN total > 0
                               THEN (compliant + exempt)::double precision / total END"
                    )
                })
                .join(" UNION ALL "),
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, query) in checks {
        let sql = if query.contains("overall") || query.contains("counted") {
            format!("WITH {counted} SELECT count(*) FROM ({query}) AS q")
        } else {
            format!("SELECT count(*) FROM ({query}) AS q")
        };
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&db.pool).await.unwrap();
        if n > 0 {
            mismatches.push(format!("{name}: {n} rows"));
        }
    }
    mismatches
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Life {
    Never,
    Alive,
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PolicyLife {
    Never,
    On,
    Off,
    Gone,
}

const STATES: [ComplianceState; 5] = [Compliant, NonCompliant, Exempt, NotApplicable, Error];

/// A random history over two tenants of its own: resources registered, moved, deleted and
/// registered again in subscriptions and types spelled in two cases; policies created enabled
/// or not, changed, enabled, disabled and deleted, with exemptions; results for any resource
/// and policy, including ones that do not exist (yet, or any more, or ever). Event times move
/// forward over a few days, except that some writers' clocks are up to a day behind.
async fn random_history(store: &Arc<dyn EventStore>, seed: u64, steps: usize) -> [Uuid; 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    let tenants: [Uuid; 2] = ids();
    let mut resources: [[(Uuid, Life); 4]; 2] = std::array::from_fn(|_| ids().map(|id| (id, Life::Never)));
    // The fourth policy is never created: results may still name it.
    let mut policies: [[(Uuid, PolicyLife); 4]; 2] =
        std::array::from_fn(|_| ids().map(|id| (id, PolicyLife::Never)));
    let mut clock = time(1, 0);
    for _ in 0..steps {
        clock += chrono::Duration::minutes(rng.random_range(0..240));
        let at = if rng.random_bool(0.1) {
            clock - chrono::Duration::hours(rng.random_range(1..24))
        } else {
            clock
        };
        let t = rng.random_range(0..2);
        let roll = rng.random_range(0..100);
        let pick = rng.random_range(0..3);
        let (stream, event): (StreamName, DomainEvent) = if roll < 30 {
            let (id, life) = &mut resources[t][rng.random_range(0..4)];
            let subscription = ["s1", "S1", "s2"][rng.random_range(0..3)];
            let event = match (*life, rng.random_range(0..4)) {
                (Life::Never | Life::Gone, _) => {
                    *life = Life::Alive;
                    registered(*id, subscription, ["X/y", "x/Y", "X/z"][rng.random_range(0..3)])
                }
                (Life::Alive, 0) => {
                    *life = Life::Gone;
                    ev::ResourceDeleted {
                        resource_id: *id,
                        cloud_id: "/x".into(),
                        name: "x".into(),
                        resource_type: "X/y".into(),
                    }
                    .into()
                }
                (Life::Alive, 1) => ev::ResourceTagsChanged {
                    resource_id: *id,
                    tags: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
                    previous_tags: BTreeMap::new(),
                }
                .into(),
                (Life::Alive, _) => ev::ResourceMoved {
                    resource_id: *id,
                    subscription_id: subscription.into(),
                    resource_group: "rg".into(),
                    location: "westeurope".into(),
                    previous_subscription_id: "?".into(),
                    previous_resource_group: "rg".into(),
                    previous_location: "westeurope".into(),
                }
                .into(),
            };
            (StreamName::resource(*id), event)
        } else if roll < 55 && policies[t][pick].1 != PolicyLife::Gone {
            let (id, life) = policies[t][pick];
            let event: DomainEvent = match (life, rng.random_range(0..10)) {
                (PolicyLife::Never, _) => {
                    let enabled = rng.random_bool(0.7);
                    policies[t][pick].1 = if enabled { PolicyLife::On } else { PolicyLife::Off };
                    policy_created(id, enabled)
                }
                (_, 0) => {
                    policies[t][pick].1 = PolicyLife::Gone;
                    ev::PolicyDeleted { policy_id: id, name: "gone".into() }.into()
                }
                (PolicyLife::On, 1..=3) => {
                    policies[t][pick].1 = PolicyLife::Off;
                    ev::PolicyDisabled { policy_id: id }.into()
                }
                (PolicyLife::Off, 1..=3) => {
                    policies[t][pick].1 = PolicyLife::On;
                    ev::PolicyEnabled { policy_id: id }.into()
                }
                (_, 4 | 5) => ev::PolicyRuleChanged {
                    policy_id: id,
                    rule: json!({"if": {"field": "name", "like": format!("n{}*", rng.random_range(0..9))}, "then": {"effect": "audit"}}),
                    parameters: serde_json::Map::new(),
                    parameter_values: serde_json::Map::new(),
                    mode: if rng.random_bool(0.5) { ev::PolicyMode::All } else { ev::PolicyMode::Indexed },
                    previous_rule: json!({}),
                    previous_parameters: serde_json::Map::new(),
                    previous_parameter_values: serde_json::Map::new(),
                    previous_mode: ev::PolicyMode::All,
                }
                .into(),
                (_, 6 | 7) => ev::PolicyDetailsChanged {
                    policy_id: id,
                    name: format!("renamed {}", rng.random_range(0..99)),
                    description: rng.random_bool(0.5).then(|| "described".to_owned()),
                    category: rng.random_bool(0.5).then(|| "Storage".to_owned()),
                    severity: ev::Severity::Critical,
                    scope: ev::PolicyScope { subscriptions: vec!["s1".into()], resource_groups: vec![] },
                    previous_name: "before".into(),
                    previous_description: None,
                    previous_category: None,
                    previous_severity: ev::Severity::High,
                    previous_scope: ev::PolicyScope::default(),
                }
                .into(),
                _ => ev::ExemptionGranted {
                    policy_id: id,
                    exemption_id: Uuid::now_v7(),
                    resource_id: resources[t][rng.random_range(0..4)].0,
                    reason: "accepted risk".into(),
                    expires_at: None,
                }
                .into(),
            };
            (StreamName::policy(id), event)
        } else {
            let resource = resources[t][rng.random_range(0..4)].0;
            let mut named = policies[t].map(|(id, _)| id).to_vec();
            let results: Vec<(Uuid, ComplianceState)> = (0..rng.random_range(1..=3))
                .map(|_| {
                    let policy = named.swap_remove(rng.random_range(0..named.len()));
                    (policy, STATES[rng.random_range(0..STATES.len())])
                })
                .collect();
            (StreamName::compliance(resource), evaluated(resource, &results))
        };
        append(store, tenants[t], at, stream, event).await;
    }
    tenants
}

/// Copies of the compliance tables in `schema`, as a blue/green rebuild makes them.
async fn clone_tables(db: &TestDatabase, schema: &str) {
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&db.pool).await.unwrap();
    for table in TABLES.map(|(t, _)| t) {
        sqlx::query(&format!("CREATE TABLE {schema}.{table} (LIKE rm_compliance.{table} INCLUDING ALL)"))
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

/// Each table with its primary key.
const TABLES: [(&str, &str); 6] = [
    ("resources", "tenant_id, resource_id"),
    ("policies", "tenant_id, policy_id"),
    ("results", "tenant_id, resource_id, policy_id"),
    ("summary", "tenant_id, subscription_id, resource_type"),
    ("tenant_totals", "tenant_id"),
    ("trend", "tenant_id, day"),
];

/// Applies `events` to the tables in `schema` as the runner does (one transaction per batch,
/// `search_path` on the schema), cut into batches of the given sizes.
async fn apply_in_cuts(pool: &sqlx::PgPool, schema: &str, events: &[RecordedEvent], sizes: &[usize]) {
    let mut rest = events;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        let mut tx = cortex_events::postgres::begin(pool).await.unwrap();
        // Durability is not what this tests; not waiting for each commit's flush saves time.
        sqlx::raw_sql(&format!(
            "SET LOCAL search_path = {schema}, public; SET LOCAL synchronous_commit = off"
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        ComplianceProjector.apply(&mut tx, batch, &mut Changes::default()).await.unwrap();
        tx.commit().await.unwrap();
        rest = tail;
    }
}

/// (rows, md5 of the rows in key order) of each table of `schema`.
async fn digests(db: &TestDatabase, schema: &str) -> Vec<(&'static str, i64, String)> {
    let mut out = Vec::new();
    for (table, key) in TABLES {
        let (rows, digest): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY {key})), '') FROM {schema}.{table} t"
        ))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        out.push((table, rows, digest));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_histories_give_the_same_rows_however_the_log_is_cut() {
    const HISTORIES: u64 = 32;
    let db = TestDatabase::create_with_pool_size(24).await;
    let store = store_of(&db);
    let histories: Vec<[Uuid; 2]> =
        futures::future::join_all((0..HISTORIES).map(|seed| random_history(&store, seed, 70))).await;
    let log = read_log(&store, None).await;

    // The runner over the whole log (the histories interleaved), with one batch size...
    let mut rng = StdRng::seed_from_u64(HISTORIES);
    runner(&db, &store, rng.random_range(2..=200)).run_until_caught_up().await.unwrap();
    // ... and each history alone, one event per transaction and in cuts of random sizes.
    clone_tables(&db, "cut_one").await;
    clone_tables(&db, "cut_random").await;
    // (Concurrently: the histories' tenants are disjoint, and so are the rows they write.)
    futures::future::join_all(histories.iter().map(|tenants| {
        let events: Vec<RecordedEvent> =
            log.iter().filter(|e| tenants.contains(&e.tenant_id())).cloned().collect();
        let sizes: Vec<usize> = (0..events.len())
            .map(|_| if rng.random_bool(0.05) { events.len() } else { rng.random_range(1..=30) })
            .collect();
        let pool = &db.pool;
        async move {
            apply_in_cuts(pool, "cut_one", &events, &[1]).await;
            apply_in_cuts(pool, "cut_random", &events, &sizes).await;
        }
    }))
    .await;
    let replayed = Model::replay(&log).unwrap().tables();
    // The histories reach the cases that matter.
    assert!(replayed.resources.iter().any(|r| r.deleted) && replayed.resources.iter().any(|r| !r.deleted));
    assert!(
        replayed.policies.iter().any(|p| !p.enabled)
            && replayed.policies.iter().any(|p| p.counts.total() > 0)
    );
    assert!(replayed.summary.len() > HISTORIES as usize, "{} summary rows", replayed.summary.len());
    assert!(replayed.trend.len() > 2 * HISTORIES as usize, "{} trend rows", replayed.trend.len());
    for schema in ["rm_compliance", "cut_one", "cut_random"] {
        let differences = tables_of(&db, schema).await.differences(&replayed);
        assert!(differences.is_empty(), "{schema} differs from a replay:\n{}", differences.join("\n"));
        let mismatches = recount_mismatches(&db, schema).await;
        assert!(mismatches.is_empty(), "{schema} differs from a recount: {mismatches:?}");
    }
    let one = digests(&db, "cut_one").await;
    assert_eq!(digests(&db, "cut_random").await, one);
    assert_eq!(digests(&db, "rm_compliance").await, one);
    db.drop_database().await;
}
