//! The estate generator: a seeded, streaming iterator of inventory records.
//!
//! Four subscriptions (alternating production and non-production landing zones) hold
//! resource groups, one per workload: `web` (App Service apps, storage, a key vault, SQL),
//! `compute` (an NSG with its rules, VMs with their NICs, a load balancer's public IP) or
//! `data` (storage, SQL, a key vault). Each group's record comes before its members.
//!
//! Only one group is held in memory at a time, and the structure never depends on the
//! requested count, which only truncates: the first `n` records of an estate of `m > n` are
//! the estate of `n`. The first three groups are one of each workload with every optional
//! member, so any estate of 100 records or more has every resource type.
//!
//! Determinism holds for one version of `rand` (`StdRng` is ChaCha12, whose output `rand`
//! does not promise to keep across major versions).

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::json;

use super::catalog::{
    ALLOWED_REGIONS, APPS, NONPROD_ENVS, OTHER_REGIONS, OWNERS, PROD_ENVS, Region, VM_ROLES, cost_center,
};
use super::members::{Group, Members, Shared, object};
use super::record::{InventoryRecord, RESOURCE_GROUP_TYPE};

/// How many subscriptions the estate spreads over.
const SUBSCRIPTIONS: usize = 4;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct EstateConfig {
    pub seed: u64,
    /// The exact number of records, resource groups included.
    pub resources: usize,
    /// The chance that a record carries a defect that makes it non-compliant with a
    /// catalogue policy (default 0.2). Group defects (a missing owner tag, a location
    /// outside the allowed list that its members share) come on top.
    pub noncompliant_fraction: f64,
}

impl EstateConfig {
    pub fn new(seed: u64, resources: usize) -> Self {
        Self { seed, resources, noncompliant_fraction: 0.2 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Web,
    Compute,
    Data,
}

/// The generated estate, record by record.
pub struct Estate {
    rng: StdRng,
    defect_rate: f64,
    remaining: usize,
    subscriptions: Vec<String>,
    shared: Shared,
    pending: VecDeque<InventoryRecord>,
    groups: usize,
    /// Group names already used per subscription, to number duplicates (`…-weu-02`).
    group_names: HashMap<String, u32>,
}

impl Estate {
    pub fn new(config: &EstateConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let subscriptions = (0..SUBSCRIPTIONS).map(|_| random_uuid(&mut rng)).collect();
        let tenant_id = random_uuid(&mut rng);
        Self {
            rng,
            defect_rate: config.noncompliant_fraction.clamp(0.0, 1.0),
            remaining: config.resources,
            subscriptions,
            shared: Shared { tenant_id, storage: 0, vaults: 0, sql: 0, sites: 0 },
            pending: VecDeque::new(),
            groups: 0,
            group_names: HashMap::new(),
        }
    }

    /// The subscription ids records are spread over (production ones at even positions).
    pub fn subscriptions(&self) -> &[String] {
        &self.subscriptions
    }

    /// Generates the next resource group and its members into `pending`.
    fn next_group(&mut self) {
        let index = self.groups;
        self.groups += 1;
        let rng = &mut self.rng;
        let workload = match index {
            0 => Workload::Web,
            1 => Workload::Compute,
            2 => Workload::Data,
            _ => *[(Workload::Compute, 45), (Workload::Web, 35), (Workload::Data, 20)]
                .choose_weighted(rng, |w| w.1)
                .map(|w| &w.0)
                .unwrap_or(&Workload::Compute),
        };
        let subscription_index = rng.random_range(0..SUBSCRIPTIONS);
        let envs = if subscription_index % 2 == 0 { PROD_ENVS } else { NONPROD_ENVS };
        let env = envs.choose_weighted(rng, |e| e.1).map(|e| e.0).unwrap_or("dev");
        let app_index = rng.random_range(0..APPS.len());
        let app = APPS[app_index];
        let owner = OWNERS.choose(rng).copied().unwrap_or(OWNERS[0]);
        // A group defect: a missing owner or cost centre tag, or a region outside the list.
        let group_defect = rng.random_bool(self.defect_rate).then(|| rng.random_range(0..4));
        let regions = if group_defect == Some(3) { OTHER_REGIONS } else { ALLOWED_REGIONS };
        let region = pick_region(rng, regions);

        let subscription = self.subscriptions[subscription_index].clone();
        let base = format!("rg-{app}-{env}-{}", region.short);
        let seen = self.group_names.entry(format!("{subscription}/{base}")).or_insert(0);
        *seen += 1;
        let name = if *seen == 1 { base } else { format!("{base}-{:02}", *seen) };

        let member_tags: BTreeMap<String, String> = [
            ("env", env.to_owned()),
            ("owner", owner.to_owned()),
            ("costCenter", cost_center(app_index)),
            ("app", app.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut group_tags = member_tags.clone();
        match group_defect {
            Some(0 | 1) => group_tags.remove("owner"),
            Some(2) => group_tags.remove("costCenter"),
            _ => None,
        };
        let group = Group {
            subscription,
            name,
            location: region.name,
            region_short: region.short,
            env,
            app,
            member_tags,
            index,
        };
        self.pending.push_back(InventoryRecord {
            id: group.id(),
            name: group.name.clone(),
            resource_type: RESOURCE_GROUP_TYPE.to_owned(),
            location: group.location.to_owned(),
            kind: None,
            tags: Some(group_tags),
            properties: Some(object(json!({"provisioningState": "Succeeded"}))),
            subscription_id: None,
            resource_group: None,
        });
        let mut members = Members {
            rng: &mut self.rng,
            group: &group,
            shared: &mut self.shared,
            defect_rate: self.defect_rate,
            out: Vec::new(),
        };
        fill(&mut members, workload, index < 3);
        self.pending.extend(members.out);
    }
}

/// A group's members; `complete` forces every optional member (the first three groups).
fn fill(m: &mut Members<'_>, workload: Workload, complete: bool) {
    match workload {
        Workload::Web => {
            let sites = m.rng.random_range(1..=3);
            for n in 0..sites {
                let function_app = if n == 0 { false } else { complete || m.rng.random_bool(0.4) };
                m.site(function_app);
            }
            m.storage_account();
            m.key_vault();
            if complete || m.rng.random_bool(0.7) {
                m.sql_server();
            }
        }
        Workload::Compute => {
            let nsg = (complete || m.rng.random_bool(0.85)).then(|| m.network_security_group());
            if complete || m.rng.random_bool(0.5) {
                m.load_balancer_ip();
            }
            let mut numbers: BTreeMap<&str, u32> = BTreeMap::new();
            for _ in 0..m.rng.random_range(1..=4) {
                let role = VM_ROLES.choose(m.rng).copied().unwrap_or("app");
                let number = numbers.entry(role).or_insert(0);
                *number += 1;
                m.virtual_machine(role, *number, nsg.as_deref());
            }
            if m.rng.random_bool(0.4) {
                m.storage_account();
            }
            if m.rng.random_bool(0.25) {
                m.key_vault();
            }
        }
        Workload::Data => {
            for _ in 0..m.rng.random_range(1..=3) {
                m.storage_account();
            }
            for _ in 0..m.rng.random_range(1..=2) {
                m.sql_server();
            }
            m.key_vault();
        }
    }
}

fn pick_region(rng: &mut StdRng, regions: &'static [Region]) -> &'static Region {
    regions.choose_weighted(rng, |r| r.weight).unwrap_or(&ALLOWED_REGIONS[0])
}

/// A version-4-looking uuid from the seeded generator (so subscription ids repeat by seed).
fn random_uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string()
}

impl Iterator for Estate {
    type Item = InventoryRecord;

    fn next(&mut self) -> Option<InventoryRecord> {
        if self.remaining == 0 {
            return None;
        }
        if self.pending.is_empty() {
            self.next_group();
        }
        self.remaining -= 1;
        self.pending.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Estate {}
