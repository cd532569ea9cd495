//! The rows of the compliance tables as Rust values: what the model computes and what
//! [`super::read_tables`] reads back, so that the two compare with `==`.

use chrono::{DateTime, NaiveDate, Utc};
use cortex_events::catalog::{ComplianceState, PolicyMode, Severity};
use serde_json::Value;
use uuid::Uuid;

/// Counted results (of a resource or a policy) or resources (of a summary) by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    pub compliant: i64,
    pub non_compliant: i64,
    pub exempt: i64,
}

impl Counts {
    /// `n` more (or fewer) of `state`; states that never count change nothing.
    pub fn add(&mut self, state: ComplianceState, n: i64) {
        match state {
            ComplianceState::Compliant => self.compliant += n,
            ComplianceState::NonCompliant => self.non_compliant += n,
            ComplianceState::Exempt => self.exempt += n,
            ComplianceState::NotApplicable | ComplianceState::Error => {}
        }
    }

    pub fn total(&self) -> i64 {
        self.compliant + self.non_compliant + self.exempt
    }

    /// (compliant + exempt) / total, `None` when total is 0 (DESIGN §3).
    pub fn percentage(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| (self.compliant + self.exempt) as f64 / total as f64)
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The overall state these counted results give: non-compliant > compliant > exempt.
    pub fn overall(&self) -> Option<ComplianceState> {
        if self.non_compliant > 0 {
            Some(ComplianceState::NonCompliant)
        } else if self.compliant > 0 {
            Some(ComplianceState::Compliant)
        } else if self.exempt > 0 {
            Some(ComplianceState::Exempt)
        } else {
            None
        }
    }
}

/// Whether a result in this state can count at all.
pub fn counts(state: ComplianceState) -> bool {
    matches!(state, ComplianceState::Compliant | ComplianceState::NonCompliant | ComplianceState::Exempt)
}

/// `resources`: what the summaries need about a resource. `counts` are its counted results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    pub tenant_id: Uuid,
    pub resource_id: Uuid,
    /// Lower-cased: the summary's group key.
    pub subscription_id: String,
    /// Lower-cased: the summary's group key.
    pub resource_type: String,
    pub deleted: bool,
    pub counts: Counts,
}

impl ResourceRow {
    /// The overall state (the table's generated `state`).
    pub fn state(&self) -> Option<ComplianceState> {
        self.counts.overall()
    }
}

/// `policies`: a policy that exists, with the counts of its counted results.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    pub tenant_id: Uuid,
    pub policy_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub severity: Severity,
    pub mode: PolicyMode,
    pub enabled: bool,
    pub scope: Value,
    pub rule: Value,
    pub parameters: Value,
    pub parameter_values: Value,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub counts: Counts,
}

/// `results`: the latest result of one policy on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub tenant_id: Uuid,
    pub resource_id: Uuid,
    pub policy_id: Uuid,
    pub state: ComplianceState,
    pub reason: Option<String>,
    pub source: String,
    pub policy_revision: Option<i64>,
    pub resource_revision: Option<i64>,
    pub evaluated_at: DateTime<Utc>,
}

/// `summary`: resources by overall state in one tenant × subscription × resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub tenant_id: Uuid,
    pub subscription_id: String,
    pub resource_type: String,
    pub counts: Counts,
}

/// `tenant_totals`: resources by overall state in one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantTotalsRow {
    pub tenant_id: Uuid,
    pub counts: Counts,
}

/// `trend`: a tenant's totals at the end of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendRow {
    pub tenant_id: Uuid,
    pub day: NaiveDate,
    pub counts: Counts,
}

/// Every row of every table, each table ordered by its primary key (text keys by bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    pub resources: Vec<ResourceRow>,
    pub policies: Vec<PolicyRow>,
    pub results: Vec<ResultRow>,
    pub summary: Vec<SummaryRow>,
    pub tenant_totals: Vec<TenantTotalsRow>,
    pub trend: Vec<TrendRow>,
}

impl Tables {
    /// The names of the tables that differ from `other`'s, with the first differing row of
    /// each (for an audit report or a test failure).
    pub fn differences(&self, other: &Self) -> Vec<String> {
        fn first<T: PartialEq + std::fmt::Debug>(table: &str, a: &[T], b: &[T], out: &mut Vec<String>) {
            if a == b {
                return;
            }
            let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            out.push(format!(
                "{table}: {} rows vs {}; first difference at row {at}: {:?} vs {:?}",
                a.len(),
                b.len(),
                a.get(at),
                b.get(at)
            ));
        }
        let mut out = Vec::new();
        first("resources", &self.resources, &other.resources, &mut out);
        first("policies", &self.policies, &other.policies, &mut out);
        first("results", &self.results, &other.results, &mut out);
        first("summary", &self.summary, &other.summary, &mut out);
        first("tenant_totals", &self.tenant_totals, &other.tenant_totals, &mut out);
        first("trend", &self.trend, &other.trend, &mut out);
        out
    }
}

/// The text of a severity in the tables.
pub fn severity_text(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

pub fn parse_severity(text: &str) -> Option<Severity> {
    Some(match text {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => return None,
    })
}
