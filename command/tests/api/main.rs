//! HTTP integration tests of the command API: the real router on port 0, a fresh database
//! per test, and every status DESIGN §8 gives for these routes.

mod concurrency;
mod demo;
mod errors;
mod evaluations;
mod helpers;
mod idempotency;
mod openapi;
mod policies;
mod resources;
