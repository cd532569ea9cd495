//! What a rule is evaluated against: an inventory record (DESIGN §8), its resource group and
//! its subscription, prepared once per resource and shared by every policy evaluated on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::value::{get_ci, normalise_location};

/// Azure Resource Manager's type for resource groups, as it lists them.
pub(crate) const RESOURCE_GROUP_TYPE_ARM: &str = "Microsoft.Resources/resourceGroups";
/// Azure Policy's spelling of the same type: what a rule's `type` field sees for a group.
pub(crate) const RESOURCE_GROUP_TYPE: &str = "Microsoft.Resources/subscriptions/resourceGroups";
pub(crate) const SUBSCRIPTION_TYPE: &str = "Microsoft.Resources/subscriptions";

/// An inventory record.
///
/// ARM top-level fields an inventory record has no slot for (`sku`, `identity`, `plan`,
/// `zones`, …) are read from the record's top level when present (a full ARM document, as
/// `cortex policy check` may be given) and otherwise from `properties`, where scanners put
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    #[serde(default)]
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The resource's `properties` object (`null` when the record has none).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub properties: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// Any other top-level ARM fields (`sku`, `identity`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A registered resource group, as `resourceGroup()` reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceGroupInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The subscription, as `subscription()` reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub subscription_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A resource prepared for evaluation: build it once, evaluate every policy against it.
#[derive(Debug, Clone)]
pub struct ResourceContext<'a> {
    pub(crate) resource: &'a Resource,
    /// The type as rules see it (resource groups in Azure Policy's spelling).
    pub(crate) resource_type: String,
    /// Lower-cased, spaces stripped (`East US 2` → `eastus2`).
    pub(crate) location: String,
    pub(crate) full_name: String,
    pub(crate) tags: Value,
    pub(crate) group: Value,
    pub(crate) subscription: Value,
}

impl<'a> ResourceContext<'a> {
    /// Prepares `resource`. `group` is its registered resource group (`None`: unregistered,
    /// read as a group with the record's group name, no tags and no location);
    /// `subscription` defaults to the record's subscription id.
    pub fn new(
        resource: &'a Resource,
        group: Option<&ResourceGroupInfo>,
        subscription: Option<&SubscriptionInfo>,
    ) -> Self {
        let subscription_id = subscription
            .map(|s| s.subscription_id.clone())
            .or_else(|| resource.subscription_id.clone())
            .or_else(|| id_segment(&resource.id, "subscriptions"))
            .unwrap_or_default();
        let group_name = group
            .map(|g| g.name.clone())
            .or_else(|| resource.resource_group.clone())
            .or_else(|| id_segment(&resource.id, "resourceGroups"))
            .unwrap_or_default();
        let mut group_value = json!({
            "id": format!("/subscriptions/{subscription_id}/resourceGroups/{group_name}"),
            "name": group_name,
            "type": RESOURCE_GROUP_TYPE_ARM,
            "tags": group.map(|g| tags_value(&g.tags)).unwrap_or_else(|| json!({})),
        });
        if let (Some(location), Some(obj)) =
            (group.and_then(|g| g.location.as_ref()), group_value.as_object_mut())
        {
            obj.insert("location".into(), Value::String(location.clone()));
        }
        let mut subscription_value = json!({
            "id": format!("/subscriptions/{subscription_id}"),
            "subscriptionId": subscription_id,
        });
        if let (Some(name), Some(obj)) =
            (subscription.and_then(|s| s.display_name.as_ref()), subscription_value.as_object_mut())
        {
            obj.insert("displayName".into(), Value::String(name.clone()));
        }
        Self {
            resource,
            resource_type: policy_type(&resource.resource_type),
            location: normalise_location(&resource.location),
            full_name: full_name(resource),
            tags: tags_value(&resource.tags),
            group: group_value,
            subscription: subscription_value,
        }
    }

    /// A top-level document property: `properties`, an extra ARM field, or (for ARM fields
    /// an inventory record folds into `properties`) the same name under `properties`.
    pub(crate) fn top_level(&self, key: &str) -> Option<&'a Value> {
        let resource: &'a Resource = self.resource;
        if key.eq_ignore_ascii_case("properties") {
            return Some(&resource.properties);
        }
        get_ci(&resource.extra, key)
            .or_else(|| resource.properties.as_object().and_then(|props| get_ci(props, key)))
    }

    pub(crate) fn is_resource_group(&self) -> bool {
        self.resource_type.eq_ignore_ascii_case(RESOURCE_GROUP_TYPE)
    }

    pub(crate) fn is_subscription(&self) -> bool {
        self.resource_type.eq_ignore_ascii_case(SUBSCRIPTION_TYPE)
    }
}

/// Resource groups are registered with ARM's type; rules see Azure Policy's spelling.
fn policy_type(resource_type: &str) -> String {
    if resource_type.eq_ignore_ascii_case(RESOURCE_GROUP_TYPE_ARM) {
        RESOURCE_GROUP_TYPE.to_owned()
    } else {
        resource_type.to_owned()
    }
}

fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::Object(tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// The segment after `/{key}/` in a resource id (case-insensitive key).
fn id_segment(id: &str, key: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case(key) {
            return parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
        }
    }
    None
}

/// `myServer/myDatabase` for a child resource: the names after the last provider segment.
fn full_name(resource: &Resource) -> String {
    let id = resource.id.as_str();
    let lower = id.to_ascii_lowercase();
    let Some(at) = lower.rfind("/providers/") else {
        return resource.name.clone();
    };
    let tail = id.get(at + "/providers/".len()..).unwrap_or_default();
    // namespace / type / name [/ type / name]…: names are at the even positions after 1.
    let names: Vec<&str> = tail.split('/').skip(2).step_by(2).collect();
    if names.is_empty() || names.iter().any(|n| n.is_empty()) {
        resource.name.clone()
    } else {
        names.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str, resource_type: &str) -> Resource {
        serde_json::from_value(json!({"id": id, "name": name, "type": resource_type}))
            .unwrap_or_else(|e| panic!("test record: {e}"))
    }

    #[test]
    fn resource_groups_are_seen_with_azure_policy_spelling() {
        let rg = record("/subscriptions/s1/resourceGroups/rg1", "rg1", RESOURCE_GROUP_TYPE_ARM);
        let ctx = ResourceContext::new(&rg, None, None);
        assert_eq!(ctx.resource_type, RESOURCE_GROUP_TYPE);
        assert!(ctx.is_resource_group());
    }

    #[test]
    fn an_unregistered_group_reads_as_its_name_without_tags_or_location() {
        let vm = record(
            "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
            "vm1",
            "Microsoft.Compute/virtualMachines",
        );
        let ctx = ResourceContext::new(&vm, None, None);
        assert_eq!(ctx.group["name"], "rg1");
        assert_eq!(ctx.group["tags"], json!({}));
        assert!(ctx.group.get("location").is_none());
        assert_eq!(ctx.subscription["subscriptionId"], "s1");
    }

    #[test]
    fn full_name_joins_parent_and_child_names() {
        let db = record(
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.Sql/servers/srv/databases/db",
            "db",
            "Microsoft.Sql/servers/databases",
        );
        assert_eq!(ResourceContext::new(&db, None, None).full_name, "srv/db");
    }
}
