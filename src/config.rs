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
