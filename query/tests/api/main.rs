//! HTTP integration tests of the query API: the real command and query routers on port 0, a
//! fresh database per test, read models built by the real projectors.

mod compliance;
mod errors;
mod helpers;
mod history;
mod isolation;
mod pagination;
mod policies;
mod resources;
