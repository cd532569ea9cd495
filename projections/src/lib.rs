//! # cortex-projections — read models (to come: issue 5)
//!
//! What will live here: the projection runner (subscribe to `$all` from a stored
//! checkpoint, batch, apply and write the checkpoint in one PostgreSQL transaction, then
//! publish change and checkpoint notices on NATS), the read-model projectors (resources,
//! policies, latest compliance per resource and policy, summaries, daily trend), and the
//! status and blue/green rebuild logic behind `cortex projections …`.
