//! The compliance evaluator (`cortex-command`'s [`Evaluator`]) as a projection the runner
//! drives: `evaluator`, with its checkpoint, lock, status and timer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cortex_command::evaluator::{self, EvalError, Evaluator};
use cortex_events::{EventFilter, RecordedEvent};
use cortex_projections::{ApplyError, Changes, Projector};
use sqlx::PgConnection;

pub struct EvaluatorProjection(pub Evaluator);

fn apply_error(error: EvalError) -> ApplyError {
    match error {
        EvalError::Decode(e) => ApplyError::Decode(e),
        EvalError::Postgres { step, source } => ApplyError::Postgres { step, source },
        other => ApplyError::Other { transient: other.is_transient(), source: Box::new(other) },
    }
}

#[async_trait]
impl Projector for EvaluatorProjection {
    fn name(&self) -> &'static str {
        evaluator::NAME
    }

    fn filter(&self) -> EventFilter {
        evaluator::filter()
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[RecordedEvent],
        _changes: &mut Changes,
    ) -> Result<(), ApplyError> {
        self.0.apply(conn, batch).await.map(drop).map_err(apply_error)
    }

    fn next_tick(&self) -> Option<DateTime<Utc>> {
        self.0.next_tick()
    }

    async fn tick(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        _changes: &mut Changes,
    ) -> Result<(), ApplyError> {
        self.0.tick(conn, now).await.map(drop).map_err(apply_error)
    }
}
