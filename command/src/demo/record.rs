//! What the generator produces: inventory records (the body of `POST /v1/resources`,
//! DESIGN §8) and the operations of an event stream built from them.

use serde_json::Value;

/// Azure Resource Manager's type for resource groups, as it lists them (DESIGN §3).
pub const RESOURCE_GROUP_TYPE: &str = "Microsoft.Resources/resourceGroups";

/// The generator's records are the command API's own body type: every generated id names
/// its subscription and group, so `subscription_id` and `resource_group` stay `None` (the
/// API takes them from the id) and are left out of the JSON.
pub use crate::aggregate::InventoryRecord;

impl InventoryRecord {
    pub fn is_resource_group(&self) -> bool {
        self.resource_type.eq_ignore_ascii_case(RESOURCE_GROUP_TYPE)
    }

    /// The subscription id the record's id names.
    pub fn id_subscription(&self) -> Option<&str> {
        id_segment(&self.id, "subscriptions")
    }

    /// The resource group the record's id names (a group's own name for a group).
    pub fn id_resource_group(&self) -> Option<&str> {
        id_segment(&self.id, "resourceGroups")
    }

    /// The record as the JSON body the API takes.
    pub fn to_json(&self) -> Value {
        // A struct of strings, maps and JSON values always serialises.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One step of a generated event stream: what an inventory scanner would submit.
// Operations are produced and consumed one at a time; boxing the record would only add an
// allocation per operation.
#[expect(clippy::large_enum_variant)]
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
