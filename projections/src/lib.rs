//! # cortex-projections — read models
//!
//! Data flows `$all` → [`Runner`] (subscribe from the stored checkpoint, batch, apply and
//! write the checkpoint in one PostgreSQL transaction) → a [`Projector`]'s tables in its
//! schema `rm_<name>`.
//!
//! Parts: [`projector`] (the trait and its errors), [`runner`] (the runner), [`resources`]
//! (the resources read model). Still to come (issue 5): policies with their counts, latest
//! compliance per (resource, policy), summaries and the daily trend; NATS change and
//! checkpoint notices after commit; one active runner per projection across processes;
//! status; the blue/green rebuild behind `cortex projections …`.

pub mod notify;
pub mod projector;
pub mod rebuild;
pub mod resources;
pub mod runner;
pub mod status;

pub use notify::{LocalBus, Notifier};
pub use projector::{ApplyError, Changes, Projector};
pub use resources::ResourcesProjector;
pub use runner::{Runner, RunnerError, RunnerSettings, Target};

/// Every projection this build knows, in the order `cortex projections list` shows them.
pub fn registry() -> Vec<std::sync::Arc<dyn Projector>> {
    vec![std::sync::Arc::new(ResourcesProjector)]
}
