//! Opaque page cursors.
//!
//! A cursor is base64url (no padding) of: a version byte, the first 8 bytes of the SHA-256
//! of the query's *scope* (tenant, route and the normalised filters, see
//! [`Scope`]), then the sort key of the last item of the page (a UUID, or a stream revision).
//! The scope binds a cursor to the query that produced it: sent with other filters, to
//! another route or by another tenant, it is refused (400) instead of silently paging
//! through a different list. Clients must treat cursors as opaque; the layout may change
//! with the version byte.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const VERSION: u8 = 1;
const SCOPE_LEN: usize = 8;

/// What a cursor is bound to: a digest of the canonical text of a query minus its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope([u8; SCOPE_LEN]);

impl Scope {
    /// `parts` must name the tenant, the route and every filter in a canonical form (two
    /// spellings of one filter set give the same parts).
    pub fn of(parts: &[&str]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut scope = [0u8; SCOPE_LEN];
        scope.copy_from_slice(&digest[..SCOPE_LEN]);
        Self(scope)
    }
}

/// Why a cursor was refused; the text is the problem's detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("is not a cursor this API issued")]
    Malformed,
    #[error("was issued by another version of this API; start again from the first page")]
    Version,
    #[error("belongs to another query (other filters, route or tenant); start again from the first page")]
    OtherQuery,
}

/// A sort key a cursor can carry.
pub trait SortKey: Sized {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

impl SortKey for Uuid {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Uuid::from_slice(bytes).ok()
    }
}

impl SortKey for u64 {
    fn to_bytes(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

pub fn encode<K: SortKey>(scope: Scope, last: &K) -> String {
    let mut bytes = Vec::with_capacity(1 + SCOPE_LEN + 16);
    bytes.push(VERSION);
    bytes.extend_from_slice(&scope.0);
    bytes.extend_from_slice(&last.to_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode<K: SortKey>(scope: Scope, text: &str) -> Result<K, CursorError> {
    // Longer than any cursor we issue: refused before decoding.
    if text.len() > 64 {
        return Err(CursorError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError::Malformed)?;
    if bytes.len() <= 1 + SCOPE_LEN {
        return Err(CursorError::Malformed);
    }
    let (&version, rest) = bytes.split_first().ok_or(CursorError::Malformed)?;
    if version != VERSION {
        return Err(CursorError::Version);
    }
    let (bound, key) = rest.split_at(SCOPE_LEN);
    let key = K::from_bytes(key).ok_or(CursorError::Malformed)?;
    if bound != scope.0 {
        return Err(CursorError::OtherQuery);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_within_its_scope() {
        let scope = Scope::of(&["t", "resources", "type=x"]);
        let id = Uuid::now_v7();
        assert_eq!(decode::<Uuid>(scope, &encode(scope, &id)), Ok(id));
        assert_eq!(decode::<u64>(scope, &encode(scope, &42u64)), Ok(42));
    }

    #[test]
    fn a_cursor_of_another_scope_is_refused() {
        let a = Scope::of(&["t", "resources", "type=x"]);
        let b = Scope::of(&["t", "resources", "type=y"]);
        assert_eq!(decode::<Uuid>(b, &encode(a, &Uuid::now_v7())), Err(CursorError::OtherQuery));
        assert_ne!(Scope::of(&["ab", "c"]), Scope::of(&["a", "bc"]));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let scope = Scope::of(&["t"]);
        let good = encode(scope, &Uuid::now_v7());
        for bad in ["", "!!!", "AAAA", &good[..good.len() - 2], &format!("{good}AA"), &"A".repeat(100)] {
            assert_eq!(decode::<Uuid>(scope, bad), Err(CursorError::Malformed), "{bad}");
        }
        let mut other_version = URL_SAFE_NO_PAD.decode(&good).unwrap();
        other_version[0] = 9;
        assert_eq!(decode::<Uuid>(scope, &URL_SAFE_NO_PAD.encode(other_version)), Err(CursorError::Version));
        // A revision cursor is not a UUID cursor.
        assert_eq!(decode::<Uuid>(scope, &encode(scope, &7u64)), Err(CursorError::Malformed));
    }
}
