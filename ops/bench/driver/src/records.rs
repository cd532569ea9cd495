//! What the drivers write and how they talk to the API: storage-account inventory records in
//! a subscription of their own, and one HTTP client.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// The API every driver talks to.
#[derive(clap::Args, Clone)]
pub struct Api {
    /// Base URL of `cortex serve`, e.g. http://127.0.0.1:18490.
    #[arg(long)]
    pub url: String,
    /// The tenant's API key (Authorization: Bearer).
    #[arg(long)]
    pub key: String,
}

impl Api {
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), path)
    }
}

/// A client for many concurrent short requests to one host.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// One storage account of the driver's own: `tag` names the run and the driver, `n` the
/// account, `seq` goes into a tag so that each new value is a real change (a new revision).
pub fn storage_account(tag: &str, n: u64, seq: u64) -> Value {
    let name = format!("st{tag}x{n}");
    json!({
        "id": format!(
            "/subscriptions/00000000-0000-4000-9000-00000000be9c/resourceGroups/rg-{tag}/providers/Microsoft.Storage/storageAccounts/{name}"
        ),
        "name": name,
        "type": "Microsoft.Storage/storageAccounts",
        "location": "westeurope",
        "kind": "StorageV2",
        "tags": { "env": "prod", "owner": "bench", "seq": seq.to_string() },
        "properties": {
            "supportsHttpsTrafficOnly": true,
            "minimumTlsVersion": "TLS1_2",
            "allowBlobPublicAccess": false,
            "sku": { "name": "Standard_LRS", "tier": "Standard" }
        }
    })
}

/// The answer of `POST /v1/resources`.
#[derive(Debug, Deserialize)]
pub struct Written {
    pub resource_id: String,
    pub revision: u64,
}

/// `POST /v1/resources` with one record.
pub async fn write(client: &reqwest::Client, api: &Api, record: &Value) -> anyhow::Result<Written> {
    let resp = client.post(api.at("/v1/resources")).bearer_auth(&api.key).json(record).send().await?;
    let status = resp.status();
    if !status.is_success() {
        bail!("POST /v1/resources answered {status}: {}", resp.text().await.unwrap_or_default());
    }
    Ok(resp.json().await?)
}

/// `POST /v1/resources:batch` with up to 1,000 records; the resource ids in order.
pub async fn write_batch(
    client: &reqwest::Client,
    api: &Api,
    records: Vec<Value>,
) -> anyhow::Result<Vec<String>> {
    let resp = client
        .post(api.at("/v1/resources:batch"))
        .bearer_auth(&api.key)
        .json(&json!({ "resources": records }))
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        bail!("POST /v1/resources:batch answered {status}: {}", resp.text().await.unwrap_or_default());
    }
    let body: Value = resp.json().await?;
    let results = body["results"].as_array().context("a batch answer without results")?;
    results
        .iter()
        .map(|r| match r["resource_id"].as_str() {
            Some(id) => Ok(id.to_string()),
            None => bail!("a batch item was refused: {r}"),
        })
        .collect()
}

/// The revision a plain `GET /v1/resources/{id}` shows now (`None` while it is not there).
pub async fn visible_revision(
    client: &reqwest::Client,
    api: &Api,
    resource_id: &str,
) -> anyhow::Result<Option<u64>> {
    let resp =
        client.get(api.at(&format!("/v1/resources/{resource_id}"))).bearer_auth(&api.key).send().await?;
    match resp.status().as_u16() {
        200 => {
            let body: Value = resp.json().await?;
            Ok(body["revision"].as_u64())
        }
        404 => Ok(None),
        status => bail!("GET /v1/resources/{resource_id} answered {status}"),
    }
}

/// Waits until every id is visible through a plain GET (up to `limit`).
pub async fn await_visible(
    client: &reqwest::Client,
    api: &Api,
    ids: &[String],
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    for id in ids {
        while visible_revision(client, api, id).await?.is_none() {
            if tokio::time::Instant::now() > deadline {
                bail!("resource {id} not visible after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Waits until the tenant's compliance summary has not changed (same `ETag`) for `quiet`,
/// up to `limit`: the work a setup started (the evaluator deciding a new pool of resources,
/// the compliance projection following it) is over, so that a measurement that comes next
/// does not count the setup's tail as its own.
pub async fn settle(
    client: &reqwest::Client,
    api: &Api,
    quiet: Duration,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    let (mut last, mut since) = (None::<String>, tokio::time::Instant::now());
    loop {
        let resp = client.get(api.at("/v1/compliance/summary")).bearer_auth(&api.key).send().await?;
        if !resp.status().is_success() {
            bail!("GET /v1/compliance/summary answered {}", resp.status());
        }
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if etag.is_none() || etag != last {
            (last, since) = (etag, tokio::time::Instant::now());
        } else if since.elapsed() >= quiet {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("the compliance summary still changed after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
