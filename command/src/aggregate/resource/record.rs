//! The inventory record a scanner submits (`POST /v1/resources`, DESIGN §8) and its
//! normalisation into the [`ResourceSnapshot`] the resource aggregate decides on.
//!
//! Normalisation fills in what an Azure id already says (subscription, resource group) and
//! refuses records that contradict themselves; it keeps every value in the scanner's own
//! spelling. Comparisons that Azure makes case- or space-insensitively happen later, in
//! `decide`, so that the recorded values stay what the cloud reported.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use cortex_events::catalog::{ResourceRegistered, Tags};
use uuid::Uuid;

use crate::aggregate::{FieldFault, is_blank, same_ignoring_case};

/// ARM's type for resource groups, and Azure Policy's spelling of the same type.
const GROUP_TYPES: [&str; 2] =
    ["Microsoft.Resources/resourceGroups", "Microsoft.Resources/subscriptions/resourceGroups"];
const SUBSCRIPTION_TYPE: &str = "Microsoft.Resources/subscriptions";

/// The body of `POST /v1/resources` (one item of `POST /v1/resources:batch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryRecord {
    /// The provider's own resource id.
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    /// May be empty: child resources (an NSG rule) have no location.
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
    /// Required when `id` does not name a subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// Required when `id` does not name a resource group (except for subscriptions and
    /// resource groups themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
}

/// A resource as the aggregate knows it: an inventory record with its subscription and
/// group resolved, and absent tags and properties read as empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceSnapshot {
    /// The provider's id, as the scanner reported it.
    pub cloud_id: String,
    pub name: String,
    pub resource_type: String,
    pub location: String,
    pub kind: Option<String>,
    pub tags: Tags,
    pub properties: Map<String, Value>,
    pub subscription_id: String,
    /// Empty for a subscription, which is in no group.
    pub resource_group: String,
}

impl InventoryRecord {
    /// Resolves subscription and group, or names every bad field.
    ///
    /// * The subscription and group an Azure id names (`/subscriptions/{sub}/resourceGroups/{rg}/…`,
    ///   segment names in any case) win; a `subscription_id` or `resource_group` that names
    ///   another one (case-insensitively) is a fault. When the id names none, the field is
    ///   required. Blank optional fields count as absent.
    /// * A resource group (`Microsoft.Resources/resourceGroups` or Azure Policy's
    ///   `Microsoft.Resources/subscriptions/resourceGroups`) is its own group: without a
    ///   group elsewhere its name is used, and a group elsewhere must be its name.
    /// * A subscription (type `Microsoft.Resources/subscriptions`, or id `/subscriptions/{sub}`)
    ///   is in no group: its `resource_group` is `""`, and a non-blank one is a fault.
    /// * A blank `kind` is no kind.
    pub fn normalise(self) -> Result<ResourceSnapshot, Vec<FieldFault>> {
        let mut faults = Vec::new();
        for (pointer, value) in [("/id", &self.id), ("/name", &self.name), ("/type", &self.resource_type)] {
            if is_blank(value) {
                faults.push(FieldFault::new(pointer, "must not be empty"));
            }
        }
        let named = NamedScope::parse(&self.id);
        let subscription = self.subscription(&named, &mut faults);
        let group = self.group(&named, &mut faults);

        match (subscription, group) {
            (Some(subscription_id), Some(resource_group)) if faults.is_empty() => Ok(ResourceSnapshot {
                cloud_id: self.id,
                name: self.name,
                resource_type: self.resource_type,
                location: self.location,
                kind: self.kind.filter(|k| !is_blank(k)),
                tags: self.tags.unwrap_or_default(),
                properties: self.properties.unwrap_or_default(),
                subscription_id,
                resource_group,
            }),
            _ => Err(faults),
        }
    }

    fn subscription(&self, named: &NamedScope<'_>, faults: &mut Vec<FieldFault>) -> Option<String> {
        let given = self.subscription_id.as_deref().filter(|s| !is_blank(s));
        match reconcile(named.subscription, given, "/subscription_id", "subscription", faults) {
            Found::One(subscription) => Some(subscription),
            Found::None => {
                faults
                    .push(FieldFault::new("/subscription_id", "required when the id names no subscription"));
                None
            }
            Found::Contradiction => None,
        }
    }

    fn group(&self, named: &NamedScope<'_>, faults: &mut Vec<FieldFault>) -> Option<String> {
        let given = self.resource_group.as_deref().filter(|g| !is_blank(g));
        let is_group = GROUP_TYPES.iter().any(|t| t.eq_ignore_ascii_case(&self.resource_type));
        let is_subscription = !is_group
            && (named.is_subscription || self.resource_type.eq_ignore_ascii_case(SUBSCRIPTION_TYPE));
        if is_subscription {
            if given.is_some() {
                faults.push(FieldFault::new("/resource_group", "a subscription is in no resource group"));
            }
            return Some(String::new());
        }
        match reconcile(named.group, given, "/resource_group", "resource group", faults) {
            Found::One(group)
                if is_group && !is_blank(&self.name) && !same_ignoring_case(&group, &self.name) =>
            {
                let message = format!("a resource group's name must be the group it names ('{group}')");
                faults.push(FieldFault::new("/name", message));
                None
            }
            Found::One(group) => Some(group),
            Found::None if is_group => Some(self.name.clone()),
            Found::None => {
                faults
                    .push(FieldFault::new("/resource_group", "required when the id names no resource group"));
                None
            }
            Found::Contradiction => None,
        }
    }
}

/// A value the id names or a field gives.
enum Found {
    One(String),
    None,
    /// Both, and they differ (a fault is recorded).
    Contradiction,
}

/// The id's value wins over the field's; both present and different is a fault.
fn reconcile(
    named: Option<&str>,
    given: Option<&str>,
    pointer: &str,
    what: &str,
    faults: &mut Vec<FieldFault>,
) -> Found {
    match (named, given) {
        (Some(named), Some(given)) if !same_ignoring_case(named, given) => {
            faults.push(FieldFault::new(pointer, format!("the id names {what} '{named}', not '{given}'")));
            Found::Contradiction
        }
        (Some(value), _) | (None, Some(value)) => Found::One(value.to_owned()),
        (None, None) => Found::None,
    }
}

/// What an Azure resource id says about where the resource lives.
#[derive(Debug, Default, PartialEq)]
struct NamedScope<'a> {
    subscription: Option<&'a str>,
    group: Option<&'a str>,
    /// The id is exactly `/subscriptions/{sub}`.
    is_subscription: bool,
}

impl<'a> NamedScope<'a> {
    fn parse(id: &'a str) -> Self {
        // A trailing slash names nothing more.
        let mut segments = id.trim_end_matches('/').split('/');
        let (Some(""), Some(key), Some(subscription)) = (segments.next(), segments.next(), segments.next())
        else {
            return Self::default();
        };
        if !key.eq_ignore_ascii_case("subscriptions") || subscription.is_empty() {
            return Self::default();
        }
        let (key, group) = (segments.next(), segments.next());
        let group = match (key, group) {
            (Some(key), Some(group)) if key.eq_ignore_ascii_case("resourceGroups") && !group.is_empty() => {
                Some(group)
            }
            _ => None,
        };
        Self { subscription: Some(subscription), group, is_subscription: key.is_none() }
    }
}

impl ResourceSnapshot {
    /// Faults of a snapshot built without [`InventoryRecord::normalise`], by the record's
    /// pointers: the fields every registered resource must have.
    pub fn faults(&self) -> Vec<FieldFault> {
        [
            ("/id", &self.cloud_id),
            ("/name", &self.name),
            ("/type", &self.resource_type),
            ("/subscription_id", &self.subscription_id),
        ]
        .into_iter()
        .filter(|(_, value)| is_blank(value))
        .map(|(pointer, _)| FieldFault::new(pointer, "must not be empty"))
        .collect()
    }

    /// The event of this resource being registered as `resource_id`.
    pub fn registered(&self, resource_id: Uuid) -> ResourceRegistered {
        ResourceRegistered {
            resource_id,
            cloud_id: self.cloud_id.clone(),
            name: self.name.clone(),
            resource_type: self.resource_type.clone(),
            location: self.location.clone(),
            kind: self.kind.clone(),
            tags: self.tags.clone(),
            properties: self.properties.clone(),
            subscription_id: self.subscription_id.clone(),
            resource_group: self.resource_group.clone(),
        }
    }

    /// The snapshot a `ResourceRegistered` describes.
    pub fn from_registered(event: &ResourceRegistered) -> Self {
        Self {
            cloud_id: event.cloud_id.clone(),
            name: event.name.clone(),
            resource_type: event.resource_type.clone(),
            location: event.location.clone(),
            kind: event.kind.clone(),
            tags: event.tags.clone(),
            properties: event.properties.clone(),
            subscription_id: event.subscription_id.clone(),
            resource_group: event.resource_group.clone(),
        }
    }

    /// The record the rule engine evaluates (a subscription's empty group reads as none).
    pub fn to_rule_resource(&self) -> cortex_rules::Resource {
        cortex_rules::Resource {
            id: self.cloud_id.clone(),
            name: self.name.clone(),
            resource_type: self.resource_type.clone(),
            location: self.location.clone(),
            kind: self.kind.clone(),
            tags: self.tags.clone(),
            properties: Value::Object(self.properties.clone()),
            subscription_id: Some(self.subscription_id.clone()),
            resource_group: Some(self.resource_group.clone()).filter(|g| !g.is_empty()),
            extra: Map::new(),
        }
    }
}

/// `East US 2` and `eastus2` are the same Azure location: lower case, no whitespace (as the
/// rule engine compares them).
pub fn normalise_location(location: &str) -> String {
    location.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests;
