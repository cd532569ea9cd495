//! What a [`Model`] gives back: the writes of a batch, or every row of a replay.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::{GroupKey, Model, PolicyKey, ResourceKey};
use crate::compliance::rows::{
    Counts, PolicyRow, ResourceRow, ResultRow, SummaryRow, Tables, TenantTotalsRow, TrendRow,
};

/// What changed since the model was loaded, as the writes that bring the tables up to date.
#[derive(Debug)]
pub struct Delta<'a> {
    pub resources: Vec<&'a ResourceRow>,
    pub policies: Vec<&'a PolicyRow>,
    pub removed_policies: Vec<PolicyKey>,
    pub results: Vec<&'a ResultRow>,
    /// Amounts to add to summary rows (never zero); a row whose counts reach zero goes.
    pub summary: Vec<(&'a GroupKey, Counts)>,
    /// New totals (a zero total means no row).
    pub tenant_totals: Vec<(Uuid, Counts)>,
    pub trend: Vec<TrendRow>,
    /// Resources whose results, counts or summary group changed (change notices).
    pub changed_resources: BTreeSet<ResourceKey>,
    /// Policies whose row or counts changed, or that were deleted (change notices).
    pub changed_policies: BTreeSet<PolicyKey>,
}

impl Model {
    /// What changed since loading.
    pub fn delta(&self) -> Delta<'_> {
        let changed_resources = self
            .dirty
            .resources
            .iter()
            .copied()
            .chain(self.dirty.results.iter().map(|&(t, r, _)| (t, r)))
            .collect();
        let changed_policies = self.dirty.policies.union(&self.dirty.removed_policies).copied().collect();
        Delta {
            resources: self.dirty.resources.iter().filter_map(|k| self.resources.get(k)).collect(),
            policies: self.dirty.policies.iter().filter_map(|k| self.policies.get(k)).collect(),
            removed_policies: self.dirty.removed_policies.iter().copied().collect(),
            results: self.dirty.results.iter().filter_map(|k| self.results.get(k)).collect(),
            summary: self.summary.iter().filter(|(_, c)| !c.is_zero()).map(|(g, c)| (g, *c)).collect(),
            tenant_totals: self.dirty.tenants.iter().map(|&t| (t, self.totals(t))).collect(),
            trend: self.trend_rows(),
            changed_resources,
            changed_policies,
        }
    }

    fn trend_rows(&self) -> Vec<TrendRow> {
        self.trend.iter().map(|(&(tenant_id, day), &counts)| TrendRow { tenant_id, day, counts }).collect()
    }

    /// Every row of every table, for a model that started empty and saw the whole log (for a
    /// loaded slice, the summary and trend rows are the batch's changes, not the tables').
    pub fn tables(&self) -> Tables {
        Tables {
            resources: self.resources.values().cloned().collect(),
            policies: self.policies.values().cloned().collect(),
            results: self.results.values().cloned().collect(),
            summary: self
                .summary
                .iter()
                .filter(|(_, c)| !c.is_zero())
                .map(|((tenant_id, subscription_id, resource_type), &counts)| SummaryRow {
                    tenant_id: *tenant_id,
                    subscription_id: subscription_id.clone(),
                    resource_type: resource_type.clone(),
                    counts,
                })
                .collect(),
            tenant_totals: self
                .tenants
                .iter()
                .filter(|(_, t)| !t.totals.is_zero())
                .map(|(&tenant_id, t)| TenantTotalsRow { tenant_id, counts: t.totals })
                .collect(),
            trend: self.trend_rows(),
        }
    }
}
