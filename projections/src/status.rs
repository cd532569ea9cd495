//! Checkpoints and status rows (`projection_checkpoints`, `projection_status`): written by the
//! runners, read by `cortex projections list|status`.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use cortex_events::Position;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::runner::{RunnerError, cause_chain};

/// What a runner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applying what the log held when it started.
    CatchingUp,
    /// Caught up; applying events as they commit.
    Live,
    /// A fault (database, subscription); trying again with a backoff.
    Retrying,
    /// Stopped on an event it cannot apply.
    Failed,
    /// A blue/green rebuild's shadow, being built.
    Rebuilding,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CatchingUp => "catching_up",
            Self::Live => "live",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Rebuilding => "rebuilding",
        }
    }
}

/// The error that stopped (or is delaying) a runner, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub message: String,
    pub event_id: Option<Uuid>,
    pub stream: Option<String>,
    pub position: Option<String>,
}

impl Failure {
    pub fn of(error: &RunnerError) -> Self {
        let mut failure = Self { message: cause_chain(error), ..Self::default() };
        if let RunnerError::Apply { event_id, stream, position, .. } = error {
            failure.event_id = Some(*event_id);
            failure.stream = Some(stream.to_string());
            failure.position = Some(position.token());
        }
        failure
    }
}

/// `host:pid` of this process, to tell runners apart in status.
pub fn runner_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{}", std::process::id())
    })
}

/// The stored checkpoint of `key` (`None` before its first batch).
#[tracing::instrument(name = "projection.read_checkpoint", skip(pool))]
pub async fn checkpoint(pool: &PgPool, key: &str) -> Result<Option<Position>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT position_major, position_minor FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Position::new(r.get::<i64, _>(0) as u64, r.get::<i64, _>(1) as u64)))
}

/// Moves `key`'s checkpoint from `from` to `to` (compare-and-set; `from = None` creates it),
/// counting `events`. Answers whether it moved: `false` means another writer moved it first.
#[tracing::instrument(name = "projection.move_checkpoint", skip(conn))]
pub async fn move_checkpoint(
    conn: &mut PgConnection,
    key: &str,
    from: Option<Position>,
    to: Position,
    events: u64,
) -> Result<bool, sqlx::Error> {
    let moved = match from {
        None => sqlx::query(
            "INSERT INTO public.projection_checkpoints (projection, position_major, position_minor, events) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (projection) DO NOTHING",
        )
        .bind(key)
        .bind(to.major as i64)
        .bind(to.minor as i64)
        .bind(events as i64),
        Some(from) => sqlx::query(
            "UPDATE public.projection_checkpoints SET position_major = $2, position_minor = $3, \
                    events = events + $4, updated_at = now() \
              WHERE projection = $1 AND position_major = $5 AND position_minor = $6",
        )
        .bind(key)
        .bind(to.major as i64)
        .bind(to.minor as i64)
        .bind(events as i64)
        .bind(from.major as i64)
        .bind(from.minor as i64),
    }
    .execute(conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Records `key`'s state (and the error, or clears it).
#[tracing::instrument(name = "projection.report", skip(pool, failure), fields(state = state.as_str()))]
pub async fn report(
    pool: &PgPool,
    key: &str,
    state: State,
    failure: Option<&Failure>,
) -> Result<(), sqlx::Error> {
    let f = failure.cloned().unwrap_or_default();
    sqlx::query(
        "INSERT INTO projection_status (projection, state, runner, last_error, error_event_id, error_stream, error_position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (projection) DO UPDATE SET state = EXCLUDED.state, runner = EXCLUDED.runner, \
            last_error = COALESCE(EXCLUDED.last_error, CASE WHEN EXCLUDED.state IN ('live', 'catching_up', 'rebuilding') \
                                  THEN NULL ELSE projection_status.last_error END), \
            error_event_id = EXCLUDED.error_event_id, error_stream = EXCLUDED.error_stream, \
            error_position = EXCLUDED.error_position, heartbeat_at = now(), updated_at = now()",
    )
    .bind(key)
    .bind(state.as_str())
    .bind(runner_id())
    .bind(failure.map(|f| f.message.clone()))
    .bind(f.event_id)
    .bind(f.stream)
    .bind(f.position)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that `key`'s runner is alive and its rate.
#[tracing::instrument(name = "projection.heartbeat", skip(pool))]
pub async fn heartbeat(pool: &PgPool, key: &str, events_per_second: f64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_status SET events_per_second = $2, heartbeat_at = now() WHERE projection = $1",
    )
    .bind(key)
    .bind(events_per_second)
    .execute(pool)
    .await?;
    Ok(())
}

/// One projection (or shadow) as `cortex projections status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub projection: String,
    /// The recorded state, or `stopped` when no runner has reported for a while, or
    /// `never_run`.
    pub state: String,
    pub position: Option<String>,
    /// Events of the log after the checkpoint (`None` when the store cannot count).
    pub lag: Option<u64>,
    pub events: i64,
    pub events_per_second: f64,
    pub runner: Option<String>,
    pub last_error: Option<Failure>,
    pub checkpoint_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Progress of a long piece of work inside the current batch (the evaluator's
    /// re-evaluation of a policy's scope: `{work, tenant_id, policy_id, done, total}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
}

/// A runner that has not written for this long is reported as stopped.
pub const STALE_AFTER_SECONDS: i64 = 30;

/// The status of `names` (and of any shadow of theirs), in that order.
#[tracing::instrument(name = "projection.statuses", skip(pool))]
pub async fn statuses(pool: &PgPool, names: &[&str]) -> Result<Vec<Status>, sqlx::Error> {
    let keys: Vec<String> = names.iter().flat_map(|n| [n.to_string(), format!("{n}@shadow")]).collect();
    let rows = sqlx::query(
        "SELECT k.key, k.ord, c.position_major, c.position_minor, c.events, c.updated_at, \
                s.state, s.runner, s.events_per_second, s.last_error, s.error_event_id, s.error_stream, \
                s.error_position, s.heartbeat_at, s.progress, s.heartbeat_at < now() - make_interval(secs => $2) AS stale \
           FROM UNNEST($1::text[]) WITH ORDINALITY AS k(key, ord) \
           LEFT JOIN projection_checkpoints c ON c.projection = k.key \
           LEFT JOIN projection_status s ON s.projection = k.key \
          ORDER BY k.ord",
    )
    .bind(&keys)
    .bind(STALE_AFTER_SECONDS as f64)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let key: String = r.get("key");
        let major: Option<i64> = r.get("position_major");
        let state: Option<String> = r.get("state");
        let is_shadow = key.ends_with("@shadow");
        if is_shadow && major.is_none() && state.is_none() {
            continue;
        }
        let stale: Option<bool> = r.get("stale");
        let state = match state {
            None if major.is_none() => "never_run".to_owned(),
            None => "stopped".to_owned(),
            Some(s) if s != "failed" && stale == Some(true) => "stopped".to_owned(),
            Some(s) => s,
        };
        let position = major.map(|m| Position::new(m as u64, r.get::<i64, _>("position_minor") as u64));
        let last_error = r.get::<Option<String>, _>("last_error").map(|message| Failure {
            message,
            event_id: r.get("error_event_id"),
            stream: r.get("error_stream"),
            position: r.get("error_position"),
        });
        out.push(Status {
            projection: key,
            state,
            position: position.map(|p| p.token()),
            lag: None,
            events: r.get::<Option<i64>, _>("events").unwrap_or(0),
            events_per_second: r.get::<Option<f64>, _>("events_per_second").unwrap_or(0.0),
            runner: r.get("runner"),
            last_error,
            checkpoint_at: r.get("updated_at"),
            heartbeat_at: r.get("heartbeat_at"),
            progress: r.get("progress"),
        });
    }
    Ok(out)
}
