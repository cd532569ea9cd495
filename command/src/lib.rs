//! # cortex-command — the write side (to come: issues 4 and 7)
//!
//! What will live here:
//! - aggregates as pure `decide(&State, Command) -> Result<Vec<Event>, DomainError>` and
//!   `evolve(State, &Event) -> State` functions: resource, policy (with exemptions) and
//!   compliance;
//! - command handlers: load a stream from the event store, fold it, decide, append at the
//!   exact revision, retrying a bounded number of times on a conflict when re-deciding is
//!   safe;
//! - the command HTTP API (axum) of DESIGN §8, with problem+json errors;
//! - the compliance evaluator, a subscriber of `$all` that appends `ComplianceEvaluated`;
//! - the Azure Policy rule engine, in the crate `cortex-rules` (`command/rules/`), pure by
//!   construction, re-exported here.

/// The Azure Policy rule engine.
pub use cortex_rules as rules;
