//! Positions in `$all`: a totally ordered pair, carried to clients as an opaque token.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A position in the global log (`$all`).
///
/// Both adapters have a natural pair of unsigned integers that orders the log:
/// KurrentDB's `(commit, prepare)` log offsets and PostgreSQL's
/// `(transaction id, sequence)`. Ordering is lexicographic on `(major, minor)`.
/// Positions of one store are not comparable with another store's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub major: u64,
    pub minor: u64,
}

impl Position {
    pub const fn new(major: u64, minor: u64) -> Self {
        Self { major, minor }
    }

    /// The opaque token handed to clients for read-your-writes. Fixed-width hex, so tokens
    /// of one store also sort as strings.
    pub fn token(&self) -> String {
        format!("{:016x}{:016x}", self.major, self.minor)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token())
    }
}

/// A token that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position token {0:?}: expected 32 hexadecimal digits")]
pub struct InvalidPositionToken(pub String);

impl FromStr for Position {
    type Err = InvalidPositionToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidPositionToken(s.chars().take(64).collect());
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let major = u64::from_str_radix(&s[..16], 16).map_err(|_| bad())?;
        let minor = u64::from_str_radix(&s[16..], 16).map_err(|_| bad())?;
        Ok(Self { major, minor })
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.token())
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_sorts_like_the_position() {
        let a = Position::new(7, u64::MAX);
        let b = Position::new(8, 0);
        assert!(a < b);
        assert!(a.token() < b.token());
        assert_eq!(a.token().parse::<Position>(), Ok(a));
    }

    #[test]
    fn a_malformed_token_is_refused() {
        assert!("xyz".parse::<Position>().is_err());
        assert!("0000000000000000000000000000000g".parse::<Position>().is_err());
        assert!("00000000000000000000000000000000ff".parse::<Position>().is_err());
    }
}
