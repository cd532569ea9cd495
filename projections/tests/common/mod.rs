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

