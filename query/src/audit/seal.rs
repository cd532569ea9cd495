//! Audit seals (issue 23): a signed, chained digest of the whole log, so that a removed,
//! inserted, reordered or altered event anywhere before a seal is found, also where the
//! per-stream hash chains cannot see it (a stream's last events, or a stream, removed).
//!
//! The digest (the README, "Audit seals", defines it for auditors' own tools): `d₀` is 32
//! zero bytes; for each event of the log in log order,
//! `dᵢ = SHA-256(dᵢ₋₁ ‖ position "\n" stream "\n" revision "\n" hash "\n")` (the position as
//! its 32-hex-digit token, the revision in decimal, the event's chain hash as stored). A seal
//! holds `dₙ` after the event at its position, so each seal costs only the events since the
//! one before, whose digest it carries as `previous`. The signature (Ed25519) covers
//! [`message`].

use std::{collections::BTreeMap, path::Path};

use chrono::Utc;
use cortex_events::{
    Direction, DomainEvent, EventFilter, EventStore, ExpectedRevision, Position, Provenance, RecordedEvent,
    StoreError, StreamName,
    catalog::{AuditSealed, SEAL_STREAM, StreamHead},
    store::FROM_END,
};
use ed25519_dalek::{
    Signature, Signer, SigningKey, Verifier, VerifyingKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The only algorithm.
pub const ALGORITHM: &str = "ed25519";
/// `previous` of the first seal.
pub const NO_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Streams a seal lists in `heads` at most.
pub const MAX_HEADS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the log is empty: there is nothing to seal")]
    EmptyLog,
    #[error("another seal was appended while this one was made; run it again")]
    Concurrent,
    #[error("the last seal in the log does not decode: {0}")]
    BadSeal(String),
    #[error("the key {path}: {why}")]
    Key { path: String, why: String },
}

/// The running digest of the log (the default: before the first event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    digest: [u8; 32],
    events: u64,
}

impl Chain {
    /// The chain as a seal left it.
    pub fn resume(seal: &AuditSealed) -> Result<Self, SealError> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&seal.digest, &mut digest)
            .map_err(|e| SealError::BadSeal(format!("digest: {e}")))?;
        Ok(Self { digest, events: seal.events })
    }

    /// Adds the next event of the log.
    pub fn add(&mut self, position: &str, stream: &str, revision: u64, hash: &str) {
        let mut h = Sha256::new();
        h.update(self.digest);
        for part in [position, stream, &revision.to_string(), hash] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        self.digest = h.finalize().into();
        self.events += 1;
    }

    pub fn digest(&self) -> String {
        hex::encode(self.digest)
    }

    pub fn events(&self) -> u64 {
        self.events
    }
}

/// The text a seal's signature covers: every field but the key, the signature and `heads`.
pub fn message(seal: &AuditSealed) -> String {
    format!(
        "policycortex-seal-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        seal.position,
        seal.events,
        seal.digest,
        seal.previous,
        seal.previous_position.as_deref().unwrap_or("-"),
        seal.algorithm,
        seal.sealed_at
    )
}

/// Whether the seal's signature verifies with the public key it names.
pub fn signature_holds(seal: &AuditSealed) -> bool {
    let mut key = [0u8; 32];
    let mut signature = [0u8; 64];
    if seal.algorithm != ALGORITHM
        || hex::decode_to_slice(&seal.public_key, &mut key).is_err()
        || hex::decode_to_slice(&seal.signature, &mut signature).is_err()
    {
        return false;
    }
    let Ok(key) = VerifyingKey::from_bytes(&key) else { return false };
    key.verify(message(seal).as_bytes(), &Signature::from_bytes(&signature)).is_ok()
}

/// A new signing key.
pub fn generate_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The key as PKCS#8 PEM.
pub fn key_pem(key: &SigningKey) -> Result<String, SealError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| SealError::Key { path: "(new key)".into(), why: e.to_string() })
}

/// Reads a PKCS#8 PEM Ed25519 key.
pub fn read_key(path: &Path) -> Result<SigningKey, SealError> {
    let bad = |why: String| SealError::Key { path: path.display().to_string(), why };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| bad(format!("not an Ed25519 PKCS#8 PEM key: {e}")))
}

/// The public key, as seals name it (64 hex digits).
pub fn public_key(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// The last seal in the log and its revision in [`SEAL_STREAM`], if any.
pub async fn last_seal(store: &dyn EventStore) -> Result<Option<(AuditSealed, u64)>, SealError> {
    let stream = seal_stream();
    let last = store.read_stream(&stream, FROM_END, Direction::Backwards, 1).await?;
    let Some(event) = last.into_iter().next() else { return Ok(None) };
    Ok(Some((decode_seal(&event)?, event.revision)))
}

/// A seal read back from [`SEAL_STREAM`] (anything else there is a fault of the log).
pub fn decode_seal(event: &RecordedEvent) -> Result<AuditSealed, SealError> {
    match DomainEvent::from_recorded(event) {
        Ok(DomainEvent::AuditSealed(seal)) => Ok(seal),
        Ok(other) => Err(SealError::BadSeal(format!(
            "{} at revision {} of {SEAL_STREAM}",
            other.event_type(),
            event.revision
        ))),
        Err(e) => Err(SealError::BadSeal(format!("revision {} of {SEAL_STREAM}: {e}", event.revision))),
    }
}

pub fn seal_stream() -> StreamName {
    StreamName::parse(SEAL_STREAM).expect("a valid stream name")
}

/// Seals the log up to its head: reads the events since the last seal, signs the digest,
/// appends [`AuditSealed`] to [`SEAL_STREAM`] and answers it.
#[tracing::instrument(skip_all)]
pub async fn seal(store: &dyn EventStore, key: &SigningKey) -> Result<AuditSealed, SealError> {
    let last = last_seal(store).await?;
    let (mut chain, from, previous, previous_position, expected) = match &last {
        Some((seal, revision)) => {
            let at: Position =
                seal.position.parse().map_err(|e| SealError::BadSeal(format!("position: {e}")))?;
            (
                Chain::resume(seal)?,
                Some(at),
                seal.digest.clone(),
                Some(seal.position.clone()),
                ExpectedRevision::Exact(*revision),
            )
        }
        None => (Chain::default(), None, NO_DIGEST.to_owned(), None, ExpectedRevision::NoStream),
    };
    let mut heads: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut sealed_to = from;
    let mut events = super::events_to_head(store, from, EventFilter::all()).await?;
    while let Some(e) = events.try_next().await? {
        chain.add(&e.position.token(), e.stream.as_str(), e.revision, &e.metadata.hash);
        if heads.len() <= MAX_HEADS {
            heads.insert(e.stream.as_str().to_owned(), (e.revision, e.metadata.hash.clone()));
        }
        sealed_to = Some(e.position);
    }
    let position = sealed_to.filter(|p| Some(*p) != from).ok_or(SealError::EmptyLog)?;
    let mut seal = AuditSealed {
        position: position.token(),
        events: chain.events(),
        digest: chain.digest(),
        previous,
        previous_position,
        algorithm: ALGORITHM.to_owned(),
        public_key: public_key(key),
        signature: String::new(),
        sealed_at: Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        heads: if heads.len() <= MAX_HEADS {
            heads
                .into_iter()
                .map(|(stream, (revision, hash))| StreamHead { stream, revision, hash })
                .collect()
        } else {
            Vec::new()
        },
    };
    seal.signature = hex::encode(key.sign(message(&seal).as_bytes()).to_bytes());
    let event =
        DomainEvent::AuditSealed(seal.clone()).into_new_event(Provenance::system(Uuid::nil(), "audit"));
    match store.append(&seal_stream(), expected, vec![event]).await {
        Ok(_) => Ok(seal),
        Err(StoreError::WrongExpectedRevision { .. }) => Err(SealError::Concurrent),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(chain: &Chain, key: &SigningKey) -> AuditSealed {
        let mut seal = AuditSealed {
            position: Position::new(7, 1).token(),
            events: chain.events(),
            digest: chain.digest(),
            previous: NO_DIGEST.into(),
            previous_position: None,
            algorithm: ALGORITHM.into(),
            public_key: public_key(key),
            signature: String::new(),
            sealed_at: "2026-12-07T22:00:00.000Z".into(),
            heads: vec![],
        };
        seal.signature = hex::encode(key.sign(message(&seal).as_bytes()).to_bytes());
        seal
    }

    #[test]
    fn the_digest_is_sha256_chained_over_each_events_line() {
        let mut chain = Chain::default();
        chain.add("0000000000000001000000000000000000", "resource-a", 0, "h0");
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(b"0000000000000001000000000000000000\nresource-a\n0\nh0\n");
        assert_eq!(chain.digest(), hex::encode(h.finalize()));
        let one = chain.clone();
        chain.add("0000000000000002000000000000000000", "resource-a", 1, "h1");
        assert_ne!(chain, one);
        assert_eq!(chain.events(), 2);
        // Order matters: the same two events the other way round give another digest.
        let mut swapped = Chain::default();
        swapped.add("0000000000000002000000000000000000", "resource-a", 1, "h1");
        swapped.add("0000000000000001000000000000000000", "resource-a", 0, "h0");
        assert_ne!(swapped.digest(), chain.digest());
    }

    #[test]
    fn a_signature_holds_for_its_seal_only() {
        let key = generate_key();
        let mut chain = Chain::default();
        chain.add("00000000000000070000000000000001", "resource-a", 0, "h0");
        let seal = sealed(&chain, &key);
        assert!(signature_holds(&seal));
        let altered = AuditSealed { events: 2, ..seal.clone() };
        assert!(!signature_holds(&altered), "a changed field breaks it");
        let other = generate_key();
        let resigned = AuditSealed { public_key: public_key(&other), ..seal.clone() };
        assert!(!signature_holds(&resigned), "another key's name does not verify it");
        // The key survives PEM.
        let pem = key_pem(&key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let path = std::env::temp_dir().join(format!("cortex-seal-key-{}.pem", Uuid::now_v7()));
        std::fs::write(&path, pem).unwrap();
        assert_eq!(public_key(&read_key(&path).unwrap()), public_key(&key));
        std::fs::remove_file(&path).unwrap();
    }
}
