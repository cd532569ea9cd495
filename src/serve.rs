//! `cortex serve`: migrate, build every component, listen, and drain on SIGTERM.

use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt as _;
use cortex_command::{
    api::{self, ApiState, Auth, IdempotencyStore, RateLimit},
    handlers::Commands,
    tenants::KeyRing,
};
use cortex_projections::Runner;
use cortex_query::{
    QueryState, Reads,
    cache::Cache,
    fresh::{Freshness, NoticeSource},
};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;

use crate::config::{Component, ServeArgs};

type Task = (&'static str, futures::future::BoxFuture<'static, ()>);

/// The running service: built (migrated, bound), then run until a stop signal.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// Housekeeping beside the HTTP API, on the main runtime.
    tasks: Vec<Task>,
    /// What carries a change from the log to the read models and out as notices, on the
    /// [`Pipeline`] runtime.
    pipeline_tasks: Vec<Task>,
    pipeline: Pipeline,
    drain: Duration,
}

/// Threads of the [`Pipeline`] runtime.
const PIPELINE_THREADS: usize = 2;

/// Where the path from the log to the clients runs: projection runners, the evaluator, and
/// the query side's notice tasks. Beside an HTTP API it gets a runtime of its own: tasks of
/// one Tokio runtime are run in turn, so on the main runtime a notice that arrives while the
/// live stream is writing to 10,000 clients waits behind all of their tasks before it can
/// even be handed on, and a projection batch waits behind every request in flight. On
/// threads of its own, the kernel shares the cores between both sides, and neither queues
/// behind the other (docs/decisions.md, "The pipeline runtime and a cached GET's cost").
/// Without an API (`--only projections|evaluator`) the pipeline is the whole process and
/// runs on the main runtime, all of its threads; with the command API alone there is no
/// pipeline work, and it is the main runtime too.
///
/// Whatever opens connections for these tasks (their pool, the event store client, NATS
/// clients) is built on the pipeline too ([`Self::on`]), so its I/O is driven there.
enum Pipeline {
    Own(Option<tokio::runtime::Runtime>),
    Current(tokio::runtime::Handle),
}

impl Pipeline {
    fn start(own: bool) -> anyhow::Result<Self> {
        if !own {
            return Ok(Self::Current(tokio::runtime::Handle::current()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(PIPELINE_THREADS)
            .thread_name("cortex-pipeline")
            .enable_all()
            .build()
            .context("starting the pipeline runtime")?;
        Ok(Self::Own(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            Self::Own(runtime) => runtime
                .as_ref()
                .expect("the pipeline runtime lives until the application is dropped")
                .handle(),
            Self::Current(handle) => handle,
        }
    }

    /// Runs `work` on the pipeline runtime and waits for its result.
    async fn on<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.handle().spawn(work.in_current_span()).await.context("a pipeline set-up task failed")?
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which an async context must not do. What
        // still runs on it (tasks the pipeline's tasks spawned, connection drivers; all of
        // them after a failed start) is dropped where it stands, as in a crash, which every
        // runner recovers from.
        if let Self::Own(runtime) = self
            && let Some(runtime) = runtime.take()
        {
            runtime.shutdown_background();
        }
    }
}

impl Application {
    #[tracing::instrument(name = "cortex.serve.build", skip_all, fields(addr = %args.http_addr))]
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        crate::migrate::run(&args.db).await?;
        let pool = args.db.pool().await?;
        let store = args.store.open(&pool)?;
        let runs = |c: Component| args.only.is_none_or(|only| only == c);
        let mut tasks = Vec::new();
        let mut pipeline_tasks = Vec::new();
        let api = runs(Component::Command) || runs(Component::Query);
        let pipelined = runs(Component::Query) || runs(Component::Projections) || runs(Component::Evaluator);
        // A runtime of its own only when the pipeline runs beside an API.
        let own = api && pipelined;
        let pipeline = Pipeline::start(own)?;
        // One notifier for every runner; without NATS its in-process bus also feeds this
        // process's query side. The command API alone publishes nothing.
        let notifier = if pipelined {
            let nats = args.nats.clone();
            pipeline.on(async move { nats.notifier().await }).await?
        } else {
            cortex_projections::Notifier::Off
        };
        // The pipeline's own pool and event store, built on its runtime: its connections are
        // driven there, and requests cannot take the connections it needs.
        let (pipeline_pool, pipeline_store) = if own {
            let (db, store_args) = (args.db.clone(), args.store.clone());
            pipeline
                .on(async move {
                    let pool = db.pool().await?;
                    let store = store_args.open(&pool)?;
                    Ok((pool, store))
                })
                .await?
        } else {
            (pool.clone(), store.clone())
        };
        let mut readiness = cortex_http::Readiness::default();
        readiness.add_postgres(pool.clone());
        let router = if api {
            // One key ring and one rate limiter for both APIs: a key's allowance counts its
            // commands and queries alike.
            let keys = KeyRing::new(pool.clone());
            keys.reload().await.context("loading the API keys")?;
            let auth =
                Auth::new(keys, RateLimit { per_second: args.rate_limit, burst: args.rate_limit_burst });
            tasks.extend(auth.background_tasks());
            let mut routes = OpenApiRouter::new();
            if runs(Component::Command) {
                let state = ApiState::new(
                    Commands::new(store.clone()),
                    auth.clone(),
                    IdempotencyStore::new(
                        pool.clone(),
                        Duration::from_secs(u64::from(args.idempotency_hours) * 3600),
                    ),
                );
                tasks.extend(state.background_tasks());
                routes = routes.merge(api::routes(state));
            }
            if runs(Component::Query) {
                // Its reads of the checkpoints run in the notice tasks, on the pipeline.
                let fresh = Freshness::new(pipeline_pool.clone(), args.query.freshness());
                let cache = Cache::new(fresh.clone(), args.query.cache(), args.query.cache_url.as_deref())
                    .context("CORTEX_CACHE_URL is not a RESP URL (redis://host:port/)")?;
                let source = match (&args.nats.nats_url, &notifier) {
                    (Some(url), _) => Some(NoticeSource::Nats(url.clone())),
                    (None, cortex_projections::Notifier::Local(bus)) if runs(Component::Projections) => {
                        Some(NoticeSource::Local(bus.clone()))
                    }
                    _ => None,
                };
                match source {
                    Some(source) => pipeline_tasks.extend(fresh.tasks(source, cache.shared_drop())),
                    None => tracing::warn!(
                        "no change notices reach this query service (CORTEX_NATS_URL unset and no projections in \
                         this process): every read goes to PostgreSQL"
                    ),
                }
                let state = QueryState::with_cache(
                    Reads::new(pool.clone(), store.clone()),
                    auth,
                    cache,
                    args.query.settings(),
                );
                readiness.merge(cortex_query::api::readiness(&state));
                routes = routes.merge(cortex_query::routes(state));
            }
            // One document for every route this process serves.
            let (v1, openapi) = routes.split_for_parts();
            let mut document = cortex_http::app::openapi_document(openapi);
            if runs(Component::Command) {
                api::openapi::add_request_schemas(&mut document);
            }
            cortex_http::app::finish(v1, document, readiness)
        } else {
            let ready = readiness.clone();
            axum::Router::new()
                .route(
                    "/healthz",
                    axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
                )
                .route("/readyz", axum::routing::get(move || ready.clone().respond()))
        };
        if runs(Component::Projections) || runs(Component::Evaluator) {
            let (pool, store) = (pipeline_pool, pipeline_store);
            if let Some(key) = &args.audit.key {
                // Read at start: a key that cannot be read stops the start, not a seal an hour on.
                let key = cortex_query::audit::seal::read_key(key).context("reading CORTEX_AUDIT_KEY")?;
                let every = Duration::from_secs(args.audit.seal_seconds.max(1));
                let store = store.clone();
                pipeline_tasks.push((
                    "audit-sealer",
                    Box::pin(crate::audit::seal_every(store, key, every))
                        as futures::future::BoxFuture<'static, ()>,
                ));
            }
            if runs(Component::Projections) {
                let settings = args.projections.settings();
                let url = args.db.database_url.expose_secret().to_owned();
                for projector in cortex_projections::registry() {
                    let projector_name = projector.name();
                    let runner = Runner::shared(store.clone(), pool.clone(), projector, settings)
                        .with_notifier(notifier.clone());
                    let url = url.clone();
                    pipeline_tasks.push((
                        projector_name,
                        Box::pin(async move {
                            // Returns only for an event it cannot apply: logged and recorded in
                            // `projection_status` by the runner; the other components go on.
                            let _ = runner.run(&url).await;
                        }) as futures::future::BoxFuture<'static, ()>,
                    ));
                }
            }
            if runs(Component::Evaluator) {
                // One active evaluator across processes (the runner's lock); others stand by.
                let evaluator = cortex_command::evaluator::Evaluator::new(
                    store.clone(),
                    pool.clone(),
                    args.evaluator.settings(),
                );
                let runner = Runner::new(
                    store.clone(),
                    pool.clone(),
                    crate::evaluator::EvaluatorProjection(evaluator),
                    args.projections.settings(),
                )
                .with_notifier(notifier.clone());
                let url = args.db.database_url.expose_secret().to_owned();
                pipeline_tasks.push((
                    cortex_command::evaluator::NAME,
                    Box::pin(async move {
                        let _ = runner.run(&url).await;
                    }) as futures::future::BoxFuture<'static, ()>,
                ));
            }
        }
        let listener = TcpListener::bind(args.http_addr)
            .await
            .with_context(|| format!("listening on {}", args.http_addr))?;
        Ok(Self {
            listener,
            router,
            tasks,
            pipeline_tasks,
            pipeline,
            drain: Duration::from_secs(args.drain_seconds),
        })
    }

    /// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish (bounded by the
    /// drain time) and stops the background tasks.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut background = tokio::task::JoinSet::new();
        for (name, task) in self.tasks {
            background.spawn(task.instrument(tracing::info_span!("task", name)));
        }
        let mut pipeline = tokio::task::JoinSet::new();
        for (name, task) in self.pipeline_tasks {
            pipeline.spawn_on(task.instrument(tracing::info_span!("task", name)), self.pipeline.handle());
        }
        tracing::info!(addr = %self.listener.local_addr()?, "serving");
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        // Small writes go out at once: a live stream's event must not wait behind Nagle's
        // algorithm for the acknowledgement of the one before (up to the peer's delayed-ACK
        // timeout, 40 ms on Linux).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
            }
        });
        let server = axum::serve(listener, self.router).with_graceful_shutdown(async move {
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
        pipeline.shutdown().await;
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
