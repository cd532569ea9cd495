//! `cortex demo load`: submits the demo policies, then the generated estate, through the
//! public command API.
//!
//! Policies go first, one at a time, so that resources are evaluated as they arrive. The
//! estate goes in batches (`POST /v1/resources:batch`, at most 1,000 records) with several
//! in flight; the generator is pulled lazily, so memory holds only the batches in flight.
//! Each request's idempotency key is derived from the load's parameters and the request's
//! number: running the same load again replays it instead of duplicating it. Item errors in
//! a batch answer are counted and sampled, not fatal.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream::FuturesUnordered};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use super::batch::{Batch, BatchBody, Batches, MAX_BATCH};
use super::client::{ClientConfig, DemoClient, LoadError, problem_detail};
use super::estate::{Estate, EstateConfig};
use super::policies::{PolicyBody, policies};

/// Item errors kept with their detail in the report.
const ERROR_SAMPLES: usize = 5;

/// What to load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    pub resources: usize,
    pub policies: usize,
    pub seed: u64,
    /// Batch requests in flight at once (default 4).
    pub concurrency: usize,
    /// Records per batch, at most [`MAX_BATCH`] (the default); batches also stay under 1 MiB.
    pub batch_size: usize,
    /// See [`EstateConfig::noncompliant_fraction`].
    pub noncompliant_fraction: f64,
}

impl LoadOptions {
    pub fn new(resources: usize, policies: usize, seed: u64) -> Self {
        let estate = EstateConfig::new(seed, resources);
        Self {
            resources,
            policies,
            seed,
            concurrency: 4,
            batch_size: MAX_BATCH,
            noncompliant_fraction: estate.noncompliant_fraction,
        }
    }
}

/// Reported after each answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Policies { done: usize, total: usize },
    Resources { done: usize, total: usize },
}

/// One record the API refused inside an otherwise accepted batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    /// The record's position in the generated estate.
    pub index: usize,
    pub id: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Policies the API accepted (created, or replayed when the same load ran before).
    pub policies_created: usize,
    pub resources_submitted: usize,
    pub resources_changed: usize,
    pub item_errors: usize,
    /// The first few item errors.
    pub item_error_samples: Vec<ItemError>,
    /// The last batch's position (else the last policy's): as that batch is sent after all
    /// others are answered, it is at or after every write of the load, for read-your-writes.
    pub last_position: Option<String>,
    #[serde(serialize_with = "seconds", rename = "elapsed_seconds")]
    pub elapsed: Duration,
}

fn seconds<S: Serializer>(elapsed: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(elapsed.as_secs_f64())
}

#[derive(Deserialize)]
struct PolicyAnswer {
    #[serde(default)]
    position: Option<Value>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<ItemAnswer>,
    #[serde(default)]
    position: Option<Value>,
}

#[derive(Deserialize)]
struct ItemAnswer {
    index: usize,
    #[serde(default)]
    changed: Option<bool>,
    #[serde(default)]
    error: Option<Value>,
}

/// Loads `options.policies` policies and an estate of `options.resources` records.
#[tracing::instrument(skip(config, progress), fields(url = %config.base_url))]
pub async fn load(
    config: &ClientConfig,
    options: &LoadOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<LoadReport, LoadError> {
    let started = Instant::now();
    let client = DemoClient::new(config)?;
    let mut report = LoadReport::default();
    let bodies = policies(options.policies);
    for (index, body) in bodies.iter().enumerate() {
        report.last_position = create_policy(&client, index, body).await?.or(report.last_position);
        report.policies_created += 1;
        progress(Progress::Policies { done: index + 1, total: bodies.len() });
    }
    submit_estate(&client, options, &mut report, progress).await?;
    report.elapsed = started.elapsed();
    tracing::info!(
        policies = report.policies_created,
        resources = report.resources_submitted,
        changed = report.resources_changed,
        item_errors = report.item_errors,
        "demo load done"
    );
    Ok(report)
}

#[tracing::instrument(skip(client, body), fields(name = %body.name))]
async fn create_policy(
    client: &DemoClient,
    index: usize,
    body: &PolicyBody,
) -> Result<Option<String>, LoadError> {
    // The same for every seed: the policy list does not depend on it.
    let key = idempotency_key(&format!("policy/{index}/{}", body.name));
    let step = format!("creating policy '{}'", body.name);
    let answer: PolicyAnswer = client.post_json("v1/policies", body, &key, &step).await?;
    Ok(answer.position.map(position_text))
}

#[tracing::instrument(skip(client, report, progress))]
async fn submit_estate(
    client: &DemoClient,
    options: &LoadOptions,
    report: &mut LoadReport,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), LoadError> {
    let total = options.resources;
    let estate_config = EstateConfig {
        noncompliant_fraction: options.noncompliant_fraction,
        ..EstateConfig::new(options.seed, total)
    };
    let mut batches = Batches::new(Estate::new(&estate_config), options.batch_size).peekable();
    let mut in_flight = FuturesUnordered::new();
    let answered = |report: &mut LoadReport, outcome: BatchOutcome| {
        record(report, outcome);
        progress(Progress::Resources { done: report.resources_submitted, total });
    };
    while let Some(batch) = batches.next() {
        if batches.peek().is_none() {
            // The last batch goes alone after every other one is answered: it then commits
            // after all of them, so its position covers the whole load (read-your-writes).
            while let Some(outcome) = in_flight.next().await {
                answered(report, outcome?);
            }
            answered(report, submit_batch(client, options, batch).await?);
            break;
        }
        in_flight.push(submit_batch(client, options, batch));
        if in_flight.len() >= options.concurrency.max(1) {
            if let Some(outcome) = in_flight.next().await {
                answered(report, outcome?);
            }
        }
    }
    Ok(())
}

/// What one batch answer contributed.
struct BatchOutcome {
    submitted: usize,
    changed: usize,
    errors: Vec<ItemError>,
    position: Option<String>,
}

#[tracing::instrument(
    skip(client, options, batch),
    fields(number = batch.number, records = batch.records.len())
)]
async fn submit_batch(
    client: &DemoClient,
    options: &LoadOptions,
    batch: Batch,
) -> Result<BatchOutcome, LoadError> {
    let Batch { number, first, records } = batch;
    // The batch boundaries follow from these parameters alone (see `batch`).
    let key = idempotency_key(&format!(
        "resources/seed={}/n={}/defects={}/max-records={}/batch={number}",
        options.seed, options.resources, options.noncompliant_fraction, options.batch_size
    ));
    let step = format!("submitting records {first}..{} (batch {number})", first + records.len());
    let answer: BatchAnswer =
        client.post_json("v1/resources:batch", &BatchBody { resources: &records }, &key, &step).await?;
    let mut outcome = BatchOutcome {
        submitted: records.len(),
        changed: 0,
        errors: Vec::new(),
        position: answer.position.map(position_text),
    };
    for item in answer.results {
        match item.error {
            Some(problem) => outcome.errors.push(ItemError {
                index: first + item.index,
                id: records.get(item.index).map(|r| r.id.clone()).unwrap_or_default(),
                detail: problem_detail(&problem).unwrap_or_else(|| problem.to_string()),
            }),
            None if item.changed == Some(true) => outcome.changed += 1,
            None => {}
        }
    }
    if let Some(error) = outcome.errors.first() {
        tracing::warn!(step, refused = outcome.errors.len(), first = %error.detail, "records refused");
    }
    Ok(outcome)
}

fn record(report: &mut LoadReport, outcome: BatchOutcome) {
    report.resources_submitted += outcome.submitted;
    report.resources_changed += outcome.changed;
    report.item_errors += outcome.errors.len();
    let room = ERROR_SAMPLES.saturating_sub(report.item_error_samples.len());
    report.item_error_samples.extend(outcome.errors.into_iter().take(room));
    report.last_position = outcome.position.or(report.last_position.take());
}

/// A position is an opaque string token; anything else is kept as its JSON text.
fn position_text(position: Value) -> String {
    match position {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// UUIDv5 of the request's description: the same load sends the same keys.
fn idempotency_key(what: &str) -> String {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://policycortex.invalid/demo");
    Uuid::new_v5(&namespace, what.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_repeat_for_the_same_request_only() {
        assert_eq!(idempotency_key("resources/batch=1"), idempotency_key("resources/batch=1"));
        assert_ne!(idempotency_key("resources/batch=1"), idempotency_key("resources/batch=2"));
    }

    #[test]
    fn a_batch_outcome_is_added_to_the_report_with_a_bounded_sample() {
        let mut report = LoadReport { last_position: Some("p1".into()), ..LoadReport::default() };
        let error = |i| ItemError { index: i, id: format!("/r/{i}"), detail: "bad".into() };
        let outcome = |n, position: Option<&str>| BatchOutcome {
            submitted: 10,
            changed: 7,
            errors: (0..n).map(error).collect(),
            position: position.map(str::to_owned),
        };
        record(&mut report, outcome(4, None));
        record(&mut report, outcome(4, Some("p2")));
        assert_eq!((report.resources_submitted, report.resources_changed, report.item_errors), (20, 14, 8));
        assert_eq!(report.item_error_samples.len(), ERROR_SAMPLES);
        assert_eq!(report.last_position.as_deref(), Some("p2"));
    }
}
