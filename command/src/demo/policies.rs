//! Demo policies: bodies for `POST /v1/policies` built from real Azure built-in definitions.
//!
//! The definitions are the rule engine's fixtures (`command/rules/tests/fixtures/policies`,
//! kept byte for byte as Microsoft publishes them), embedded at compile time; each body takes
//! its rule, parameter definitions and mode from the definition's `properties`, and an
//! assignment's `parameter_values` that match the generated estate (`catalog`). The order
//! puts the most telling policies first: the default twelve cover every generated type
//! (storage, VMs, NICs, NSG rules, key vaults, App Service, SQL, groups), tags and
//! locations. Past the built-ins come variants (other tag names, `deny` effects, a
//! Europe-only location list), then numbered copies, so names are always distinct.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::catalog::{ALLOWED_REGIONS, ALLOWED_STORAGE_SKUS, ALLOWED_VM_SIZES};
use crate::rules::PolicyDefinitionInput;

/// How serious a policy's violations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// The body of `POST /v1/policies` (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyBody {
    pub name: String,
    pub description: String,
    pub category: String,
    pub severity: Severity,
    /// `all` or `indexed`, from the definition.
    pub mode: String,
    pub rule: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_values: Option<Map<String, Value>>,
}

impl PolicyBody {
    /// What the rule engine compiles from this body.
    pub fn definition_input(&self) -> PolicyDefinitionInput {
        PolicyDefinitionInput {
            rule: self.rule.clone(),
            parameters: self.parameters.clone().unwrap_or(Value::Null),
            parameter_values: self.parameter_values.clone().unwrap_or_default(),
            mode: Some(self.mode.clone()),
        }
    }

    pub fn to_json(&self) -> Value {
        // Strings, enums and JSON values always serialise.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The assignment's parameter values.
#[derive(Debug, Clone, Copy)]
enum Params {
    None,
    AllowedLocations,
    EuropeLocations,
    AllowedTypes,
    AllowedStorageSkus,
    AllowedVmSizes,
    Tag(&'static str),
    TagValue(&'static str, &'static str),
    Effect(&'static str),
}

struct Entry {
    definition: &'static str,
    severity: Severity,
    params: Params,
}

macro_rules! builtin {
    ($file:literal, $severity:ident, $params:expr) => {
        Entry {
            definition: include_str!(concat!("../../rules/tests/fixtures/policies/", $file)),
            severity: Severity::$severity,
            params: $params,
        }
    };
}

/// Every distinct demo policy, in the order they are handed out.
const CATALOGUE: &[Entry] = &[
    builtin!("AllowedLocations_Deny.json", Medium, Params::AllowedLocations),
    builtin!("RequireTag_Deny.json", Low, Params::Tag("costCenter")),
    builtin!("ResourceGroupRequireTag_Deny.json", Low, Params::Tag("owner")),
    builtin!("Storage_AuditForHTTPSEnabled_Audit.json", High, Params::None),
    builtin!("StorageAccountMinimumTLSVersion_Audit.json", Medium, Params::None),
    builtin!("ASC_Storage_DisallowPublicBlobAccess_Audit.json", High, Params::None),
    builtin!("KeyVault_SoftDeleteMustBeEnabled_Audit.json", Medium, Params::None),
    builtin!("NetworkPublicIPNic_Deny.json", High, Params::None),
    builtin!("NetworkSecurityGroup_SSHAccess_Audit.json", Critical, Params::None),
    builtin!("AppServiceWebapp_AuditHTTP_Audit.json", Medium, Params::None),
    builtin!("SqlServer_MiniumTLSVersion_Audit.json", Medium, Params::None),
    builtin!("VMSkusAllowed_Deny.json", Low, Params::AllowedVmSizes),
    builtin!("NetworkSecurityGroup_RDPAccess_Audit.json", Critical, Params::None),
    builtin!("VMRequireManagedDisk_Audit.json", Medium, Params::None),
    builtin!("KeyVault_Recoverable_Audit.json", Medium, Params::None),
    builtin!("AzureKeyVaultFirewallEnabled_Audit.json", Medium, Params::None),
    builtin!("SqlServer_PublicNetworkAccess_Audit.json", High, Params::None),
    builtin!("StoragePublicNetworkAccess_AuditDeny.json", Medium, Params::None),
    builtin!("Storage_NetworkAcls_Audit.json", Medium, Params::None),
    builtin!("NetworkIPForwardingNic_Deny.json", Medium, Params::None),
    builtin!("AppServiceFunctionApp_AuditHTTP_Audit.json", Medium, Params::None),
    builtin!("AllowedStorageSkus_Deny.json", Low, Params::AllowedStorageSkus),
    builtin!("GeoRedundant_StorageAccounts_Audit.json", Low, Params::None),
    builtin!("StorageAccountAllowSharedKeyAccess_Audit.json", Medium, Params::None),
    builtin!("InheritTag_Add_Modify.json", Low, Params::Tag("env")),
    builtin!("ResourcesInResourceGroupLocation_Audit.json", Low, Params::None),
    builtin!("ResourceGroupAllowedLocations_Deny.json", Medium, Params::AllowedLocations),
    builtin!("ApplyTag_Append.json", Low, Params::TagValue("costCenter", "CC-0000")),
    // Every generated type is allowed: under Azure's applicability all are not_applicable.
    builtin!("AllowedResourceTypes_Deny.json", Medium, Params::AllowedTypes),
    // Flags every non-production resource: the assignment a production-only scope would have.
    builtin!("RequireTagAndValue_Deny.json", Low, Params::TagValue("env", "prod")),
    // No App Service Environments are generated: shows a policy with nothing in scope.
    builtin!("AppService_HostingEnvironment_DisableTls_Audit.json", Medium, Params::None),
    // Variants: the same definitions, other assignments.
    builtin!("RequireTag_Deny.json", Low, Params::Tag("owner")),
    builtin!("RequireTag_Deny.json", Low, Params::Tag("env")),
    builtin!("RequireTag_Deny.json", Low, Params::Tag("app")),
    builtin!("ResourceGroupRequireTag_Deny.json", Low, Params::Tag("costCenter")),
    builtin!("ResourceGroupRequireTag_Deny.json", Low, Params::Tag("env")),
    builtin!("InheritTag_Add_Modify.json", Low, Params::Tag("costCenter")),
    builtin!("InheritTag_Add_Modify.json", Low, Params::Tag("owner")),
    builtin!("AllowedLocations_Deny.json", Medium, Params::EuropeLocations),
    builtin!("ASC_Storage_DisallowPublicBlobAccess_Audit.json", Critical, Params::Effect("deny")),
    builtin!("Storage_AuditForHTTPSEnabled_Audit.json", High, Params::Effect("Deny")),
    builtin!("AzureKeyVaultFirewallEnabled_Audit.json", High, Params::Effect("Deny")),
    builtin!("SqlServer_PublicNetworkAccess_Audit.json", Critical, Params::Effect("Deny")),
];

/// How many distinct policies there are before numbered copies start.
pub const DISTINCT_POLICIES: usize = CATALOGUE.len();

/// The first `count` demo policies, with distinct names (copies past the catalogue are
/// numbered: `… #2`).
pub fn policies(count: usize) -> Vec<PolicyBody> {
    (0..count).map(|i| body(&CATALOGUE[i % CATALOGUE.len()], i / CATALOGUE.len() + 1)).collect()
}

fn body(entry: &Entry, copy: usize) -> PolicyBody {
    // Embedded fixtures are checked by this module's tests; a broken one is a build defect.
    let definition: Value = serde_json::from_str(entry.definition).expect("embedded built-in policy is JSON");
    let props = &definition["properties"];
    let text = |key: &str| props[key].as_str().unwrap_or_default().to_owned();
    // Azure's deprecation marker refers to Azure's own catalogue, not to this demo.
    let display = text("displayName").trim_start_matches("[Deprecated]: ").to_owned();
    let (values, suffix) = parameter_values(entry.params);
    let mut name = if suffix.is_empty() { display } else { format!("{display} ({suffix})") };
    if copy > 1 {
        name = format!("{name} #{copy}");
    }
    let parameters = props.get("parameters").filter(|p| p.as_object().is_some_and(|m| !m.is_empty()));
    PolicyBody {
        name,
        description: text("description"),
        category: props["metadata"]["category"].as_str().unwrap_or("General").to_owned(),
        severity: entry.severity,
        mode: text("mode").to_ascii_lowercase(),
        rule: props["policyRule"].clone(),
        parameters: parameters.cloned(),
        parameter_values: values,
    }
}

/// The values and the name suffix that tells variants apart.
fn parameter_values(params: Params) -> (Option<Map<String, Value>>, String) {
    let locations = |europe_only: bool| -> Vec<&str> {
        ALLOWED_REGIONS.iter().filter(|r| r.europe || !europe_only).map(|r| r.name).collect()
    };
    let (value, suffix) = match params {
        Params::None => return (None, String::new()),
        Params::AllowedLocations => (json!({"listOfAllowedLocations": locations(false)}), String::new()),
        Params::EuropeLocations => (json!({"listOfAllowedLocations": locations(true)}), "Europe".to_owned()),
        Params::AllowedTypes => (json!({"listOfResourceTypesAllowed": GENERATED_TYPES}), String::new()),
        Params::AllowedStorageSkus => (json!({"listOfAllowedSKUs": ALLOWED_STORAGE_SKUS}), String::new()),
        Params::AllowedVmSizes => (json!({"listOfAllowedSKUs": ALLOWED_VM_SIZES}), String::new()),
        Params::Tag(tag) => (json!({"tagName": tag}), tag.to_owned()),
        Params::TagValue(tag, value) => {
            (json!({"tagName": tag, "tagValue": value}), format!("{tag}={value}"))
        }
        Params::Effect(effect) => (json!({"effect": effect}), effect.to_ascii_lowercase()),
    };
    (value.as_object().cloned(), suffix)
}

/// Every type the estate generator emits.
pub const GENERATED_TYPES: &[&str] = &[
    "Microsoft.Resources/resourceGroups",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Compute/virtualMachines",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/networkSecurityGroups/securityRules",
    "Microsoft.Network/publicIPAddresses",
    "Microsoft.KeyVault/vaults",
    "Microsoft.Web/sites",
    "Microsoft.Sql/servers",
];
