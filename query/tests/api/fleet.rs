//! A deployment in miniature for the cache, invalidation, read-your-writes and live-stream
//! tests: one database, the real projection runners following the log and publishing on a
//! NATS server of the test's own (so its subjects are its own, and it can be stopped), and
//! several query instances — each with its own L1 and notice subscription — sharing one
//! RESP cache (the machine's Redis, keys under the test tenant's own `cx:v1:{tenant}:`
//! prefix, or a private redis-server the test can stop). Instance 0 also serves the
//! command API, as `cortex serve` does.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use cortex_command::{
    api::{self, ApiState, Auth, IdempotencyStore, RateLimit},
    handlers::Commands,
    tenants::{KeyRing, create_tenant},
};
use cortex_events::{
    Catalog, EventStore,
    postgres::PostgresEventStore,
    testing::{Server, TestDatabase},
};
use cortex_projections::{ComplianceProjector, Notifier, ResourcesProjector, Runner, RunnerSettings};
use cortex_query::{
    QueryState, Reads,
    api::QuerySettings,
    cache::{Cache, CacheSettings},
    fresh::{Freshness, FreshnessSettings, NoticeSource},
};
use serde_json::Value;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::helpers::Answer;

/// The machine's Redis (`CORTEX_TEST_REDIS_URL`, default 127.0.0.1:6379).
pub fn shared_redis_url() -> String {
    std::env::var("CORTEX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// Where the fleet's shared cache is.
pub enum L2 {
    /// The machine's Redis (`CORTEX_TEST_REDIS_URL`, default 127.0.0.1:6379).
    Shared,
    /// A redis-server of the test's own.
    Private,
}

pub struct Options {
    pub instances: usize,
    pub l2: L2,
    pub stale_bound: Duration,
    pub after_wait: Duration,
    /// Start the projection runners at once (else [`Fleet::start_projections`]).
    pub project: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            instances: 2,
            l2: L2::Shared,
            stale_bound: Duration::from_secs(5),
            after_wait: Duration::from_secs(2),
            project: true,
        }
    }
}

pub struct Instance {
    pub base: String,
    pub cache: Cache,
    tasks: Vec<JoinHandle<()>>,
}

pub struct Fleet {
    pub db: TestDatabase,
    pub store: Arc<dyn EventStore>,
    pub client: reqwest::Client,
    pub api_key: String,
    pub tenant_id: Uuid,
    pub nats: Server,
    pub redis: Option<Server>,
    pub instances: Vec<Instance>,
    runners: Vec<JoinHandle<()>>,
}

impl Fleet {
    pub async fn start(options: Options) -> Self {
        let db = TestDatabase::create().await;
        let store: Arc<dyn EventStore> =
            Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())));
        let tenant = create_tenant(&db.pool, "fleet tenant").await.unwrap();
        let nats = Server::nats().await;
        let (redis, l2_url) = match options.l2 {
            L2::Shared => (
                None,
                std::env::var("CORTEX_TEST_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned()),
            ),
            L2::Private => {
                let r = Server::redis().await;
                let url = format!("redis://127.0.0.1:{}/", r.port);
                (Some(r), url)
            }
        };
        let nats_url = format!("nats://127.0.0.1:{}", nats.port);
        let mut instances = Vec::new();
        for i in 0..options.instances {
            let keys = KeyRing::new(db.pool.clone());
            keys.reload().await.unwrap();
            let limit = NonZeroU32::new(100_000).unwrap();
            let auth = Auth::new(keys, RateLimit { per_second: limit, burst: limit });
            let fresh = Freshness::new(
                db.pool.clone(),
                FreshnessSettings { stale_bound: options.stale_bound, ..FreshnessSettings::default() },
            );
            let cache = Cache::new(fresh.clone(), CacheSettings::default(), Some(&l2_url)).unwrap();
            let tasks = fresh
                .tasks(NoticeSource::Nats(nats_url.clone()), cache.shared_drop())
                .into_iter()
                .map(|(_, t)| tokio::spawn(t))
                .collect();
            let state = QueryState::with_cache(
                Reads::new(db.pool.clone(), store.clone()),
                auth.clone(),
                cache.clone(),
                QuerySettings { after_wait: options.after_wait, heartbeat: Duration::from_millis(500) },
            );
            let readiness = cortex_query::api::readiness(&state);
            let mut routes = OpenApiRouter::new().merge(cortex_query::routes(state));
            if i == 0 {
                let commands = ApiState::new(
                    Commands::new(store.clone()),
                    auth,
                    IdempotencyStore::new(db.pool.clone(), Duration::from_secs(3600)),
                );
                routes = routes.merge(api::routes(commands));
            }
            let (v1, openapi) = routes.split_for_parts();
            let router = cortex_http::app::finish(v1, cortex_http::app::openapi_document(openapi), readiness);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, router).await });
            instances.push(Instance { base, cache, tasks });
        }
        let mut fleet = Self {
            db,
            store,
            client: reqwest::Client::new(),
            api_key: tenant.api_key,
            tenant_id: tenant.tenant_id,
            nats,
            redis,
            instances,
            runners: Vec::new(),
        };
        if options.project {
            fleet.start_projections().await;
        }
        fleet.wait_live().await;
        fleet
    }

    /// Starts both projection runners, publishing on the fleet's NATS.
    pub async fn start_projections(&mut self) {
        let notifier = Notifier::nats(&format!("nats://127.0.0.1:{}", self.nats.port)).await.unwrap();
        self.start_projections_with(notifier);
    }

    /// Replaces the runners by ones that publish nothing (a projection process that lost
    /// its own link to NATS, or died between commit and publish, every time).
    pub async fn silence_projections(&mut self) {
        for r in self.runners.drain(..) {
            r.abort();
            let _ = r.await;
        }
        self.start_projections_with(Notifier::Off);
    }

    fn start_projections_with(&mut self, notifier: Notifier) {
        let settings = RunnerSettings { batch_wait: Duration::from_millis(2), ..RunnerSettings::default() };
        let url = self.db.url.clone();
        let (store, pool) = (self.store.clone(), self.db.pool.clone());
        let r = Runner::new(store.clone(), pool.clone(), ResourcesProjector, settings)
            .with_notifier(notifier.clone());
        let u = url.clone();
        self.runners.push(tokio::spawn(async move {
            let _ = r.run(&u).await;
        }));
        let c = Runner::new(store, pool, ComplianceProjector, settings).with_notifier(notifier);
        self.runners.push(tokio::spawn(async move {
            let _ = c.run(&url).await;
        }));
    }

    /// Waits until every instance's notice stream is live (caches in use).
    pub async fn wait_live(&self) {
        for (i, instance) in self.instances.iter().enumerate() {
            let mut tries = 0;
            while !instance.cache.freshness().is_live() {
                tries += 1;
                assert!(tries < 400, "instance {i} never saw its notice stream live");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::of(request).await
    }

    /// `GET path` on instance `i`, with `X-Cortex-After` when `after` is given.
    pub async fn get(&self, i: usize, path: &str, after: Option<&str>) -> Answer {
        let mut request =
            self.client.get(format!("{}{path}", self.instances[i].base)).bearer_auth(&self.api_key);
        if let Some(after) = after {
            request = request.header("X-Cortex-After", after);
        }
        self.send(request).await
    }

    /// A command on instance 0.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        let request = self
            .client
            .post(format!("{}{path}", self.instances[0].base))
            .bearer_auth(&self.api_key)
            .json(body);
        self.send(request).await
    }

    /// Registers (or updates) a resource; answers its id, revision and position token.
    pub async fn register(&self, record: &Value) -> (Uuid, i64, String) {
        let a = self.post("/v1/resources", record).await;
        assert!(matches!(a.status, 200 | 201), "{}", a.body);
        (
            Uuid::parse_str(a.body["resource_id"].as_str().unwrap()).unwrap(),
            a.body["revision"].as_i64().unwrap(),
            a.body["position"].as_str().unwrap().to_owned(),
        )
    }

    /// Polls `GET path` on instance `i` (no token) until `done` holds, up to `within`;
    /// answers the last answer and whether it held.
    pub async fn poll(
        &self,
        i: usize,
        path: &str,
        within: Duration,
        done: impl Fn(&Answer) -> bool,
    ) -> (Answer, bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let a = self.get(i, path, None).await;
            if done(&a) {
                return (a, true);
            }
            if tokio::time::Instant::now() >= deadline {
                return (a, false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn drop(mut self) {
        for r in self.runners.drain(..) {
            r.abort();
        }
        for i in self.instances.drain(..) {
            for t in i.tasks {
                t.abort();
            }
        }
        self.db.drop_database().await;
    }
}
