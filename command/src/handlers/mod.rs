//! Command handlers: load a stream, fold it, decide, append at the exact revision.
//!
//! Handlers return their errors without logging them: most are the client's (404, 409…),
//! and the HTTP layer logs the others once, with their cause chain.
//!
//! Every command here is declarative (a desired state, or a transition that the aggregate
//! re-checks), so re-deciding after a conflict is safe: on `WrongExpectedRevision` the
//! handler reloads and decides again, up to [`MAX_ATTEMPTS`] times, unless the client sent
//! `If-Match`, in which case it answers "stale" (412) and leaves the decision to the client.

mod batch;
mod evaluations;
mod policies;
mod resources;

use std::sync::Arc;

use cortex_events::{
    DomainEvent, EventStore, ExpectedRevision, Position, Provenance, RecordedEvent, StoreError, StreamName,
    catalog::DecodeError,
};
use uuid::Uuid;

pub use evaluations::EvaluationOutcome;
pub use policies::{ExemptionOutcome, PolicyOutcome};
pub use resources::ResourceOutcome;

use crate::{
    aggregate::{Aggregate, DomainError},
    tenants::Caller,
};

/// Decide-and-append attempts before a command under contention gives up with 409.
pub const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the {what} is at {}, not revision {expected}", describe(*actual))]
    Stale { what: &'static str, expected: u64, actual: Option<u64> },
    #[error("the {what} kept changing under {attempts} attempts; retry the command")]
    Contended { what: &'static str, attempts: usize },
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("stored event in {stream} at revision {revision} does not decode")]
    Undecodable {
        stream: StreamName,
        revision: u64,
        #[source]
        source: DecodeError,
    },
}

fn describe(actual: Option<u64>) -> String {
    actual.map_or_else(|| "no revision (it does not exist)".to_owned(), |r| format!("revision {r}"))
}

/// Who asked, and in which trace: becomes every event's provenance.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub caller: Caller,
    pub correlation_id: Uuid,
    pub traceparent: Option<String>,
}

impl RequestContext {
    pub(crate) fn provenance(&self) -> Provenance {
        Provenance {
            tenant_id: self.caller.tenant_id,
            actor: self.caller.actor(),
            correlation_id: self.correlation_id,
            causation_id: self.correlation_id,
            traceparent: self.traceparent.clone(),
        }
    }
}

/// A stream folded into its aggregate.
pub(crate) struct Loaded<A> {
    pub state: A,
    /// Revision of the last event; `None` for a stream with no events.
    pub revision: Option<u64>,
    pub last_position: Option<Position>,
}

/// Folds recorded events of `stream` into `loaded`; another tenant's stream is not found.
pub(crate) fn fold_into<A: Aggregate>(
    mut loaded: Loaded<A>,
    ctx: &RequestContext,
    stream: &StreamName,
    what: &'static str,
    events: &[RecordedEvent],
) -> Result<Loaded<A>, CommandError> {
    for recorded in events {
        if recorded.tenant_id() != ctx.caller.tenant_id {
            return Err(DomainError::NotFound { what }.into());
        }
        let event = DomainEvent::from_recorded(recorded).map_err(|source| CommandError::Undecodable {
            stream: stream.clone(),
            revision: recorded.revision,
            source,
        })?;
        loaded.state = loaded.state.evolve(&event);
        loaded.revision = Some(recorded.revision);
        loaded.last_position = Some(recorded.position);
    }
    Ok(loaded)
}

/// A decision that changed nothing: the stream's current revision and last position. Every
/// aggregate refuses (or changes something) on a stream with no events, so an empty one here
/// means there is nothing to act on.
pub(crate) fn unchanged<A>(loaded: Loaded<A>, what: &'static str) -> Result<Decided, CommandError> {
    match (loaded.revision, loaded.last_position) {
        (Some(revision), Some(position)) => Ok(Decided { revision, position, event_types: Vec::new() }),
        _ => Err(DomainError::NotFound { what }.into()),
    }
}

/// What a handled command did.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The stream's revision after the command.
    pub revision: u64,
    /// The position of the command's last event, or of the stream's last event when the
    /// command changed nothing: a query carrying it sees the state the command left.
    pub position: Position,
    /// The type of each event the command appended (none when it changed nothing).
    pub event_types: Vec<&'static str>,
}

impl Decided {
    pub fn changed(&self) -> bool {
        !self.event_types.is_empty()
    }
}

/// The command side: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Commands {
    store: Arc<dyn EventStore>,
}

impl Commands {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store }
    }

    /// Loads `stream` as the caller's tenant sees it: a stream of another tenant reads as
    /// not found, never as "exists".
    #[tracing::instrument(skip(self, ctx), fields(stream = %stream))]
    pub(crate) async fn load<A: Aggregate>(
        &self,
        ctx: &RequestContext,
        stream: &StreamName,
        what: &'static str,
    ) -> Result<Loaded<A>, CommandError> {
        let mut histories = self.store.read_streams(std::slice::from_ref(stream)).await?;
        let history = histories.remove(stream).unwrap_or_default();
        let empty = Loaded { state: A::default(), revision: None, last_position: None };
        fold_into(empty, ctx, stream, what, &history)
    }

    /// Load, decide, append at the exact revision; re-decide on a conflict (see the module
    /// doc). `command` builds the command from the current state, so that facts read once
    /// per attempt stay consistent with the state decided on.
    #[tracing::instrument(skip(self, ctx, command), fields(stream = %stream))]
    pub(crate) async fn execute<A, F>(
        &self,
        ctx: &RequestContext,
        stream: &StreamName,
        what: &'static str,
        if_match: Option<u64>,
        command: F,
    ) -> Result<Decided, CommandError>
    where
        A: Aggregate,
        F: Fn() -> A::Command + Send + Sync,
    {
        for _ in 0..MAX_ATTEMPTS {
            let loaded: Loaded<A> = self.load(ctx, stream, what).await?;
            if let Some(expected) = if_match
                && loaded.revision != Some(expected)
            {
                return Err(CommandError::Stale { what, expected, actual: loaded.revision });
            }
            let events = loaded.state.decide(&command())?;
            if events.is_empty() {
                return unchanged(loaded, what);
            }
            match self.append_decision(ctx, stream, loaded.revision, events).await {
                Ok(decided) => return Ok(decided),
                Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                    if let Some(expected) = if_match {
                        return Err(CommandError::Stale { what, expected, actual });
                    }
                    tracing::debug!(%stream, "concurrent change; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CommandError::Contended { what, attempts: MAX_ATTEMPTS })
    }

    /// Appends a decision's events at the revision it was decided on.
    pub(crate) async fn append_decision(
        &self,
        ctx: &RequestContext,
        stream: &StreamName,
        revision: Option<u64>,
        events: Vec<DomainEvent>,
    ) -> Result<Decided, StoreError> {
        let provenance = ctx.provenance();
        let event_types = events.iter().map(DomainEvent::event_type).collect();
        let new_events = events.into_iter().map(|e| e.into_new_event(provenance.clone())).collect();
        let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let outcome = self.store.append(stream, expected, new_events).await?;
        Ok(Decided { revision: outcome.revision, position: outcome.position, event_types })
    }
}
