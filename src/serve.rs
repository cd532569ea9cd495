//! `cortex serve`: migrate, build every component, listen, and drain on SIGTERM.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use cortex_command::{
    api::{self, ApiState, IdempotencyStore, RateLimit},
    handlers::Commands,
    tenants::KeyRing,
};
use cortex_events::{Catalog, EventStore, kurrent::KurrentEventStore, postgres::PostgresEventStore};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::config::ServeArgs;

/// The running service: built (migrated, bound), then run until a stop signal.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    tasks: Vec<(&'static str, futures::future::BoxFuture<'static, ()>)>,
    drain: Duration,
}

impl Application {
    #[tracing::instrument(name = "cortex.serve.build", skip_all, fields(addr = %args.http_addr))]
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        crate::migrate::run(&args.db).await?;
        let pool = args.db.pool().await?;
        let catalog = Arc::new(Catalog::standard().context("loading the event catalog")?);
        let store: Arc<dyn EventStore> = match args.event_store.expose_secret() {
            "postgres" => Arc::new(PostgresEventStore::new(pool.clone(), catalog)),
            url if url.starts_with("kurrentdb") || url.starts_with("esdb") => {
                Arc::new(KurrentEventStore::new(url, catalog).context("configuring the KurrentDB client")?)
            }
            _ => anyhow::bail!("CORTEX_EVENT_STORE must be `postgres` or a kurrentdb:// or esdb:// URL"),
        };
        let keys = KeyRing::new(pool.clone());
        keys.reload().await.context("loading the API keys")?;
        let state = ApiState::new(
            Commands::new(store),
            keys,
            IdempotencyStore::new(pool, Duration::from_secs(u64::from(args.idempotency_hours) * 3600)),
            RateLimit { per_second: args.rate_limit, burst: args.rate_limit_burst },
        );
        let tasks = state.background_tasks();
        let router = api::router(state);
        let listener = TcpListener::bind(args.http_addr)
            .await
            .with_context(|| format!("listening on {}", args.http_addr))?;
        Ok(Self { listener, router, tasks, drain: Duration::from_secs(args.drain_seconds) })
    }

    /// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish (bounded by the
    /// drain time) and stops the background tasks.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut background = tokio::task::JoinSet::new();
        for (name, task) in self.tasks {
            background.spawn(task.instrument(tracing::info_span!("task", name)));
        }
        tracing::info!(addr = %self.listener.local_addr()?, "serving");
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            stop_signal().await;
            tracing::info!("stop requested; draining in-flight requests");
            let _ = stopping_tx.send(true);
        });
        let drain = self.drain;
        let mut stopping = stopping_rx.clone();
        tokio::select! {
            result = server => result.context("serving HTTP")?,
            _ = async move {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(drain).await;
            } => tracing::warn!(seconds = drain.as_secs(), "drain time over; closing remaining connections"),
        }
        background.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
