//! `GET /readyz` (DESIGN §8): each dependency of this process, checked now, and whether the
//! process can answer. A required dependency that is down (PostgreSQL) makes it 503; an
//! optional one (NATS, the cache) that is down leaves it 200 and `degraded`, because the
//! process still answers correctly without it, only slower or with caches bypassed.

use std::{sync::Arc, time::Duration};

use axum::{Json, http::StatusCode, response::IntoResponse};
use futures::future::{BoxFuture, join_all};
use serde::Serialize;
use serde_json::json;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    /// Working, but not as configured (e.g. NATS unreachable: caches bypassed).
    Degraded,
    Down,
}

/// One dependency's state and a line for operators.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub status: Health,
    pub detail: String,
}

impl Status {
    pub fn ok(detail: impl Into<String>) -> Self {
        Self { status: Health::Ok, detail: detail.into() }
    }
    pub fn degraded(detail: impl Into<String>) -> Self {
        Self { status: Health::Degraded, detail: detail.into() }
    }
    pub fn down(detail: impl Into<String>) -> Self {
        Self { status: Health::Down, detail: detail.into() }
    }
}

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Status> + Send + Sync>;

#[derive(Clone)]
struct Check {
    name: &'static str,
    required: bool,
    run: CheckFn,
}

/// The checks of one process. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Check>,
}

/// How long one check may take before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    /// Adds a check; `required` ones make `/readyz` 503 when down. A name added twice (both
    /// APIs check PostgreSQL) is checked once.
    pub fn add<F>(&mut self, name: &'static str, required: bool, run: F)
    where
        F: Fn() -> BoxFuture<'static, Status> + Send + Sync + 'static,
    {
        if self.checks.iter().any(|c| c.name == name) {
            return;
        }
        self.checks.push(Check { name, required, run: Arc::new(run) });
    }

    pub fn merge(&mut self, other: Readiness) {
        for c in other.checks {
            if !self.checks.iter().any(|o| o.name == c.name) {
                self.checks.push(c);
            }
        }
    }

    /// Runs every check side by side, each bounded by [`CHECK_TIMEOUT`].
    #[tracing::instrument(name = "readyz", skip_all)]
    pub async fn check(&self) -> (bool, serde_json::Value) {
        let results = join_all(self.checks.iter().map(|c| {
            let run = (c.run)();
            async move {
                let status = tokio::time::timeout(CHECK_TIMEOUT, run)
                    .await
                    .unwrap_or_else(|_| Status::down(format!("no answer within {CHECK_TIMEOUT:?}")));
                (c, status)
            }
        }))
        .await;
        let ready = results.iter().all(|(c, s)| !c.required || s.status != Health::Down);
        let worst = if !ready {
            "down"
        } else if results.iter().any(|(_, s)| s.status != Health::Ok) {
            "degraded"
        } else {
            "ok"
        };
        let mut dependencies = serde_json::Map::new();
        for (c, s) in results {
            dependencies.insert(
                c.name.to_owned(),
                json!({"status": s.status, "detail": s.detail, "required": c.required}),
            );
        }
        (ready, json!({"status": worst, "dependencies": dependencies}))
    }

    /// The `/readyz` answer: 200 when every required dependency is up, else 503.
    pub async fn respond(self) -> impl IntoResponse {
        let (ready, body) = self.check().await;
        let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        (status, Json(body))
    }
}

impl Readiness {
    /// PostgreSQL, required: one `SELECT 1` through the pool.
    pub fn add_postgres(&mut self, pool: sqlx::PgPool) {
        self.add("postgresql", true, move || {
            let pool = pool.clone();
            Box::pin(async move {
                match sqlx::query("SELECT 1").execute(&pool).await {
                    Ok(_) => Status::ok(format!("{} connections open", pool.size())),
                    Err(e) => Status::down(e.to_string()),
                }
            })
        });
    }
}
