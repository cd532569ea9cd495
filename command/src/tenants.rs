//! Tenants and their API keys live in `cortex_http::tenants`, shared with the query API
//! (which may not depend on this crate, DESIGN §1); re-exported here for the command side.

pub use cortex_http::tenants::*;
