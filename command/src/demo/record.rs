//! What the generator produces: inventory records (the body of `POST /v1/resources`,
//! DESIGN §8) and the operations of an event stream built from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Azure Resource Manager's type for resource groups, as it lists them (DESIGN §3).
pub const RESOURCE_GROUP_TYPE: &str = "Microsoft.Resources/resourceGroups";

/// One inventory record, exactly the fields the command API accepts. `subscription_id` and
/// `resource_group` are left out on purpose: every generated id names both, and the API
/// takes them from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryRecord {
    /// The Azure Resource Manager id: `/subscriptions/{sub}/resourceGroups/{group}[/providers/…]`.
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Empty for child resources (NSG security rules), which have no location in Azure.
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `None` for resources that do not support tags (child resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

impl InventoryRecord {
    pub fn is_resource_group(&self) -> bool {
        self.resource_type.eq_ignore_ascii_case(RESOURCE_GROUP_TYPE)
    }

    /// The subscription id the record's id names.
    pub fn subscription_id(&self) -> Option<&str> {
        id_segment(&self.id, "subscriptions")
    }

    /// The resource group the record's id names (a group's own name for a group).
    pub fn resource_group(&self) -> Option<&str> {
        id_segment(&self.id, "resourceGroups")
    }

    /// The record as the JSON body the API takes.
    pub fn to_json(&self) -> Value {
        // A struct of strings, maps and JSON values always serialises.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One step of a generated event stream: what an inventory scanner would submit.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Register a new resource or report a later version of one (same `id`).
    Register(InventoryRecord),
    /// The cloud resource is gone: its cloud id (the API deletes by the resource's uuid,
    /// which is UUIDv5 of the tenant and the lower-cased cloud id).
    Delete(String),
}

/// The segment after `/{key}/` in an ARM id (case-insensitive key).
fn id_segment<'a>(id: &'a str, key: &str) -> Option<&'a str> {
    let mut parts = id.split('/');
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case(key) {
            return parts.next().filter(|s| !s.is_empty());
        }
    }
    None
}
