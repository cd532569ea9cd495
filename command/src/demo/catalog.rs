//! The vocabulary of the demo estate: regions, applications, people and sizes, with the
//! weights that make the mix look like a mid-sized European company's Azure tenant.
//!
//! The policy parameters in `policies` refer to these lists (allowed locations, allowed VM
//! sizes, allowed storage SKUs), so a resource drawn from the "allowed" lists is compliant
//! and one drawn from the others is a deliberate defect.

/// An Azure region: its name, the short code used in resource names, and its weight.
pub(crate) struct Region {
    pub name: &'static str,
    pub short: &'static str,
    pub weight: u32,
    pub europe: bool,
}

/// Regions the "Allowed locations" assignment permits, weighted like a Europe-first estate.
pub(crate) const ALLOWED_REGIONS: &[Region] = &[
    Region { name: "westeurope", short: "weu", weight: 30, europe: true },
    Region { name: "northeurope", short: "neu", weight: 16, europe: true },
    Region { name: "eastus", short: "eus", weight: 14, europe: false },
    Region { name: "uksouth", short: "uks", weight: 10, europe: true },
    Region { name: "eastus2", short: "eus2", weight: 8, europe: false },
    Region { name: "swedencentral", short: "sdc", weight: 6, europe: true },
    Region { name: "germanywestcentral", short: "gwc", weight: 4, europe: true },
];

/// Regions outside the assignment: only a location defect puts anything there.
pub(crate) const OTHER_REGIONS: &[Region] = &[
    Region { name: "westus2", short: "wus2", weight: 5, europe: false },
    Region { name: "southeastasia", short: "sea", weight: 3, europe: false },
    Region { name: "centralus", short: "cus", weight: 2, europe: false },
    Region { name: "japaneast", short: "jpe", weight: 1, europe: false },
];

/// Application (workload) names; at most 9 characters so storage account names stay within
/// Azure's 24.
pub(crate) const APPS: &[&str] = &[
    "payments",
    "checkout",
    "catalog",
    "identity",
    "search",
    "billing",
    "reporting",
    "crm",
    "inventory",
    "shipping",
    "analytics",
    "portal",
    "notify",
    "ledger",
    "pricing",
    "hr",
];

pub(crate) const OWNERS: &[&str] = &[
    "alice.martin@contoso.com",
    "bruno.keller@contoso.com",
    "chloe.dubois@contoso.com",
    "daniel.okafor@contoso.com",
    "eva.lindqvist@contoso.com",
    "farid.haddad@contoso.com",
    "grace.chen@contoso.com",
    "hugo.santos@contoso.com",
    "platform-team@contoso.com",
    "secops@contoso.com",
];

/// VM sizes the "Allowed virtual machine size SKUs" assignment permits.
pub(crate) const ALLOWED_VM_SIZES: &[&str] =
    &["Standard_B2s", "Standard_B2ms", "Standard_D2s_v5", "Standard_D4s_v5", "Standard_E4s_v5"];

/// Oversized VMs: a size defect.
pub(crate) const OTHER_VM_SIZES: &[&str] =
    &["Standard_M128s", "Standard_E64s_v5", "Standard_NC24ads_A100_v4"];

/// Geo-redundant SKUs: compliant with both storage SKU policies.
pub(crate) const GEO_STORAGE_SKUS: &[&str] = &["Standard_GRS", "Standard_RAGRS", "Standard_GZRS"];

/// The "Allowed storage account SKUs" assignment: everything standard (`Premium_LRS` is not).
pub(crate) const ALLOWED_STORAGE_SKUS: &[&str] =
    &["Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_RAGRS", "Standard_GZRS"];

/// VM roles, used in VM names (`vm-web-03`).
pub(crate) const VM_ROLES: &[&str] = &["web", "api", "worker", "batch", "app", "jump"];

pub(crate) const IMAGES: &[(&str, &str, &str, &str)] = &[
    ("Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "Linux"),
    ("Canonical", "ubuntu-24_04-lts", "server", "Linux"),
    ("MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-azure-edition", "Windows"),
    ("RedHat", "RHEL", "9-lvm-gen2", "Linux"),
];

/// The environments tagged `env`, as subscriptions of each landing zone host them.
pub(crate) const PROD_ENVS: &[(&str, u32)] = &[("prod", 1)];
pub(crate) const NONPROD_ENVS: &[(&str, u32)] = &[("dev", 3), ("staging", 2)];

/// `costCenter` of an application: stable per app, as finance assigns them.
pub(crate) fn cost_center(app_index: usize) -> String {
    format!("CC-{}", 1040 + app_index * 7)
}
