//! # cortex-command — the write side
//!
//! (crate documentation is completed with the command API)

pub mod aggregate;
pub mod demo;
pub mod evaluator;

/// The Azure Policy rule engine.
pub use cortex_rules as rules;
pub mod api;
pub mod handlers;
pub mod tenants;
