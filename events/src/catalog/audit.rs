//! Audit seals (stream `audit-seals`): signed digests of the whole log (issue 23; the
//! digest is defined in the README, "Audit seals").

use serde::{Deserialize, Serialize};

/// The stream every seal is appended to.
pub const SEAL_STREAM: &str = "audit-seals";

/// A seal: the digest of every event of the log up to `position`, in log order, signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSealed {
    /// The position of the last event sealed (its token).
    pub position: String,
    /// How many events of the log the digest covers, from the first.
    pub events: u64,
    /// The running digest after the event at `position` (64 hex digits).
    pub digest: String,
    /// The digest of the seal before (64 zeros for the first seal).
    pub previous: String,
    /// The position of the seal before (absent for the first seal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_position: Option<String>,
    /// `ed25519`.
    pub algorithm: String,
    /// The signer's public key (64 hex digits).
    pub public_key: String,
    /// Signature of the seal's message (128 hex digits).
    pub signature: String,
    /// When it was sealed (RFC 3339, milliseconds, UTC).
    pub sealed_at: String,
    /// Each stream that changed since the seal before, with its last revision and hash at
    /// `position` (omitted past 10,000 streams): lets a verification name a stream whose last
    /// events were removed, or a stream removed whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<StreamHead>,
}

/// A stream's last event as a seal saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamHead {
    pub stream: String,
    pub revision: u64,
    pub hash: String,
}
