//! # cortex-query — the read side
//!
//! Serves the query half of DESIGN §8 from the PostgreSQL read models the projections keep
//! (`rm_resources`, `rm_compliance`) and, for histories, from the event store.
//!
//! Data flows: HTTP request → [`api`] (authentication shared with the command API through
//! `cortex-http`; [`api::params`] checks every parameter; [`cursor`] opens page cursors) →
//! [`reads`] (one function per query: a typed query key in, the prepared JSON body and its
//! entity tag out) → PostgreSQL or the [`cortex_events::EventStore`] → back as 200 with an
//! `ETag`, or 304 when the client already has it.
//!
//! The seam between [`api`] and [`reads`] is where the cache of DESIGN §5 sits (to come,
//! issue 6): a [`reads::Prepared`] answer is what it keeps and serves as bytes.

pub mod api;
pub mod audit;
pub mod cache;
pub mod cursor;
pub mod fresh;
pub mod reads;

pub use api::{QueryState, router, routes};
pub use reads::{Prepared, ReadError, Reads};
