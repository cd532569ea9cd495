//! Building one resource group's members: the shared machinery (ids, inherited tags and
//! location, defects) and the platform services (storage, key vaults, SQL, App Service).
//! Compute and network members are in `network`.
//!
//! Every member starts compliant with every catalogue policy; with the estate's defect
//! rate it then carries one defect: either one its type is known for (a storage account
//! that allows public blob access) or a general one (a missing tag, a location other than
//! its group's).

use std::collections::BTreeMap;

use rand::{Rng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Map, Value, json};

use super::catalog::{ALLOWED_REGIONS, ALLOWED_STORAGE_SKUS, GEO_STORAGE_SKUS, OTHER_REGIONS};
use super::record::InventoryRecord;

/// The resource group being filled, as its members see it.
pub(crate) struct Group {
    pub subscription: String,
    pub name: String,
    pub location: &'static str,
    pub region_short: &'static str,
    pub env: &'static str,
    pub app: &'static str,
    /// What members are tagged with when nothing is missing (the group's own tags may lack
    /// some: a group defect does not spread to its members).
    pub member_tags: BTreeMap<String, String>,
    /// The group's position in the estate: keeps private address ranges distinct.
    pub index: usize,
}

impl Group {
    pub fn id(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{}", self.subscription, self.name)
    }

    /// `stg` for staging: storage and vault names have little room.
    pub fn env_short(&self) -> &'static str {
        if self.env == "staging" { "stg" } else { self.env }
    }

    /// The ARM id of a member: `{group}/providers/{type}/{name}`.
    pub fn member_id(&self, resource_type: &str, name: &str) -> String {
        format!("{}/providers/{resource_type}/{name}", self.id())
    }
}

/// Estate-wide state the members need: global name sequences (storage, vault, SQL and web
/// names are globally unique in Azure) and the directory tenant.
pub(crate) struct Shared {
    pub tenant_id: String,
    pub storage: u32,
    pub vaults: u32,
    pub sql: u32,
    pub sites: u32,
}

/// What is wrong with a record, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defect {
    None,
    /// A missing tag or a location other than the group's.
    General,
    /// The n-th defect of the record's type.
    Specific(usize),
}

/// Collects one group's member records, in an order where a resource comes after those it
/// references (a NIC after its NSG and public IP, a VM after its NIC).
pub(crate) struct Members<'a> {
    pub rng: &'a mut StdRng,
    pub group: &'a Group,
    pub shared: &'a mut Shared,
    pub defect_rate: f64,
    pub out: Vec<InventoryRecord>,
}

impl Members<'_> {
    /// Draws a record's defect; `weights` are those of its type's defects, heavier for the
    /// defects the default policies detect (so the default demo shows about the configured
    /// share of non-compliance).
    pub fn defect(&mut self, weights: &[u32]) -> Defect {
        if !self.rng.random_bool(self.defect_rate) {
            return Defect::None;
        }
        if weights.is_empty() || self.rng.random_bool(0.3) {
            return Defect::General;
        }
        let indices: Vec<usize> = (0..weights.len()).collect();
        let chosen = indices.choose_weighted(self.rng, |i| weights[*i]).copied().unwrap_or(0);
        Defect::Specific(chosen)
    }

    /// Adds a tagged, located member, applying a general defect.
    pub fn push(
        &mut self,
        resource_type: &str,
        name: &str,
        kind: Option<&str>,
        properties: Value,
        defect: Defect,
    ) {
        let mut tags = self.group.member_tags.clone();
        let mut location = self.group.location;
        if defect == Defect::General {
            let roll = self.rng.random_range(0..100);
            let dropped_tag = match roll {
                0..35 => Some("costCenter"),
                35..55 => Some("env"),
                55..70 => Some("owner"),
                _ => None,
            };
            if let Some(tag) = dropped_tag {
                tags.remove(tag);
            } else {
                // Deployed elsewhere than its group: another allowed region, or outside the list.
                let regions = if roll < 85 { ALLOWED_REGIONS } else { OTHER_REGIONS };
                let others: Vec<&'static str> =
                    regions.iter().map(|r| r.name).filter(|r| *r != location).collect();
                location = others.choose(self.rng).copied().unwrap_or(location);
            }
        }
        self.out.push(InventoryRecord {
            id: self.group.member_id(resource_type, name),
            name: name.to_owned(),
            resource_type: resource_type.to_owned(),
            location: location.to_owned(),
            kind: kind.map(str::to_owned),
            tags: Some(tags),
            properties: Some(object(properties)),
            subscription_id: None,
            resource_group: None,
        });
    }

    pub fn storage_account(&mut self) {
        self.shared.storage += 1;
        let g = self.group;
        // Azure allows 24 lower-case letters and digits: 2 + 8 + 4 + 4 + up to 6 digits.
        let app: String = g.app.chars().take(8).collect();
        let name = format!("st{app}{}{}{:02}", g.env_short(), g.region_short, self.shared.storage);
        let kind = if self.rng.random_bool(0.85) { "StorageV2" } else { "BlobStorage" };
        // https, TLS, public blob access, public network, LRS, Premium, shared key.
        let defect = self.defect(&[3, 3, 3, 2, 1, 1, 1]);
        let sku = GEO_STORAGE_SKUS.choose(self.rng).copied().unwrap_or("Standard_GRS");
        let mut p = json!({
            "sku": {"name": sku, "tier": "Standard"},
            "accessTier": "Hot",
            "supportsHttpsTrafficOnly": true,
            "minimumTlsVersion": "TLS1_2",
            "allowBlobPublicAccess": false,
            "allowSharedKeyAccess": false,
            "publicNetworkAccess": "Disabled",
            "networkAcls": network_acls(),
            "encryption": {
                "keySource": "Microsoft.Storage",
                "services": {"blob": {"enabled": true}, "file": {"enabled": true}},
            },
            "primaryEndpoints": {"blob": format!("https://{name}.blob.core.windows.net/")},
            "provisioningState": "Succeeded",
        });
        match defect {
            Defect::Specific(0) => p["supportsHttpsTrafficOnly"] = json!(false),
            Defect::Specific(1) => {
                p["minimumTlsVersion"] = json!(if self.rng.random_bool(0.5) { "TLS1_0" } else { "TLS1_1" })
            }
            Defect::Specific(2) => p["allowBlobPublicAccess"] = json!(true),
            Defect::Specific(3) => {
                p["publicNetworkAccess"] = json!("Enabled");
                p["networkAcls"]["defaultAction"] = json!("Allow");
            }
            // Locally redundant: still an allowed SKU, but not geo-redundant.
            Defect::Specific(4) => p["sku"] = json!({"name": ALLOWED_STORAGE_SKUS[0], "tier": "Standard"}),
            Defect::Specific(5) => p["sku"] = json!({"name": "Premium_LRS", "tier": "Premium"}),
            Defect::Specific(_) => p["allowSharedKeyAccess"] = json!(true),
            Defect::None | Defect::General => {}
        }
        self.push("Microsoft.Storage/storageAccounts", &name, Some(kind), p, defect);
    }

    pub fn key_vault(&mut self) {
        self.shared.vaults += 1;
        let g = self.group;
        // Vault names are at most 24 characters too.
        let name = format!("kv-{}-{}-{:02}", g.app, g.env_short(), self.shared.vaults);
        // Soft delete off, no purge protection, open firewall.
        let defect = self.defect(&[3, 1, 1]);
        let mut p = json!({
            "tenantId": self.shared.tenant_id,
            "sku": {"family": "A", "name": if g.env == "prod" { "premium" } else { "standard" }},
            "enableSoftDelete": true,
            "softDeleteRetentionInDays": 90,
            "enablePurgeProtection": true,
            "enableRbacAuthorization": true,
            "publicNetworkAccess": "Disabled",
            "networkAcls": network_acls(),
            "vaultUri": format!("https://{name}.vault.azure.net/"),
            "provisioningState": "Succeeded",
        });
        match defect {
            Defect::Specific(0) => p["enableSoftDelete"] = json!(false),
            Defect::Specific(1) => {
                if let Some(map) = p.as_object_mut() {
                    map.remove("enablePurgeProtection");
                }
            }
            Defect::Specific(_) => {
                p["publicNetworkAccess"] = json!("Enabled");
                p["networkAcls"]["defaultAction"] = json!("Allow");
            }
            Defect::None | Defect::General => {}
        }
        self.push("Microsoft.KeyVault/vaults", &name, None, p, defect);
    }

    pub fn sql_server(&mut self) {
        self.shared.sql += 1;
        let g = self.group;
        let name = format!("sql-{}-{}-{}-{:02}", g.app, g.env, g.region_short, self.shared.sql);
        // Old TLS, public network access.
        let defect = self.defect(&[2, 1]);
        let mut p = json!({
            "administratorLogin": "sqladmin",
            "version": "12.0",
            "state": "Ready",
            "fullyQualifiedDomainName": format!("{name}.database.windows.net"),
            "minimalTlsVersion": "1.2",
            "publicNetworkAccess": "Disabled",
            "restrictOutboundNetworkAccess": "Disabled",
        });
        match defect {
            Defect::Specific(0) => match self.rng.random_range(0..3) {
                0 => p["minimalTlsVersion"] = json!("1.0"),
                1 => p["minimalTlsVersion"] = json!("1.1"),
                // Servers created before the setting existed report none.
                _ => {
                    if let Some(map) = p.as_object_mut() {
                        map.remove("minimalTlsVersion");
                    }
                }
            },
            Defect::Specific(_) => p["publicNetworkAccess"] = json!("Enabled"),
            Defect::None | Defect::General => {}
        }
        self.push("Microsoft.Sql/servers", &name, Some("v12.0"), p, defect);
    }

    /// An App Service web app or function app.
    pub fn site(&mut self, function_app: bool) {
        self.shared.sites += 1;
        let g = self.group;
        let linux = self.rng.random_bool(0.6);
        let (prefix, kind) = match (function_app, linux) {
            (true, true) => ("func", "functionapp,linux"),
            (true, false) => ("func", "functionapp"),
            (false, true) => ("app", "app,linux"),
            (false, false) => ("app", "app"),
        };
        let name = format!("{prefix}-{}-{}-{:02}", g.app, g.env, self.shared.sites);
        let plan = g.member_id("Microsoft.Web/serverfarms", &format!("asp-{}-{}", g.app, g.env));
        let defect = self.defect(&[1]);
        let mut p = json!({
            "state": "Running",
            "enabled": true,
            "httpsOnly": true,
            "defaultHostName": format!("{name}.azurewebsites.net"),
            "serverFarmId": plan,
            "clientCertEnabled": false,
            "siteConfig": {
                "minTlsVersion": "1.2",
                "ftpsState": "Disabled",
                "http20Enabled": true,
                "alwaysOn": g.env == "prod",
                "linuxFxVersion": if linux { "DOTNETCORE|8.0" } else { "" },
            },
        });
        if defect == Defect::Specific(0) {
            // Apps that still accept HTTP are usually old ones with old TLS settings too.
            p["httpsOnly"] = json!(false);
            p["siteConfig"]["minTlsVersion"] = json!(if self.rng.random_bool(0.5) { "1.0" } else { "1.2" });
        }
        self.push("Microsoft.Web/sites", &name, Some(kind), p, defect);
    }
}

/// A firewall that denies by default and lets Azure's own services through.
fn network_acls() -> Value {
    json!({"bypass": "AzureServices", "defaultAction": "Deny", "ipRules": [], "virtualNetworkRules": []})
}

/// The object inside a `json!({…})` literal.
pub(crate) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
