//! Shared by the projection tests: a store on a fresh database and random histories.
#![allow(dead_code)]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use cortex_events::{
    Catalog, DomainEvent, EventStore, ExpectedRevision, Provenance, StreamName, catalog as ev,
    postgres::PostgresEventStore, testing::TestDatabase,
};
use cortex_projections::RunnerSettings;
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

/// A PostgreSQL event store on the test's own database.
pub fn store(db: &TestDatabase) -> Arc<dyn EventStore> {
    Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())))
}

/// Small batches and short waits, so that tests exercise many commits quickly.
pub fn settings(batch_size: usize) -> RunnerSettings {
    RunnerSettings {
        batch_size,
        rebuild_batch_size: batch_size,
        batch_wait: Duration::from_millis(5),
        standby_poll: Duration::from_millis(50),
        watchdog: Duration::from_millis(300),
        max_backoff: Duration::from_millis(200),
    }
}

/// Appends a random history: registrations, tag changes, moves, renames, deletes and
/// re-registrations over `resources` resources. Answers how many resources end registered.
pub async fn random_history(
    store: &Arc<dyn EventStore>,
    tenant: Uuid,
    resources: usize,
    steps: usize,
    seed: u64,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    // resource → (revision, registered?)
    let mut state: BTreeMap<usize, (Option<u64>, bool)> = BTreeMap::new();
    for _ in 0..steps {
        let n = rng.random_range(0..resources);
        let id = Uuid::new_v5(&tenant, format!("r{n}").as_bytes());
        let (revision, registered) = state.get(&n).copied().unwrap_or((None, false));
        let event: DomainEvent = if !registered {
            ev::ResourceRegistered {
                resource_id: id,
                cloud_id: format!("/subscriptions/s1/resourceGroups/rg/providers/X/y/r{n}"),
                name: format!("r{n}"),
                resource_type: "X/y".into(),
                location: "westeurope".into(),
                kind: None,
                tags: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
                properties: serde_json::Map::new(),
                subscription_id: "s1".into(),
                resource_group: "rg".into(),
            }
            .into()
        } else {
            match rng.random_range(0..4) {
                0 => ev::ResourceTagsChanged {
                    resource_id: id,
                    tags: BTreeMap::from([("env".to_owned(), format!("e{}", rng.random_range(0..9)))]),
                    previous_tags: BTreeMap::new(),
                }
                .into(),
                1 => ev::ResourceMoved {
                    resource_id: id,
                    subscription_id: "s2".into(),
                    resource_group: format!("rg{}", rng.random_range(0..9)),
                    location: "northeurope".into(),
                    previous_subscription_id: "s1".into(),
                    previous_resource_group: "rg".into(),
                    previous_location: "westeurope".into(),
                }
                .into(),
                2 => ev::ResourceRenamed {
                    resource_id: id,
                    name: format!("n{}", rng.random::<u32>()),
                    previous_name: format!("r{n}"),
                }
                .into(),
                _ => ev::ResourceDeleted {
                    resource_id: id,
                    cloud_id: format!("/x/r{n}"),
                    name: format!("r{n}"),
                    resource_type: "X/y".into(),
                }
                .into(),
            }
        };
        let deleted = matches!(event, DomainEvent::ResourceDeleted(_));
        let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let outcome = store
            .append(
                &StreamName::resource(id),
                expected,
                vec![event.into_new_event(Provenance::system(tenant, "test"))],
            )
            .await
            .unwrap();
        state.insert(n, (Some(outcome.revision), !deleted));
    }
    state.values().filter(|(_, registered)| *registered).count()
}

/// Appends a random mixed history for one tenant — registrations, changes, moves, deletes,
/// policies created, changed, disabled, enabled and deleted, and compliance results in every
/// state — `steps` events over `resources` resources and `policies` policies.
pub async fn mixed_history(
    store: &Arc<dyn EventStore>,
    tenant: Uuid,
    resources: usize,
    policies: usize,
    steps: usize,
    seed: u64,
) {
    use cortex_events::catalog::ComplianceState::*;
    let mut rng = StdRng::seed_from_u64(seed);
    let resource_ids: Vec<Uuid> =
        (0..resources).map(|n| Uuid::new_v5(&tenant, format!("r{n}").as_bytes())).collect();
    let policy_ids: Vec<Uuid> =
        (0..policies).map(|n| Uuid::new_v5(&tenant, format!("p{n}").as_bytes())).collect();
    let mut alive = vec![false; resources];
    // None: never created or deleted; Some(enabled).
    let mut policy: Vec<Option<bool>> = vec![None; policies];
    for _ in 0..steps {
        let roll = rng.random_range(0..100);
        let (stream, event): (StreamName, DomainEvent) = if roll < 45 {
            let n = rng.random_range(0..resources);
            let id = resource_ids[n];
            let subscription = format!("s{}", rng.random_range(0..3));
            let event: DomainEvent = if !alive[n] {
                alive[n] = true;
                ev::ResourceRegistered {
                    resource_id: id,
                    cloud_id: format!("/subscriptions/{subscription}/resourceGroups/rg/providers/X/y/r{n}"),
                    name: format!("r{n}"),
                    resource_type: ["X/y", "X/z"][n % 2].into(),
                    location: "westeurope".into(),
                    kind: None,
                    tags: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
                    properties: serde_json::Map::new(),
                    subscription_id: subscription,
                    resource_group: "rg".into(),
                }
                .into()
            } else {
                match rng.random_range(0..10) {
                    0 => {
                        alive[n] = false;
                        ev::ResourceDeleted {
                            resource_id: id,
                            cloud_id: format!("/x/r{n}"),
                            name: format!("r{n}"),
                            resource_type: "X/y".into(),
                        }
                        .into()
                    }
                    1..=4 => ev::ResourceTagsChanged {
                        resource_id: id,
                        tags: BTreeMap::from([("env".to_owned(), format!("e{}", rng.random_range(0..9)))]),
                        previous_tags: BTreeMap::new(),
                    }
                    .into(),
                    5 | 6 => ev::ResourceMoved {
                        resource_id: id,
                        subscription_id: subscription,
                        resource_group: format!("rg{}", rng.random_range(0..4)),
                        location: "northeurope".into(),
                        previous_subscription_id: "s0".into(),
                        previous_resource_group: "rg".into(),
                        previous_location: "westeurope".into(),
                    }
                    .into(),
                    _ => ev::ResourceRenamed {
                        resource_id: id,
                        name: format!("n{}", rng.random::<u16>()),
                        previous_name: format!("r{n}"),
                    }
                    .into(),
                }
            };
            (StreamName::resource(id), event)
        } else if roll < 50 {
            let n = rng.random_range(0..policies);
            let id = policy_ids[n];
            let event: DomainEvent = match (policy[n], rng.random_range(0..6)) {
                (None, _) => {
                    policy[n] = Some(true);
                    ev::PolicyCreated {
                        policy_id: id,
                        name: format!("p{n}"),
                        description: None,
                        category: None,
                        severity: ev::Severity::High,
                        mode: ev::PolicyMode::All,
                        rule: serde_json::json!({"if": {"field": "type", "equals": "X/y"}, "then": {"effect": "audit"}}),
                        parameters: serde_json::Map::new(),
                        parameter_values: serde_json::Map::new(),
                        scope: ev::PolicyScope::default(),
                        enabled: true,
                    }
                    .into()
                }
                (Some(_), 0) => {
                    policy[n] = None;
                    ev::PolicyDeleted { policy_id: id, name: format!("p{n}") }.into()
                }
                (Some(true), 1 | 2) => {
                    policy[n] = Some(false);
                    ev::PolicyDisabled { policy_id: id }.into()
                }
                (Some(false), _) => {
                    policy[n] = Some(true);
                    ev::PolicyEnabled { policy_id: id }.into()
                }
                (Some(true), _) => ev::ExemptionGranted {
                    policy_id: id,
                    exemption_id: Uuid::now_v7(),
                    resource_id: resource_ids[rng.random_range(0..resources)],
                    reason: "accepted".into(),
                    expires_at: None,
                }
                .into(),
            };
            (StreamName::policy(id), event)
        } else {
            let id = resource_ids[rng.random_range(0..resources)];
            let results = (0..rng.random_range(1..=3.min(policies)))
                .map(|k| ev::PolicyResult {
                    policy_id: policy_ids[(rng.random_range(0..policies) + k) % policies],
                    state: [Compliant, Compliant, NonCompliant, Exempt, NotApplicable, Error]
                        [rng.random_range(0..6)],
                    reason: Some("checked".into()),
                    details: None,
                    policy_revision: Some(0),
                })
                .collect::<Vec<_>>();
            let mut seen = std::collections::HashSet::new();
            let results = results.into_iter().filter(|r| seen.insert(r.policy_id)).collect();
            let event = ev::ComplianceEvaluated {
                resource_id: id,
                resource_revision: Some(0),
                source: "test".into(),
                results,
            };
            (StreamName::compliance(id), event.into())
        };
        store
            .append(
                &stream,
                ExpectedRevision::Any,
                vec![event.into_new_event(Provenance::system(tenant, "test"))],
            )
            .await
            .unwrap();
    }
}

/// [`mixed_history`] for `tenants` tenants at once (one writer each): `steps` events in all.
pub async fn mixed_histories(store: &Arc<dyn EventStore>, tenants: usize, steps: usize, seed: u64) {
    let writers: Vec<_> = (0..tenants)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                mixed_history(&store, Uuid::now_v7(), 150, 8, steps / tenants, seed + t as u64).await;
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}
