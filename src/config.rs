//! Typed configuration, from flags or the environment (documented in the README).

use clap::Args;
use secrecy::SecretString;

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of the PolicyCortex database (read models, tenants, and the event
    /// store when `CORTEX_EVENT_STORE` is `postgres`).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,
    /// Most connections in the pool.
    #[arg(long = "db-max-connections", env = "CORTEX_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub max_connections: u32,
    /// Milliseconds a request waits for a pool connection before it answers 503: bounds
    /// how long clients hang when PostgreSQL is unreachable or the pool is exhausted.
    #[arg(long = "db-acquire-timeout-ms", env = "CORTEX_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    pub acquire_timeout_ms: u64,
}

impl DatabaseArgs {
    /// A pool on the configured database.
    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        use anyhow::Context;
        use secrecy::ExposeSecret;
        cortex_events::postgres::pool_options()
            .max_connections(self.max_connections)
            .acquire_timeout(std::time::Duration::from_millis(self.acquire_timeout_ms.max(1)))
            .connect(self.database_url.expose_secret())
            .await
            .context("connecting to the database")
    }
}

/// Where events are stored.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where events are stored: `postgres` (the database above) or a KurrentDB connection
    /// string (`kurrentdb://host:2113?tls=false`, `esdb://…`).
    #[arg(
        long = "event-store",
        env = "CORTEX_EVENT_STORE",
        default_value = "postgres",
        hide_env_values = true
    )]
    pub event_store: SecretString,
}

impl StoreArgs {
    /// The configured event store; `pool` is its database when it is `postgres`.
    pub fn open(&self, pool: &sqlx::PgPool) -> anyhow::Result<std::sync::Arc<dyn cortex_events::EventStore>> {
        use anyhow::Context;
        use cortex_events::{Catalog, kurrent::KurrentEventStore, postgres::PostgresEventStore};
        use secrecy::ExposeSecret;
        let catalog = std::sync::Arc::new(Catalog::standard().context("loading the event catalog")?);
        Ok(match self.event_store.expose_secret() {
            "postgres" => std::sync::Arc::new(PostgresEventStore::new(pool.clone(), catalog)),
            url if url.starts_with("kurrentdb") || url.starts_with("esdb") => std::sync::Arc::new(
                KurrentEventStore::new(url, catalog).context("configuring the KurrentDB client")?,
            ),
            _ => anyhow::bail!("CORTEX_EVENT_STORE must be `postgres` or a kurrentdb:// or esdb:// URL"),
        })
    }
}

/// Where change and checkpoint notices go.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL (`nats://127.0.0.1:4222`). Unset: an in-process bus carries the
    /// notices, which is enough when one `cortex serve` runs every component.
    #[arg(long = "nats-url", env = "CORTEX_NATS_URL")]
    pub nats_url: Option<String>,
}

impl NatsArgs {
    pub async fn notifier(&self) -> anyhow::Result<cortex_projections::Notifier> {
        use anyhow::Context;
        match &self.nats_url {
            Some(url) => cortex_projections::Notifier::nats(url).await.context("configuring NATS"),
            None => Ok(cortex_projections::Notifier::Local(cortex_projections::LocalBus::default())),
        }
    }
}

/// The query side's cache, freshness bound, read-your-writes wait and live stream.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// RESP URL of the shared cache, L2 (Dragonfly, or any Redis-protocol server:
    /// `redis://127.0.0.1:6379/`). Unset: the in-process cache (L1) only.
    #[arg(long = "cache-url", env = "CORTEX_CACHE_URL", hide_env_values = true)]
    pub cache_url: Option<String>,
    /// Most entries in the in-process cache (L1).
    #[arg(long = "cache-l1-entries", env = "CORTEX_CACHE_L1_ENTRIES", default_value_t = 50_000)]
    pub l1_entries: usize,
    /// Most megabytes of answers in the in-process cache (L1).
    #[arg(long = "cache-l1-megabytes", env = "CORTEX_CACHE_L1_MEGABYTES", default_value_t = 256)]
    pub l1_megabytes: usize,
    /// Seconds a cache entry lives in either level (changes invalidate entries sooner).
    #[arg(long = "cache-ttl-seconds", env = "CORTEX_CACHE_TTL_SECONDS", default_value_t = 120)]
    pub ttl_seconds: u64,
    /// Longest a read may lag PostgreSQL when change notices stop arriving (NATS down):
    /// past it, caches are bypassed until notices are live again.
    #[arg(long = "query-stale-seconds", env = "CORTEX_QUERY_STALE_SECONDS", default_value_t = 5)]
    pub stale_seconds: u64,
    /// Longest a read-your-writes query (`X-Cortex-After`) waits for the read models before
    /// answering 503.
    #[arg(long = "query-after-wait-ms", env = "CORTEX_QUERY_AFTER_WAIT_MS", default_value_t = 2000)]
    pub after_wait_ms: u64,
    /// Seconds without an event after which `GET /v1/changes` sends a heartbeat comment.
    #[arg(long = "sse-heartbeat-seconds", env = "CORTEX_SSE_HEARTBEAT_SECONDS", default_value_t = 15)]
    pub heartbeat_seconds: u64,
}

impl QueryArgs {
    pub fn freshness(&self) -> cortex_query::fresh::FreshnessSettings {
        cortex_query::fresh::FreshnessSettings {
            stale_bound: std::time::Duration::from_secs(self.stale_seconds.max(1)),
            cache_ttl: std::time::Duration::from_secs(self.ttl_seconds.max(1)),
            ..Default::default()
        }
    }

    pub fn cache(&self) -> cortex_query::cache::CacheSettings {
        cortex_query::cache::CacheSettings {
            l1_entries: self.l1_entries.max(1),
            l1_bytes: self.l1_megabytes.max(1) * 1024 * 1024,
            ttl: std::time::Duration::from_secs(self.ttl_seconds.max(1)),
        }
    }

    pub fn settings(&self) -> cortex_query::api::QuerySettings {
        cortex_query::api::QuerySettings {
            after_wait: std::time::Duration::from_millis(self.after_wait_ms),
            heartbeat: std::time::Duration::from_secs(self.heartbeat_seconds.max(1)),
        }
    }
}

/// How projection runners batch and watch the log.
#[derive(Debug, Clone, Args)]
pub struct ProjectionArgs {
    /// Most events applied in one read-model transaction.
    #[arg(long = "projection-batch-size", env = "CORTEX_PROJECTION_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,
    /// Most events applied in one transaction by `cortex projections rebuild` (the shadow
    /// tables have no readers, so larger batches only cost memory: about 0.5 GB for `--all`
    /// at the default).
    #[arg(
        long = "projection-rebuild-batch-size",
        env = "CORTEX_PROJECTION_REBUILD_BATCH_SIZE",
        default_value_t = cortex_projections::runner::REBUILD_BATCH_SIZE
    )]
    pub rebuild_batch_size: usize,
    /// Milliseconds the first event of a partial batch waits for more before it is applied.
    #[arg(long = "projection-batch-wait-ms", env = "CORTEX_PROJECTION_BATCH_WAIT_MS", default_value_t = 2)]
    pub batch_wait_ms: u64,
    /// Seconds a subscription may stay silent while the log's head moves before the runner
    /// opens it again.
    #[arg(
        long = "projection-watchdog-seconds",
        env = "CORTEX_PROJECTION_WATCHDOG_SECONDS",
        default_value_t = 5
    )]
    pub watchdog_seconds: u64,
}

impl ProjectionArgs {
    pub fn settings(&self) -> cortex_projections::RunnerSettings {
        cortex_projections::RunnerSettings {
            batch_size: self.batch_size.max(1),
            rebuild_batch_size: self.rebuild_batch_size.max(1),
            batch_wait: std::time::Duration::from_millis(self.batch_wait_ms),
            watchdog: std::time::Duration::from_secs(self.watchdog_seconds.max(1)),
            ..cortex_projections::RunnerSettings::default()
        }
    }
}

/// How the compliance evaluator re-evaluates a policy's scope.
#[derive(Debug, Clone, Args)]
pub struct EvaluatorArgs {
    /// Resources per page when a policy change re-evaluates its scope.
    #[arg(long = "evaluator-page-size", env = "CORTEX_EVALUATOR_PAGE_SIZE", default_value_t = cortex_command::evaluator::EvaluatorSettings::default().page)]
    pub page_size: usize,
    /// `ComplianceEvaluated` appends in flight at once (each to its own stream).
    #[arg(long = "evaluator-concurrency", env = "CORTEX_EVALUATOR_CONCURRENCY", default_value_t = cortex_command::evaluator::EvaluatorSettings::default().concurrency)]
    pub concurrency: usize,
}

impl EvaluatorArgs {
    pub fn settings(&self) -> cortex_command::evaluator::EvaluatorSettings {
        cortex_command::evaluator::EvaluatorSettings {
            page: self.page_size.max(1),
            concurrency: self.concurrency.max(1),
        }
    }
}

/// Settings of `cortex serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub projections: ProjectionArgs,
    #[command(flatten)]
    pub query: QueryArgs,
    #[command(flatten)]
    pub evaluator: EvaluatorArgs,
    /// Address the HTTP API listens on.
    #[arg(long = "http-addr", env = "CORTEX_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: std::net::SocketAddr,
    /// Requests per second allowed per API key (token bucket refill rate).
    #[arg(long = "rate-limit", env = "CORTEX_RATE_LIMIT_PER_SECOND", default_value_t = std::num::NonZeroU32::new(500).unwrap())]
    pub rate_limit: std::num::NonZeroU32,
    /// Requests an API key may send at once above the rate (bucket size).
    #[arg(long = "rate-limit-burst", env = "CORTEX_RATE_LIMIT_BURST", default_value_t = std::num::NonZeroU32::new(1000).unwrap())]
    pub rate_limit_burst: std::num::NonZeroU32,
    /// How long `Idempotency-Key` answers are kept, in hours.
    #[arg(long = "idempotency-hours", env = "CORTEX_IDEMPOTENCY_HOURS", default_value_t = 24)]
    pub idempotency_hours: u32,
    /// Run only this component (for scaling out); default: every component.
    #[arg(long = "only", value_enum)]
    pub only: Option<Component>,
    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    #[arg(long = "drain-seconds", env = "CORTEX_DRAIN_SECONDS", default_value_t = 30)]
    pub drain_seconds: u64,
    #[command(flatten)]
    pub audit: AuditArgs,
}

/// Sealing by `cortex serve` (issue 23).
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// The Ed25519 key (`cortex audit keygen`) to seal the log with; without it nothing is
    /// sealed. Sealing runs in the processes that run the projections or the evaluator.
    #[arg(long = "audit-key", env = "CORTEX_AUDIT_KEY")]
    pub key: Option<std::path::PathBuf>,
    /// Seconds between seals: a process seals when the last seal in the log is this old (so
    /// that several processes seal once between them).
    #[arg(long = "audit-seal-seconds", env = "CORTEX_AUDIT_SEAL_SECONDS", default_value_t = 3600)]
    pub seal_seconds: u64,
}

/// The components of `cortex serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The command API.
    Command,
    /// The query API (the read models and resource histories).
    Query,
    /// The projection runners (read models), with `/healthz` on the HTTP address.
    Projections,
    /// The compliance evaluator (appends `ComplianceEvaluated`), with `/healthz` on the HTTP
    /// address.
    Evaluator,
}
