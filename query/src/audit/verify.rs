//! `cortex audit verify` (issue 23): the per-stream hash chains and the seals, in one pass
//! over the log. (The comparison of the read models with a replay is to come.)
//!
//! - Chains: each event's `prev_hash` must be its stream's previous event's hash (the genesis
//!   hash for revision 0), its revision the next one, and its hash must match its content.
//!   The first broken link of a stream is reported; the chain then goes on from the event
//!   found, so one break is not reported again at every later event.
//! - Seals: every `AuditSealed` of the log and a kept one (`--seal`) name a position and the
//!   running digest there ([`super::seal`]); the pass computes the digest and compares it as
//!   it passes each position. Where a seal lists its streams' heads, a stream whose events
//!   after a revision, or whose whole self, went missing is named. Signatures must verify
//!   with the trusted key: the kept seal's, else the one given, else the first seal's.

use std::collections::{BTreeMap, HashMap, HashSet};

use cortex_events::{EventFilter, EventStore, Position, catalog::AuditSealed, hash::GENESIS_HASH};
use futures::TryStreamExt;
use serde::Serialize;
use uuid::Uuid;

use super::seal::{Chain, SealError, decode_seal, seal_stream, signature_holds};

/// What verification found wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A stream's chain is broken at this event: `expected` is what the chain says (the
    /// previous hash, the next revision, or the hash of the content), `found` what is stored.
    BrokenChain { stream: String, revision: u64, what: &'static str, expected: String, found: String },
    /// The log before a seal's position is not what the seal signed.
    SealMismatch {
        seal: String,
        source: SealSource,
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        revision: Option<u64>,
        expected: String,
        found: String,
    },
    /// A seal's signature does not verify, or it is signed by a key other than the trusted one.
    BadSignature { seal: String, source: SealSource, public_key: String, detail: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealSource {
    /// An `AuditSealed` event of the log.
    Log,
    /// The seal given with `--seal`.
    Kept,
}

/// The answer of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub streams: u64,
    pub events: u64,
    pub seals: u64,
    /// The public key seals were checked against (absent when there were none).
    pub trusted_key: Option<String>,
    pub findings: Vec<Finding>,
}

/// What to verify.
#[derive(Debug, Default)]
pub struct Verify {
    /// Only the chains of this tenant's streams (seals still cover the whole log).
    pub tenant: Option<Uuid>,
    /// A seal kept outside the log.
    pub kept: Option<AuditSealed>,
    /// The public key seals must be signed with (hex), when no seal is kept.
    pub trusted_key: Option<String>,
}

struct Pending {
    seal: AuditSealed,
    source: SealSource,
}

impl Verify {
    /// One pass over the log; `progress(done)` after every 10,000 events.
    #[tracing::instrument(skip_all)]
    pub async fn run(
        self,
        store: &dyn EventStore,
        mut progress: impl FnMut(u64),
    ) -> Result<Report, SealError> {
        let mut findings = Vec::new();
        let mut seals = self.log_seals(store).await?;
        let trusted = self
            .kept
            .as_ref()
            .map(|k| k.public_key.clone())
            .or(self.trusted_key.clone())
            .or_else(|| seals.first().map(|s| s.public_key.clone()));
        let mut checks: Vec<Pending> =
            seals.drain(..).map(|seal| Pending { seal, source: SealSource::Log }).collect();
        if let Some(kept) = self.kept {
            checks.push(Pending { seal: kept, source: SealSource::Kept });
        }
        let seal_count = checks.len() as u64;
        for p in &checks {
            let source = p.source;
            let seal = &p.seal;
            if !signature_holds(seal) {
                findings.push(Finding::BadSignature {
                    seal: seal.position.clone(),
                    source,
                    public_key: seal.public_key.clone(),
                    detail: "the signature does not verify".into(),
                });
            } else if trusted.as_deref() != Some(seal.public_key.as_str()) {
                findings.push(Finding::BadSignature {
                    seal: seal.position.clone(),
                    source,
                    public_key: seal.public_key.clone(),
                    detail: format!(
                        "signed by another key than the trusted one ({})",
                        trusted.as_deref().unwrap_or("-")
                    ),
                });
            }
        }
        // The seals by position, checked as the pass reaches (or passes) each.
        let mut by_position: BTreeMap<Position, Vec<Pending>> = BTreeMap::new();
        for p in checks {
            match p.seal.position.parse::<Position>() {
                Ok(at) => by_position.entry(at).or_default().push(p),
                Err(e) => findings.push(mismatch(&p, format!("its position does not parse: {e}"), "-", "-")),
            }
        }

        let mut chain = Chain::default();
        let mut heads: HashMap<String, (u64, String)> = HashMap::new();
        let mut broken: HashSet<String> = HashSet::new();
        let mut events = super::events_to_head(store, None, EventFilter::all()).await?;
        while let Some(e) = events.try_next().await? {
            // Seals whose position lies before this event and was never met: its event is gone.
            while let Some(entry) = by_position.first_entry() {
                if *entry.key() >= e.position {
                    break;
                }
                for p in entry.remove() {
                    check(
                        &p,
                        &chain,
                        &heads,
                        Some("the event at the seal's position is missing"),
                        &mut findings,
                    );
                }
            }
            let stream = e.stream.as_str().to_owned();
            let mine = self.tenant.is_none_or(|t| t == e.tenant_id());
            if mine && !broken.contains(&stream) {
                let (want_prev, want_rev) = match heads.get(&stream) {
                    Some((rev, hash)) => (hash.as_str(), rev + 1),
                    None => (GENESIS_HASH, 0),
                };
                let fault = if e.revision != want_rev {
                    Some(("revision", want_rev.to_string(), e.revision.to_string()))
                } else if e.metadata.prev_hash != want_prev {
                    Some(("prev_hash", want_prev.to_owned(), e.metadata.prev_hash.clone()))
                } else if !e.hash_is_intact() {
                    let expected = e.metadata.expected_hash(&e.event_type, e.data_as_stored());
                    Some(("hash", expected, e.metadata.hash.clone()))
                } else {
                    None
                };
                if let Some((what, expected, found)) = fault {
                    broken.insert(stream.clone());
                    findings.push(Finding::BrokenChain {
                        stream: stream.clone(),
                        revision: e.revision,
                        what,
                        expected,
                        found,
                    });
                }
            }
            chain.add(&e.position.token(), &stream, e.revision, &e.metadata.hash);
            heads.insert(stream, (e.revision, e.metadata.hash.clone()));
            if chain.events() % 10_000 == 0 {
                progress(chain.events());
            }
            if let Some(due) = by_position.remove(&e.position) {
                for p in due {
                    check(&p, &chain, &heads, None, &mut findings);
                }
            }
        }
        // Seals past the end of the log: what they sealed is gone.
        for (_, due) in by_position {
            for p in due {
                check(&p, &chain, &heads, Some("the log ends before the seal's position"), &mut findings);
            }
        }
        progress(chain.events());
        Ok(Report {
            streams: heads.len() as u64,
            events: chain.events(),
            seals: seal_count,
            trusted_key: trusted,
            findings,
        })
    }

    /// Every seal of the log, oldest first.
    async fn log_seals(&self, store: &dyn EventStore) -> Result<Vec<AuditSealed>, SealError> {
        let stream = seal_stream();
        let events =
            store.read_streams(std::slice::from_ref(&stream)).await?.remove(&stream).unwrap_or_default();
        events.iter().map(decode_seal).collect()
    }
}

fn mismatch(p: &Pending, detail: String, expected: &str, found: &str) -> Finding {
    Finding::SealMismatch {
        seal: p.seal.position.clone(),
        source: p.source,
        detail,
        stream: None,
        revision: None,
        expected: expected.to_owned(),
        found: found.to_owned(),
    }
}

/// A seal met at its position (`missed`: passed without meeting it, and why): the digest and
/// count must be the pass's; where they are not, its heads name the streams that differ.
fn check(
    p: &Pending,
    chain: &Chain,
    heads: &HashMap<String, (u64, String)>,
    missed: Option<&str>,
    findings: &mut Vec<Finding>,
) {
    let seal = &p.seal;
    if missed.is_none() && seal.digest == chain.digest() && seal.events == chain.events() {
        return;
    }
    let mut named = false;
    for h in &seal.heads {
        let (detail, revision, found) = match heads.get(&h.stream) {
            None => ("the stream is missing", Some(h.revision), "no events".to_owned()),
            Some((rev, _)) if *rev < h.revision => (
                "events of the stream are missing after the revision found",
                Some(*rev + 1),
                format!("revision {rev}"),
            ),
            Some((rev, hash)) if *rev == h.revision && *hash != h.hash => {
                ("the stream's last event differs", Some(*rev), hash.clone())
            }
            _ => continue,
        };
        named = true;
        findings.push(Finding::SealMismatch {
            seal: seal.position.clone(),
            source: p.source,
            detail: detail.into(),
            stream: Some(h.stream.clone()),
            revision,
            expected: format!("revision {} hash {}", h.revision, h.hash),
            found,
        });
    }
    if !named {
        findings.push(mismatch(
            p,
            missed.unwrap_or("the log before the seal's position differs from what was sealed").into(),
            &format!("{} events, digest {}", seal.events, seal.digest),
            &format!("{} events, digest {}", chain.events(), chain.digest()),
        ));
    }
}
