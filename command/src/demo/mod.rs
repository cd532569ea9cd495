//! # Demo data: a generated Azure estate and the loader that submits it
//!
//! `cortex demo load` fills a fresh PolicyCortex with a realistic estate through the public
//! command API, and the projection benchmark replays the same generator as a long event
//! stream. Generation is pure and deterministic from a seed; loading is the only I/O.
//!
//! ```text
//! EstateConfig ──Estate (iterator)──▶ InventoryRecord …   resource groups before members
//!                 └─Operations───────▶ Register(record) | Delete(cloud id) …
//! policies(m) ──────────────────────▶ PolicyBody …        real Azure built-ins
//!                          │
//!                          ▼ load(): POST /v1/policies, then POST /v1/resources:batch
//!                     LoadReport                           (concurrent, retried, idempotent)
//! ```
//!
//! ## Parts
//!
//! * [`record`]: the inventory record and the operation types.
//! * `catalog`: regions, applications, owners and sizes, which the policy assignments
//!   reuse so "allowed" and "defect" mean the same on both sides.
//! * [`estate`]: subscriptions → resource groups → members, streamed one group at a time;
//!   `members` and `network` build the members of each type and their defects.
//! * [`operations`]: later versions and deletions of an estate's records.
//! * [`policies`]: policy bodies from the rule engine's built-in fixtures.
//! * [`batch`]: the estate cut into request bodies within the API's limits.
//! * [`client`] and [`load`]: the HTTP client (authentication, idempotency keys, retries)
//!   and the load itself.

pub mod batch;
pub mod client;
pub mod estate;
pub mod load;
pub mod operations;
pub mod policies;
pub mod record;

mod catalog;
#[cfg(test)]
mod load_tests;
mod members;
mod network;

pub use client::{ClientConfig, DemoClient, LoadError};
pub use estate::{Estate, EstateConfig};
pub use load::{ItemError, LoadOptions, LoadReport, Progress, load};
pub use operations::Operations;
pub use policies::{PolicyBody, Severity, policies};
pub use record::{InventoryRecord, Operation, RESOURCE_GROUP_TYPE};
