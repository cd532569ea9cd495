//! NATS wire contracts (DESIGN §6): subjects and the JSON messages sent on them.
//!
//! Producers (the projection runner) and consumers (query services) both build subjects
//! here, so a rename cannot break one side silently.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Position;

/// `cortex.changes.{tenant}.{model}`.
pub fn changes_subject(tenant_id: Uuid, model: &str) -> String {
    format!("cortex.changes.{tenant_id}.{model}")
}

/// Every tenant's and model's changes (`cortex.changes.>`).
pub const ALL_CHANGES: &str = "cortex.changes.>";

/// `cortex.checkpoints.{projection}`.
pub fn checkpoint_subject(projection: &str) -> String {
    format!("cortex.checkpoints.{projection}")
}

/// Every projection's checkpoints (`cortex.checkpoints.*`).
pub const ALL_CHECKPOINTS: &str = "cortex.checkpoints.*";

/// Read-model rows of one tenant and model changed, committed at `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeNotice {
    pub model: String,
    pub ids: Vec<String>,
    pub position: Position,
    pub at: DateTime<Utc>,
}

/// A projection committed everything up to `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointNotice {
    pub projection: String,
    pub position: Position,
    pub at: DateTime<Utc>,
}

/// Prefix of every cache key of a tenant: `cx:v1:{tenant}:`.
pub fn cache_key_prefix(tenant_id: Uuid) -> String {
    cache_key_with(tenant_id, 0)
}

/// [`cache_key_prefix`] in a string with room for `more` bytes after it. Written without
/// `format!`: a cached read builds its key on every request.
pub fn cache_key_with(tenant_id: Uuid, more: usize) -> String {
    let mut key = String::with_capacity(CACHE_KEY_PREFIX_LEN + more);
    key.push_str("cx:v1:");
    key.push_str(tenant_id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    key.push(':');
    key
}

/// Length of [`cache_key_prefix`].
pub const CACHE_KEY_PREFIX_LEN: usize = 6 + uuid::fmt::Hyphenated::LENGTH + 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_messages_have_the_contracted_shape() {
        let t = Uuid::nil();
        assert_eq!(changes_subject(t, "resources"), format!("cortex.changes.{t}.resources"));
        assert_eq!(checkpoint_subject("resources"), "cortex.checkpoints.resources");
        assert_eq!(cache_key_prefix(t), format!("cx:v1:{t}:"));
        assert_eq!(cache_key_prefix(t).len(), CACHE_KEY_PREFIX_LEN);
        let n = CheckpointNotice { projection: "p".into(), position: Position::new(1, 2), at: Utc::now() };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["position"], "00000000000000010000000000000002");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["at", "position", "projection"]);
    }
}
