//! Property aliases: `Microsoft.Storage/storageAccounts/minimumTlsVersion` names
//! `properties.minimumTlsVersion` of a storage account.
//!
//! The default rule takes the text after the last `/` as a path under `properties`, except
//! that a path starting with one of ARM's top-level names (`sku`, `identity`, `plan`, `zones`,
//! `managedBy`, `extendedLocation`) is read from the top level (see [`crate::resource`] for
//! where inventory records keep those). The table below lists the aliases whose real path
//! differs; an entry ending in `[*]` is a prefix, so `…/ipconfigurations[*].publicIpAddress.id`
//! follows the `…/ipconfigurations[*]` entry. Lookups are case-insensitive, as in Azure.

/// Aliases whose path is not the default one, as Azure's alias catalogue defines them.
/// Exact names come before the prefixes they would otherwise fall under.
const TABLE: &[(&str, &str)] = &[
    // Compute: the VM size is the "SKU" of a virtual machine.
    ("microsoft.compute/virtualmachines/sku.name", "properties.hardwareProfile.vmSize"),
    ("microsoft.compute/virtualmachines/osdisk.uri", "properties.storageProfile.osDisk.vhd.uri"),
    (
        "microsoft.compute/virtualmachines/imagepublisher",
        "properties.storageProfile.imageReference.publisher",
    ),
    ("microsoft.compute/virtualmachines/imageoffer", "properties.storageProfile.imageReference.offer"),
    ("microsoft.compute/virtualmachines/imagesku", "properties.storageProfile.imageReference.sku"),
    ("microsoft.compute/virtualmachines/imageversion", "properties.storageProfile.imageReference.version"),
    ("microsoft.compute/imagepublisher", "properties.storageProfile.imageReference.publisher"),
    ("microsoft.compute/imageoffer", "properties.storageProfile.imageReference.offer"),
    ("microsoft.compute/imagesku", "properties.storageProfile.imageReference.sku"),
    (
        "microsoft.compute/virtualmachinescalesets/osdisk.vhdcontainers",
        "properties.virtualMachineProfile.storageProfile.osDisk.vhdContainers",
    ),
    (
        "microsoft.compute/virtualmachinescalesets/osdisk.imageurl",
        "properties.virtualMachineProfile.storageProfile.osDisk.image.uri",
    ),
    // Network interfaces: each IP configuration keeps its settings under `properties`.
    ("microsoft.network/networkinterfaces/ipconfigurations", "properties.ipConfigurations"),
    ("microsoft.network/networkinterfaces/ipconfigurations[*].name", "properties.ipConfigurations[*].name"),
    ("microsoft.network/networkinterfaces/ipconfigurations[*].id", "properties.ipConfigurations[*].id"),
    ("microsoft.network/networkinterfaces/ipconfigurations[*]", "properties.ipConfigurations[*].properties"),
    // Network security groups: the same shape for rules nested in the group.
    ("microsoft.network/networksecuritygroups/securityrules", "properties.securityRules"),
    ("microsoft.network/networksecuritygroups/securityrules[*].name", "properties.securityRules[*].name"),
    ("microsoft.network/networksecuritygroups/securityrules[*].id", "properties.securityRules[*].id"),
    ("microsoft.network/networksecuritygroups/securityrules[*]", "properties.securityRules[*].properties"),
    (
        "microsoft.network/networksecuritygroups/defaultsecurityrules[*].name",
        "properties.defaultSecurityRules[*].name",
    ),
    (
        "microsoft.network/networksecuritygroups/defaultsecurityrules[*]",
        "properties.defaultSecurityRules[*].properties",
    ),
    // Virtual networks: subnets likewise.
    ("microsoft.network/virtualnetworks/subnets[*].name", "properties.subnets[*].name"),
    ("microsoft.network/virtualnetworks/subnets[*].id", "properties.subnets[*].id"),
    ("microsoft.network/virtualnetworks/subnets[*]", "properties.subnets[*].properties"),
];

/// ARM top-level names a default alias path may start with.
const TOP_LEVEL: &[&str] = &["sku", "identity", "plan", "zones", "managedBy", "extendedLocation"];

/// The document path an alias names, as text (`properties.a.b[*].c`, `sku.name`).
pub(crate) fn resolve(alias: &str) -> String {
    let lower = alias.to_ascii_lowercase();
    for (name, path) in TABLE {
        if lower == *name {
            return (*path).to_owned();
        }
        if name.ends_with("[*]") {
            // A `[*]` entry covers its members: `name[*].x` and nested `name[*].x[*]`.
            let covered = lower.strip_prefix(*name).filter(|rest| rest.starts_with('.'));
            if let Some(rest) = covered {
                let start = alias.len() - rest.len();
                return format!("{path}{}", alias.get(start..).unwrap_or_default());
            }
        }
    }
    let property = alias.rsplit('/').next().unwrap_or(alias);
    let first = property.split(['.', '[']).next().unwrap_or(property).to_ascii_lowercase();
    if TOP_LEVEL.iter().any(|t| t.eq_ignore_ascii_case(&first)) {
        property.to_owned()
    } else {
        format!("properties.{property}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_alias_maps_under_properties() {
        assert_eq!(
            resolve("Microsoft.Storage/storageAccounts/minimumTlsVersion"),
            "properties.minimumTlsVersion"
        );
        assert_eq!(
            resolve("Microsoft.KeyVault/vaults/networkAcls.defaultAction"),
            "properties.networkAcls.defaultAction"
        );
    }

    #[test]
    fn sku_aliases_read_the_top_level_sku() {
        assert_eq!(resolve("Microsoft.Storage/storageAccounts/sku.name"), "sku.name");
    }

    #[test]
    fn the_vm_size_alias_follows_the_table() {
        assert_eq!(
            resolve("Microsoft.Compute/virtualMachines/sku.name"),
            "properties.hardwareProfile.vmSize"
        );
    }

    #[test]
    fn array_member_aliases_follow_their_prefix_entry() {
        assert_eq!(
            resolve("Microsoft.Network/networkInterfaces/ipconfigurations[*].publicIpAddress.id"),
            "properties.ipConfigurations[*].properties.publicIpAddress.id"
        );
        assert_eq!(
            resolve("Microsoft.Network/networkSecurityGroups/securityRules[*].access"),
            "properties.securityRules[*].properties.access"
        );
        assert_eq!(
            resolve("Microsoft.Network/networkSecurityGroups/securityRules[*]"),
            "properties.securityRules[*].properties"
        );
        assert_eq!(
            resolve("Microsoft.Network/networkSecurityGroups/securityRules[*].name"),
            "properties.securityRules[*].name"
        );
    }

    #[test]
    fn child_resource_aliases_use_the_default_rule() {
        assert_eq!(
            resolve("Microsoft.Network/networkSecurityGroups/securityRules/destinationPortRanges[*]"),
            "properties.destinationPortRanges[*]"
        );
    }
}
