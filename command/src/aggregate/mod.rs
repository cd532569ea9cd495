//! # Aggregates: the pure decisions of the write side
//!
//! Each aggregate is the state of one stream, folded from its events, and two functions
//! (DESIGN §3): [`Aggregate::decide`] checks a command against the state and answers the
//! events to append (or why not), and [`Aggregate::evolve`] applies one event to the state
//! without judging it. Nothing here does I/O or reads a clock: a command that needs the time
//! carries it, so the same history and command always give the same answer.
//!
//! | stream | state | command |
//! | --- | --- | --- |
//! | `resource-{uuid}` | [`ResourceState`] | [`ResourceCommand`] (from an [`InventoryRecord`]) |
//! | `policy-{uuid}` | [`PolicyState`] | [`PolicyCommand`] (from a [`PolicyBody`]) |
//! | `compliance-{resource uuid}` | [`ResourceCompliance`] | [`ComplianceCommand`] (from an [`EvaluationBody`]) |
//!
//! A command that changes nothing decides no events, so that the handler can answer
//! `"changed": false` and append nothing. Each [`DomainError`] variant maps to one HTTP
//! status; field faults are named by JSON pointer into the request body.

pub mod compliance;
pub mod policy;
pub mod resource;

#[cfg(test)]
mod testing;

use std::fmt;

use cortex_events::DomainEvent;
use serde::Serialize;

pub use compliance::{ComplianceCommand, EvaluationBody, LatestResult, RESERVED_SOURCE, ResourceCompliance};
pub use policy::{Exemption, PolicyBody, PolicyCommand, PolicyDefinition, PolicyState};
pub use resource::{InventoryRecord, ResourceCommand, ResourceSnapshot, ResourceState};

/// One bad field of a command, by JSON pointer into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldFault {
    pub pointer: String,
    pub message: String,
}

impl FieldFault {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), message: message.into() }
    }
}

impl fmt::Display for FieldFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

/// Why a command was refused. Each variant maps to one HTTP status (first in its doc).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// 404: The stream (or the exemption within it) does not exist, or no longer does.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// 400: The command is malformed: every bad field, never empty.
    #[error("invalid command: {}", list(.0))]
    Invalid(Vec<FieldFault>),
    /// 422: The policy rule, its parameters or its mode do not compile.
    #[error(transparent)]
    RuleDoesNotCompile(cortex_rules::CompileErrors),
    /// 409: The command contradicts the state of the stream.
    #[error("{0}")]
    Conflict(String),
}

impl DomainError {
    /// A command with one bad field.
    pub fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldFault::new(pointer, message)])
    }
}

fn list(faults: &[FieldFault]) -> String {
    faults.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// An aggregate: pure decide + evolve. `Default` is the state of a stream with no events.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    type Command;

    /// The events that carry out `command` on this state (none when it changes nothing),
    /// or why it is refused.
    fn decide(&self, command: &Self::Command) -> Result<Vec<DomainEvent>, DomainError>;

    /// The state after `event`. Events of other types are ignored. No checks: the event
    /// was decided on (or recorded as) the state it is applied to.
    fn evolve(self, event: &DomainEvent) -> Self;

    /// Folds a history (oldest first) into its state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a DomainEvent>) -> Self {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}

/// Whether two Azure ids, subscription ids or group names are the same: Azure compares them
/// case-insensitively. Uses the same lower-casing as [`cortex_events::resource_id`].
pub(crate) fn same_ignoring_case(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// A required text field that is empty or only whitespace.
pub(crate) fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}
