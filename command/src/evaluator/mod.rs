//! The compliance evaluator (DESIGN §3 "Compliance", issue 7): follows `$all` with its own
//! checkpoint and turns every change of a resource, a policy or an exemption into
//! `ComplianceEvaluated` events (source `policycortex`) on `compliance-{resource}`.
//!
//! ## How it runs
//!
//! The evaluator is driven by the projection runner (`cortex-projections`), as the projection
//! `evaluator`: the runner subscribes from the checkpoint, batches, holds the one-active-runner
//! lock, watches for stalls, and commits each batch with its checkpoint; the binary adapts
//! [`Evaluator`] to the runner's `Projector` trait. Its working state lives in `rm_evaluator`
//! (see `migrations/0006_evaluator.sql`).
//!
//! A batch:
//! 1. folds each event, in log order, into the state it loaded (resources, policies,
//!    exemptions), and after each one evaluates what the event can change (the triggers);
//! 2. appends a `ComplianceEvaluated` for each (trigger, resource) whose results are news —
//!    the first evaluation of a pair in scope, or a change of state, reason or policy revision
//!    — with only the results that are;
//! 3. writes the state back at the end, in the runner's transaction with the checkpoint.
//!
//! ## Exactly-once effect
//!
//! An appended event's id is UUIDv5 of (trigger event id, resource id); the trigger event
//! fixes the policy revision. It is appended with the expected revision the state holds for
//! that stream. A crash after appending and before the commit restarts from the state at the
//! checkpoint, which decides the same results with the same ids at the same revisions: the
//! store answers those appends as idempotent retries. The result depends on the events only,
//! never on how the log is cut into batches: each trigger is evaluated on its own, at its
//! place in the log, and time is the event's `occurred_at`. When an external scanner appended
//! to the stream in between, the conflict is resolved by looking for the event id in what
//! follows the expected revision.
//!
//! ## Triggers
//!
//! * A resource registered or changed: against every enabled policy of its tenant. A
//!   resource group registered, retagged, moved, renamed or deleted: each of its members too
//!   (`resourceGroup()` reads it).
//! * A policy created enabled, its rule changed, its scope changed, or enabled: its tenant's
//!   resources in pages of [`EvaluatorSettings::page`], their appends concurrent, progress
//!   in `projection_status.progress`. Disabled or deleted: nothing to decide (the read
//!   models leave its results out of the summaries).
//! * An exemption granted, revoked or expired: its (resource, policy) pair. Expiry happens
//!   before the first event at or after `expires_at`, or, when the log is quiet, by the clock
//!   ([`Evaluator::tick`]); the id of its event derives from the exemption.
//! * A resource deleted: nothing (the read models leave it out of the summaries; its results
//!   stay in history, and count again if it is registered again).

mod judge;
#[cfg(test)]
mod plan_tests;
mod rows;
mod work;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use cortex_events::{
    EventFilter, EventStore, RecordedEvent, StoreError, catalog::DecodeError, stream::category,
};
use cortex_rules::{Mode, Policy, PolicyDefinitionInput};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use judge::{in_scope, is_news, judge};
pub use rows::{Decision, ExemptionRow, PolicyRow, ResourceRow};

use judge::Compiled;

/// The evaluator's name: its checkpoint key and its schema `rm_evaluator`.
pub const NAME: &str = "evaluator";

/// The actor of the events it appends.
pub const ACTOR: &str = "evaluator";

/// The namespace of the ids of the events it appends.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c2f_64a1_1f7e_4f0c_9a51_4be0_2d7c_e3a9);

/// What the evaluator reads: every resource and policy event (compliance events are its own
/// output, or external results it does not re-decide).
pub fn filter() -> EventFilter {
    EventFilter::all().categories([category::RESOURCE, category::POLICY])
}

#[derive(Debug, Clone, Copy)]
pub struct EvaluatorSettings {
    /// Resources per page when a policy's scope is re-evaluated.
    pub page: usize,
    /// Appends in flight at once (each to its own stream).
    pub concurrency: usize,
}

impl Default for EvaluatorSettings {
    fn default() -> Self {
        Self { page: 1000, concurrency: 64 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("the event does not decode")]
    Decode(#[from] DecodeError),
    #[error("postgresql: {step}")]
    Postgres {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("appending to {stream}")]
    Append {
        stream: String,
        #[source]
        source: StoreError,
    },
    #[error("appending to {stream}: still conflicting after {attempts} attempts")]
    Contended { stream: String, attempts: usize },
}

impl EvalError {
    /// Whether trying again later can succeed, as opposed to an event that cannot be handled.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Decode(_) => false,
            Self::Postgres { source, .. } => cortex_events::postgres::is_transient_sqlx(source),
            Self::Append { source, .. } => source.is_transient(),
            Self::Contended { .. } => true,
        }
    }
}

/// What a batch or a tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `ComplianceEvaluated` events appended (idempotent retries included).
    pub appended: u64,
    /// Resources evaluated.
    pub evaluated: u64,
}

pub struct Evaluator {
    store: Arc<dyn EventStore>,
    pool: PgPool,
    settings: EvaluatorSettings,
    compiled: Mutex<HashMap<(Uuid, u64), Arc<Compiled>>>,
    /// When the next exemption expires, as far as the last batch knew; `Some(epoch)` until
    /// the first batch or tick has looked.
    next_expiry: Mutex<Option<DateTime<Utc>>>,
}

impl Evaluator {
    pub fn new(store: Arc<dyn EventStore>, pool: PgPool, settings: EvaluatorSettings) -> Self {
        Self {
            store,
            pool,
            settings,
            compiled: Mutex::new(HashMap::new()),
            next_expiry: Mutex::new(Some(DateTime::<Utc>::UNIX_EPOCH)),
        }
    }

    /// Decides `batch` (in log order) inside `conn`'s transaction, whose `search_path` is
    /// `rm_evaluator`: appends the decisions, then writes the state back. The caller commits
    /// with the checkpoint.
    #[tracing::instrument(name = "evaluator.apply", skip_all, fields(events = batch.len(), evaluated, appended))]
    pub async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[RecordedEvent],
    ) -> Result<Outcome, EvalError> {
        let mut work = work::Work::new(self);
        let result = work.run_batch(conn, batch).await;
        self.finish(conn, work, result).await
    }

    /// Lets the exemptions due at `now` expire (the log is quiet: no event brought them due).
    #[tracing::instrument(name = "evaluator.tick", skip_all, fields(evaluated, appended))]
    pub async fn tick(&self, conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Outcome, EvalError> {
        let mut work = work::Work::new(self);
        let result = work.run_tick(conn, now).await;
        self.finish(conn, work, result).await
    }

    async fn finish(
        &self,
        conn: &mut PgConnection,
        work: work::Work<'_>,
        result: Result<(), EvalError>,
    ) -> Result<Outcome, EvalError> {
        let reported = work.reported_progress();
        let outcome = match result {
            Ok(()) => work.write(conn).await,
            Err(e) => Err(e),
        };
        if reported {
            self.report_progress(None).await;
        }
        let outcome = outcome?;
        // On the `evaluator.apply`/`evaluator.tick` span: what the batch or tick did.
        tracing::Span::current().record("evaluated", outcome.evaluated).record("appended", outcome.appended);
        let next = rows::next_expiry(conn).await?;
        *self.next_expiry.lock().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(outcome)
    }

    /// When an exemption is next due to expire (for the runner's timer).
    pub fn next_tick(&self) -> Option<DateTime<Utc>> {
        *self.next_expiry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The compiled form of a policy revision, compiled once.
    fn compiled(&self, policy: &PolicyRow) -> Arc<Compiled> {
        let key = (policy.policy_id, policy.rule_revision);
        let mut cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.get(&key) {
            return found.clone();
        }
        if cache.len() >= 10_000 {
            cache.clear();
        }
        let mode = match policy.mode {
            cortex_events::catalog::PolicyMode::All => Mode::All,
            cortex_events::catalog::PolicyMode::Indexed => Mode::Indexed,
        };
        let compiled = Arc::new(
            Policy::compile(&PolicyDefinitionInput {
                rule: policy.rule.clone(),
                parameters: Value::Object(policy.parameters.clone()),
                parameter_values: policy.parameter_values.clone(),
                mode: Some(mode.to_string()),
            })
            .map_err(|e| e.to_string()),
        );
        cache.insert(key, compiled.clone());
        compiled
    }

    /// Shows (or clears) the progress of a long piece of work in `cortex projections status`;
    /// written outside the batch transaction, so a failure only loses the figure.
    async fn report_progress(&self, progress: Option<Value>) {
        let result = sqlx::query(
            "UPDATE projection_status SET progress = $2, heartbeat_at = now() WHERE projection = $1",
        )
        .bind(NAME)
        .bind(progress)
        .execute(&self.pool)
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "cannot record the evaluator's progress");
        }
    }
}
