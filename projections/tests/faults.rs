//! The runner under faults: an event it cannot apply, a subscription that goes silent, the
//! database dropping every connection, and the notices it publishes after commit.

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use common::{random_history, settings, store};
use cortex_events::{
    AppendOutcome, Catalog, Direction, DomainEvent, EventFilter, EventStore, ExpectedRevision, NewEvent,
    Position, Provenance, RecordedEvent, StoreError, StreamName, SubscriptionItem, catalog as ev,
    testing::TestDatabase,
    wire::{ChangeNotice, CheckpointNotice, changes_subject, checkpoint_subject},
};
use cortex_projections::{Notifier, ResourcesProjector, Runner, RunnerError, status};
use futures::{StreamExt, stream::BoxStream};
use uuid::Uuid;

async fn rows(db: &TestDatabase, tenant: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rm_resources.resources WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn register(store: &Arc<dyn EventStore>, tenant: Uuid, name: &str) -> AppendOutcome {
    let id = Uuid::new_v5(&tenant, name.as_bytes());
    let event: DomainEvent = ev::ResourceRegistered {
        resource_id: id,
        cloud_id: format!("/subscriptions/s1/resourceGroups/rg/providers/X/y/{name}"),
        name: name.into(),
        resource_type: "X/y".into(),
        location: "westeurope".into(),
        kind: None,
        tags: BTreeMap::new(),
        properties: serde_json::Map::new(),
        subscription_id: "s1".into(),
        resource_group: "rg".into(),
    }
    .into();
    store
        .append(
            &StreamName::resource(id),
            ExpectedRevision::NoStream,
            vec![event.into_new_event(Provenance::system(tenant, "test"))],
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_event_that_cannot_be_applied_stops_the_projection_naming_it_and_keeps_what_precedes() {
    let db = TestDatabase::create().await;
    let store = store(&db);
    let tenant = Uuid::now_v7();
    // The read model refuses one name: applying that registration fails inside the batch.
    sqlx::query("ALTER TABLE rm_resources.resources ADD CONSTRAINT no_poison CHECK (name <> 'poison')")
        .execute(&db.pool)
        .await
        .unwrap();
    for n in 0..5 {
        register(&store, tenant, &format!("before{n}")).await;
    }
    let poison = register(&store, tenant, "poison").await;
    for n in 0..5 {
        register(&store, tenant, &format!("after{n}")).await;
    }
    let runner = Runner::new(store.clone(), db.pool.clone(), ResourcesProjector, settings(100));
    let url = db.url.clone();
    let result =
        tokio::time::timeout(Duration::from_secs(30), runner.run(&url)).await.expect("the runner stops");
    let Err(RunnerError::Apply { event_id, position, stream, .. }) = result else { panic!("{result:?}") };
    let stored = store.read_stream(&stream, 0, Direction::Forwards, 1).await.unwrap();
    assert_eq!((event_id, position), (stored[0].event_id(), poison.position));
    // Everything before the poison event is applied, nothing after it.
    assert_eq!(rows(&db, tenant).await, 5);
    assert!(runner.checkpoint().await.unwrap() < Some(poison.position));
    // Status names the event, its stream and position, and the cause.
    let s = status::statuses(&db.pool, &["resources"]).await.unwrap().remove(0);
    assert_eq!(s.state, "failed");
    let error = s.last_error.expect("the error is recorded");
    assert_eq!(error.event_id, Some(event_id));
    assert_eq!(error.stream.as_deref(), Some(stream.as_str()));
    assert_eq!(error.position, Some(poison.position.token()));
    assert!(error.message.contains("no_poison"), "{}", error.message);
    db.drop_database().await;
}

/// A store whose first subscription goes silent after `deliver` items: a stuck connection.
struct Stalling {
    inner: Arc<dyn EventStore>,
    deliver: usize,
    stalled: AtomicBool,
}

#[async_trait]
impl EventStore for Stalling {
    async fn append(
        &self,
        s: &StreamName,
        e: ExpectedRevision,
        ev: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.inner.append(s, e, ev).await
    }
    async fn read_stream(
        &self,
        s: &StreamName,
        f: u64,
        d: Direction,
        m: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(s, f, d, m).await
    }
    fn subscribe_all(
        &self,
        from: Option<Position>,
        filter: EventFilter,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        let sub = self.inner.subscribe_all(from, filter);
        if self.stalled.swap(true, Ordering::SeqCst) {
            sub
        } else {
            sub.take(self.deliver).chain(futures::stream::pending()).boxed()
        }
    }
    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.inner.head().await
    }
    fn catalog(&self) -> &Catalog {
        self.inner.catalog()
    }
}

#[tokio::test]
async fn a_subscription_that_goes_silent_while_the_log_moves_is_opened_again() {
    let db = TestDatabase::create().await;
    let real = store(&db);
    let tenant = Uuid::now_v7();
    let live = random_history(&real, tenant, 40, 400, 11).await;
    let stalling: Arc<dyn EventStore> =
        Arc::new(Stalling { inner: real.clone(), deliver: 50, stalled: AtomicBool::new(false) });
    let runner = Runner::new(stalling, db.pool.clone(), ResourcesProjector, settings(20));
    let url = db.url.clone();
    let task = tokio::spawn(async move { runner.run(&url).await });
    // The watchdog (300 ms here) sees the head beyond what was delivered and resubscribes.
    wait_for("the projection to catch up", || async { rows(&db, tenant).await == live as i64 }).await;
    let head = real.head().await.unwrap();
    wait_for("the checkpoint to reach the head", || async {
        status::checkpoint(&db.pool, "resources").await.unwrap() == head
    })
    .await;
    task.abort();
    db.drop_database().await;
}

#[tokio::test]
async fn the_runner_recovers_by_itself_when_the_database_drops_every_connection() {
    let db = TestDatabase::create().await;
    let store = store(&db);
    let tenant = Uuid::now_v7();
    random_history(&store, tenant, 40, 300, 12).await;
    let runner = Runner::new(store.clone(), db.pool.clone(), ResourcesProjector, settings(20));
    let url = db.url.clone();
    let task = tokio::spawn(async move { runner.run(&url).await });
    let head = store.head().await.unwrap();
    wait_for("the first catch-up", || async {
        status::checkpoint(&db.pool, "resources").await.unwrap() == head
    })
    .await;
    // Every connection to this database, the runner's lock and the store's listener included.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(killed >= 2, "the lock and the listener at least: {killed}");
    let more = Uuid::now_v7();
    let live = random_history(&store, more, 30, 200, 13).await;
    wait_for("the projection to follow again", || async { rows(&db, more).await == live as i64 }).await;
    assert!(!task.is_finished(), "the runner is still running");
    task.abort();
    db.drop_database().await;
}

#[tokio::test]
async fn each_commit_is_announced_on_nats_with_the_changed_ids_then_the_checkpoint() {
    let db = TestDatabase::create().await;
    let store = store(&db);
    let tenant = Uuid::now_v7();
    let nats = async_nats::connect("nats://127.0.0.1:4222").await.expect("NATS runs (ops/test starts it)");
    let mut changes = nats.subscribe(changes_subject(tenant, "resources")).await.unwrap();
    let mut checkpoints = nats.subscribe(checkpoint_subject("resources")).await.unwrap();
    nats.flush().await.unwrap();

    let mut registered = Vec::new();
    for n in 0..30 {
        registered.push(register(&store, tenant, &format!("r{n}")).await);
    }
    let head = store.head().await.unwrap().unwrap();
    let notifier = Notifier::nats("nats://127.0.0.1:4222").await.unwrap();
    let runner =
        Runner::new(store.clone(), db.pool.clone(), ResourcesProjector, settings(7)).with_notifier(notifier);
    runner.run_until_caught_up().await.unwrap();

    // Every registered resource is announced once its batch committed, at a position that
    // covers it.
    let mut announced: HashMap<String, Position> = HashMap::new();
    while announced.len() < 30 {
        let message = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change notice")
            .unwrap();
        let notice: ChangeNotice = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(notice.model, "resources");
        for id in notice.ids {
            announced.entry(id).or_insert(notice.position);
        }
    }
    for (n, outcome) in registered.iter().enumerate() {
        let id = Uuid::new_v5(&tenant, format!("r{n}").as_bytes()).to_string();
        assert!(announced[&id] >= outcome.position, "announced after its commit");
    }
    // Other tests' runners publish on the same subject; ours reaches this store's head.
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), checkpoints.next())
            .await
            .expect("a checkpoint")
            .unwrap();
        let notice: CheckpointNotice = serde_json::from_slice(&message.payload).unwrap();
        if notice.position == head {
            assert_eq!(notice.projection, "resources");
            break;
        }
    }
    db.drop_database().await;
}
