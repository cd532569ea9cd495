//! HTTP integration tests of the query API: the real command and query routers on port 0, a
//! fresh database per test, read models built by the real projectors.

mod compliance;
mod errors;
mod fleet;
mod helpers;
mod history;
mod isolation;
mod live;
mod pagination;
mod policies;
mod resources;
