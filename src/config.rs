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
}

impl DatabaseArgs {
    /// A pool on the configured database.
    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        use anyhow::Context;
        use secrecy::ExposeSecret;
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.max_connections)
            .connect(self.database_url.expose_secret())
            .await
            .context("connecting to the database")
    }
}

/// Settings of `cortex serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Where events are stored: `postgres` (the database above) or a KurrentDB connection
    /// string (`kurrentdb://host:2113?tls=false`, `esdb://…`).
    #[arg(
        long = "event-store",
        env = "CORTEX_EVENT_STORE",
        default_value = "postgres",
        hide_env_values = true
    )]
    pub event_store: SecretString,
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
}

/// The components of `cortex serve` (more arrive with the query side, projections and
/// the evaluator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The command API.
    Command,
}
