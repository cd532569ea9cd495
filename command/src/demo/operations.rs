//! A realistic stream of scanner operations over a generated estate, for the projection
//! benchmark: registrations, later versions of the same records, and deletions.
//!
//! The estate is consumed in windows of [`WINDOW`] records so memory stays bounded at any
//! size. For each window: every record is registered (in estate order, groups first), then
//! `updates_per_resource × window` updates follow, each a new version of a random record of
//! the window, then a `delete_fraction` of the window's resources (never groups) is
//! deleted. Ids never change, so every version lands on the same stream. An update always
//! changes something, so each one is an event:
//!
//! * 40% tags: the owner hands over, a missing tag is restored, a tag is dropped;
//! * 45% a property flips (a security setting, a size, a tier) when the type has any;
//! * 10% a move to another allowed location;
//! * 5% a rename: the same name in the other letter case (Azure names are case-insensitive
//!   and scanners do report them in different cases).
//!
//! Resource groups and child records only change tags and properties respectively.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Map, Value, json};

use super::catalog::{ALLOWED_REGIONS, ALLOWED_VM_SIZES, OTHER_VM_SIZES, OWNERS};
use super::estate::{Estate, EstateConfig};
use super::record::{InventoryRecord, Operation};

/// Records per window: the unit of interleaving, and the bound on memory.
pub const WINDOW: usize = 1_000;

/// A stream of operations, deterministic from the estate's seed.
pub struct Operations {
    estate: Estate,
    rng: StdRng,
    updates_per_resource: u32,
    delete_fraction: f64,
    queue: VecDeque<Operation>,
}

impl Operations {
    /// `resources` records, each updated `updates_per_resource` times on average, 2% deleted.
    pub fn new(seed: u64, resources: usize, updates_per_resource: u32) -> Self {
        Self::from_config(&EstateConfig::new(seed, resources), updates_per_resource, 0.02)
    }

    pub fn from_config(estate: &EstateConfig, updates_per_resource: u32, delete_fraction: f64) -> Self {
        Self {
            estate: Estate::new(estate),
            // A stream of its own, so the registered records are exactly `Estate::new(estate)`.
            rng: StdRng::seed_from_u64(estate.seed ^ 0x9E37_79B9_7F4A_7C15),
            updates_per_resource,
            delete_fraction: delete_fraction.clamp(0.0, 1.0),
            queue: VecDeque::new(),
        }
    }

    fn next_window(&mut self) {
        let mut window: Vec<InventoryRecord> = self.estate.by_ref().take(WINDOW).collect();
        self.queue.extend(window.iter().cloned().map(Operation::Register));
        for _ in 0..window.len() * self.updates_per_resource as usize {
            let at = self.rng.random_range(0..window.len());
            mutate(&mut self.rng, &mut window[at]);
            self.queue.push_back(Operation::Register(window[at].clone()));
        }
        for record in &window {
            if !record.is_resource_group() && self.rng.random_bool(self.delete_fraction) {
                self.queue.push_back(Operation::Delete(record.id.clone()));
            }
        }
    }
}

impl Iterator for Operations {
    type Item = Operation;

    fn next(&mut self) -> Option<Operation> {
        if self.queue.is_empty() {
            self.next_window();
        }
        self.queue.pop_front()
    }
}

/// Changes `record` in place: always a real change, never its id.
pub fn mutate(rng: &mut StdRng, record: &mut InventoryRecord) {
    let flips = property_flips(&record.resource_type);
    let roll = rng.random_range(0..100);
    if record.tags.is_none() || ((40..85).contains(&roll) && !flips.is_empty()) {
        if let Some(properties) = record.properties.as_mut().filter(|_| !flips.is_empty()) {
            flip(rng, properties, flips);
            return;
        }
    }
    if (85..95).contains(&roll) && !record.is_resource_group() && !record.location.is_empty() {
        let current = record.location.clone();
        let others: Vec<&str> = ALLOWED_REGIONS.iter().map(|r| r.name).filter(|r| *r != current).collect();
        record.location = others.choose(rng).copied().unwrap_or("westeurope").to_owned();
    } else if roll >= 95 && !record.is_resource_group() {
        let lower = record.name.to_ascii_lowercase();
        record.name = if record.name == lower { record.name.to_ascii_uppercase() } else { lower };
    } else {
        change_tags(rng, record);
    }
}

fn change_tags(rng: &mut StdRng, record: &mut InventoryRecord) {
    let tags = record.tags.get_or_insert_with(Default::default);
    let (missing, present): (Vec<&str>, Vec<&str>) =
        ["owner", "costCenter", "env"].into_iter().partition(|k| !tags.contains_key(*k));
    if let (Some(tag), true) = (missing.first(), rng.random_bool(0.5)) {
        // Someone fixes the tagging; the value is a plausible one, not the group's.
        let value = match *tag {
            "owner" => OWNERS.choose(rng).copied().unwrap_or(OWNERS[0]).to_owned(),
            "costCenter" => "CC-1000".to_owned(),
            _ => "dev".to_owned(),
        };
        tags.insert((*tag).to_owned(), value);
    } else if let (Some(tag), true) = (present.choose(rng), rng.random_bool(0.15)) {
        tags.remove(*tag);
    } else {
        // A hand-over: any owner but the current one (or a first owner), so always a change.
        let current = tags.get("owner").cloned().unwrap_or_default();
        let others: Vec<&str> = OWNERS.iter().copied().filter(|o| *o != current).collect();
        tags.insert("owner".to_owned(), others.choose(rng).copied().unwrap_or(OWNERS[0]).to_owned());
    }
}

/// The properties of a type that change over a resource's life, with the values they take.
fn property_flips(resource_type: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match resource_type {
        "Microsoft.Storage/storageAccounts" => &[
            ("/supportsHttpsTrafficOnly", &["true", "false"]),
            ("/minimumTlsVersion", &["TLS1_0", "TLS1_1", "TLS1_2"]),
            ("/allowBlobPublicAccess", &["true", "false"]),
            ("/publicNetworkAccess", &["Enabled", "Disabled"]),
            ("/networkAcls/defaultAction", &["Allow", "Deny"]),
            ("/accessTier", &["Hot", "Cool"]),
        ],
        "Microsoft.KeyVault/vaults" => &[
            ("/enableSoftDelete", &["true", "false"]),
            ("/enablePurgeProtection", &["true", "false"]),
            ("/networkAcls/defaultAction", &["Allow", "Deny"]),
        ],
        "Microsoft.Sql/servers" => &[
            ("/minimalTlsVersion", &["1.0", "1.1", "1.2"]),
            ("/publicNetworkAccess", &["Enabled", "Disabled"]),
        ],
        "Microsoft.Web/sites" => &[
            ("/httpsOnly", &["true", "false"]),
            ("/siteConfig/minTlsVersion", &["1.0", "1.1", "1.2"]),
            ("/state", &["Running", "Stopped"]),
        ],
        "Microsoft.Compute/virtualMachines" => &[("/hardwareProfile/vmSize", VM_SIZES)],
        "Microsoft.Network/networkInterfaces" => &[("/enableIPForwarding", &["true", "false"])],
        "Microsoft.Network/networkSecurityGroups/securityRules" => &[
            ("/sourceAddressPrefix", &["Internet", "*", "VirtualNetwork", "10.0.0.0/8"]),
            ("/access", &["Allow", "Deny"]),
        ],
        "Microsoft.Network/publicIPAddresses" => &[("/idleTimeoutInMinutes", &["4", "10", "30"])],
        _ => &[],
    }
}

const VM_SIZES: &[&str] = &[
    ALLOWED_VM_SIZES[0],
    ALLOWED_VM_SIZES[1],
    ALLOWED_VM_SIZES[2],
    ALLOWED_VM_SIZES[3],
    ALLOWED_VM_SIZES[4],
    OTHER_VM_SIZES[0],
];

/// Sets one of `flips` to a value other than its current one.
fn flip(rng: &mut StdRng, properties: &mut Map<String, Value>, flips: &[(&str, &[&str])]) {
    let Some((pointer, values)) = flips.choose(rng) else { return };
    let current = value_at(properties, pointer).cloned();
    let candidates: Vec<Value> =
        values.iter().map(|v| typed(v)).filter(|v| Some(v) != current.as_ref()).collect();
    if let Some(value) = candidates.choose(rng) {
        set_at(properties, pointer, value.clone());
    }
}

/// `"true"`/`"false"` and numbers as JSON booleans and numbers, everything else a string.
fn typed(text: &str) -> Value {
    serde_json::from_str(text)
        .ok()
        .filter(|v: &Value| v.is_boolean() || v.is_number())
        .unwrap_or_else(|| json!(text))
}

fn value_at<'a>(properties: &'a Map<String, Value>, pointer: &str) -> Option<&'a Value> {
    let mut keys = pointer.trim_start_matches('/').split('/');
    let mut value = properties.get(keys.next()?)?;
    for key in keys {
        value = value.get(key)?;
    }
    Some(value)
}

/// Sets a property by JSON pointer, creating the objects on the way.
fn set_at(properties: &mut Map<String, Value>, pointer: &str, value: Value) {
    let mut keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let Some(last) = keys.pop() else { return };
    let mut map = properties;
    for key in keys {
        let entry = map.entry(key.to_owned()).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        let Value::Object(inner) = entry else { return };
        map = inner;
    }
    map.insert(last.to_owned(), value);
}
