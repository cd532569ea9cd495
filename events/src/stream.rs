//! Stream naming: `{category}-{id}`, the category being the part before the first dash,
//! and the deterministic ids of resource streams.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The categories PolicyCortex writes. Other categories are legal stream names (tests use
/// their own) but carry no domain events.
pub mod category {
    pub const RESOURCE: &str = "resource";
    pub const POLICY: &str = "policy";
    pub const COMPLIANCE: &str = "compliance";
    pub const TENANT: &str = "tenant";
}

/// Longest stream name accepted; both stores index the name.
const MAX_STREAM_NAME: usize = 200;

/// A validated stream name: `category-id`, ASCII, no `$` prefix (reserved for system
/// streams in KurrentDB), no whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StreamName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream name {name:?}: {why}")]
pub struct InvalidStreamName {
    pub name: String,
    pub why: &'static str,
}

impl StreamName {
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidStreamName> {
        let name = name.into();
        let why = if name.len() > MAX_STREAM_NAME {
            Some("longer than 200 bytes")
        } else if name.starts_with('$') {
            Some("names starting with '$' are reserved for system streams")
        } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
            Some("only printable ASCII without spaces is allowed")
        } else {
            match name.split_once('-') {
                Some((cat, id)) if !cat.is_empty() && !id.is_empty() => None,
                _ => Some("expected `category-id`"),
            }
        };
        match why {
            Some(why) => Err(InvalidStreamName { name, why }),
            None => Ok(Self(name)),
        }
    }

    /// `{category}-{id}` for a uuid id; infallible for the categories we own.
    pub fn of(category: &'static str, id: Uuid) -> Self {
        Self(format!("{category}-{id}"))
    }

    pub fn resource(id: Uuid) -> Self {
        Self::of(category::RESOURCE, id)
    }

    pub fn policy(id: Uuid) -> Self {
        Self::of(category::POLICY, id)
    }

    /// The compliance stream of a resource (keyed by the resource's uuid).
    pub fn compliance(resource_id: Uuid) -> Self {
        Self::of(category::COMPLIANCE, resource_id)
    }

    pub fn tenant(id: Uuid) -> Self {
        Self::of(category::TENANT, id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first dash.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(&self.0, |(c, _)| c)
    }

    /// The part after the first dash, parsed as a uuid when it is one.
    pub fn id_uuid(&self) -> Option<Uuid> {
        self.0.split_once('-').and_then(|(_, id)| Uuid::parse_str(id).ok())
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StreamName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StreamName::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The uuid of a cloud resource within a tenant: UUIDv5 with the tenant id as namespace and
/// the lower-cased cloud resource id as name. A scanner that reports the same resource twice,
/// in any letter case (Azure ids are case-insensitive), reaches the same stream.
pub fn resource_id(tenant_id: Uuid, cloud_resource_id: &str) -> Uuid {
    Uuid::new_v5(&tenant_id, cloud_resource_id.to_lowercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_cloud_resource_in_any_case_reaches_the_same_stream() {
        let tenant = Uuid::now_v7();
        let a = resource_id(tenant, "/subscriptions/S1/resourceGroups/RG/providers/X/y/Z");
        let b = resource_id(tenant, "/subscriptions/s1/resourcegroups/rg/providers/x/y/z");
        assert_eq!(a, b);
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn the_same_cloud_resource_in_two_tenants_gets_two_streams() {
        let id = "/subscriptions/s1/resourceGroups/rg";
        assert_ne!(resource_id(Uuid::now_v7(), id), resource_id(Uuid::now_v7(), id));
    }

    #[test]
    fn the_category_is_the_part_before_the_first_dash() {
        let id = Uuid::now_v7();
        let s = StreamName::compliance(id);
        assert_eq!(s.category(), "compliance");
        assert_eq!(s.id_uuid(), Some(id));
        assert_eq!(StreamName::parse("a-b-c").unwrap().category(), "a");
    }

    #[test]
    fn malformed_stream_names_are_refused() {
        for bad in ["", "nodash", "-x", "x-", "$ce-resource", "a b-c", &"x".repeat(300)] {
            assert!(StreamName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
