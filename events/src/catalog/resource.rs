//! Resource events: what is true about one cloud resource (stream `resource-{uuid}`).
//!
//! Change events carry the full new value of what changed and what it was before, so that
//! projections stay simple and audits stay readable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub type Tags = BTreeMap<String, String>;

/// A resource first seen (or seen again after a delete).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRegistered {
    pub resource_id: Uuid,
    /// The provider's own id, as the scanner reported it.
    pub cloud_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub tags: Tags,
    pub properties: Map<String, Value>,
    pub subscription_id: String,
    pub resource_group: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceTagsChanged {
    pub resource_id: Uuid,
    pub tags: Tags,
    pub previous_tags: Tags,
}

/// Properties and/or kind changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePropertiesChanged {
    pub resource_id: Uuid,
    pub properties: Map<String, Value>,
    pub previous_properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_kind: Option<String>,
}

/// Subscription, resource group or location changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMoved {
    pub resource_id: Uuid,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub previous_subscription_id: String,
    pub previous_resource_group: String,
    pub previous_location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRenamed {
    pub resource_id: Uuid,
    pub name: String,
    pub previous_name: String,
}

/// The resource is gone; its stream stays (history), and it may be registered again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDeleted {
    pub resource_id: Uuid,
    pub cloud_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
}
