//! # cortex-projections — read models
//!
//! Data flows `$all` → [`Runner`] (subscribe from the stored checkpoint, batch, apply and
//! write the checkpoint in one PostgreSQL transaction) → a [`Projector`]'s tables in its
//! schema `rm_<name>`.
//!
//! Parts: [`projector`] (the trait, [`Changes`]), [`runner`] (batches, checkpoints, one
//! active runner per projection, watchdog, poison events), [`notify`] (change and checkpoint
//! notices on NATS or an in-process bus), [`status`] (checkpoints and `projection_status`),
//! [`rebuild`] (blue/green; [`fan_out`] shares one read of the log among several rebuilds),
//! and the read models: [`resources`] (`rm_resources`) and
//! [`compliance`] (`rm_compliance`: policies with counts, latest result per (resource,
//! policy), summaries per tenant × subscription × type and per policy, daily trend).

pub mod compliance;
pub mod fan_out;
pub mod notify;
pub mod projector;
pub mod rebuild;
pub mod resources;
pub mod runner;
pub mod status;

pub use compliance::ComplianceProjector;
pub use notify::{LocalBus, Notifier};
pub use projector::{ApplyError, Changes, Projector};
pub use resources::ResourcesProjector;
pub use runner::{Runner, RunnerError, RunnerSettings, Target};

/// Every projection this build knows, in the order `cortex projections list` shows them.
pub fn registry() -> Vec<std::sync::Arc<dyn Projector>> {
    vec![std::sync::Arc::new(ResourcesProjector), std::sync::Arc::new(ComplianceProjector)]
}
