//! Event replay audits (DESIGN §9, issue 23): what the log says happened, read back for
//! auditors. The CLI (`cortex audit …`) and the API's `as_of` answers share these.

pub mod as_of;
pub mod history;
pub mod seal;
pub mod verify;

pub use history::{AuditEntry, Change, history};
