//! The command API as the demo loader calls it: JSON `POST`s with the tenant's key, an
//! `Idempotency-Key` per request, and bounded retries of what is safe to retry.
//!
//! Every request carries an idempotency key, so a retry after a lost answer replays the
//! first outcome rather than applying twice; that is why connection errors and timeouts are
//! retried like 429 and 503 (and a 409 on a retry: the API answers so while the first
//! attempt is still running). Any other non-2xx answer is final and reported with the
//! problem+json `detail` the API sent.

use std::time::Duration;

use rand::Rng;
use reqwest::{StatusCode, Url, header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Where the API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API's base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// The tenant's API key (`cortex tenants create`), sent as `Authorization: Bearer`.
    pub api_key: SecretString,
    /// Attempts per request when the API is busy (429), unavailable (503) or unreachable.
    pub max_attempts: u32,
    /// Per-request time limit; a batch of 1,000 records is the slowest request.
    pub timeout: Duration,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self { base_url: base_url.into(), api_key, max_attempts: 6, timeout: Duration::from_secs(60) }
    }
}

/// Why a load stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the api url '{url}' is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the api key cannot be sent in an http header")]
    InvalidApiKey,
    #[error("cannot build the http client")]
    Client(#[source] reqwest::Error),
    #[error("{step}: the api answered {status}: {detail}")]
    Rejected { step: String, status: u16, detail: String },
    #[error("{step}: gave up after {attempts} attempts, last: {last}")]
    RetriesExhausted { step: String, attempts: u32, last: String },
    #[error("{step}: the api answered {status} with an unexpected body: {reason}")]
    UnexpectedAnswer { step: String, status: u16, reason: String },
}

/// A cheap-to-clone handle on the API (one connection pool).
#[derive(Debug, Clone)]
pub struct DemoClient {
    http: reqwest::Client,
    base: Url,
    max_attempts: u32,
}

/// Longest wait honoured from a `Retry-After` header, so a confused server cannot stall a load.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl DemoClient {
    /// Builds the client; connects nothing until the first request.
    pub fn new(config: &ClientConfig) -> Result<Self, LoadError> {
        let invalid = |reason: String| LoadError::InvalidUrl { url: config.base_url.clone(), reason };
        let mut base = Url::parse(&config.base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("use http or https".to_owned()));
        }
        // `Url::join` treats a base without a trailing slash as a file and drops its last
        // segment, which would lose a path prefix such as `https://host/cortex`.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut auth = header::HeaderValue::from_str(&format!("Bearer {}", config.api_key.expose_secret()))
            .map_err(|_| LoadError::InvalidApiKey)?;
        auth.set_sensitive(true);
        let headers = header::HeaderMap::from_iter([(header::AUTHORIZATION, auth)]);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("cortex-demo/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.timeout)
            .build()
            .map_err(LoadError::Client)?;
        Ok(Self { http, base, max_attempts: config.max_attempts.max(1) })
    }

    /// `POST`s `body` to `path` (relative, e.g. `v1/policies`) and decodes a 2xx answer;
    /// `step` names the request in errors and logs.
    #[tracing::instrument(skip(self, body))]
    pub async fn post_json<B, T>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: &str,
        step: &str,
    ) -> Result<T, LoadError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let url = self
            .base
            .join(path)
            .map_err(|e| LoadError::InvalidUrl { url: path.to_owned(), reason: e.to_string() })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .http
                .post(url.clone())
                .header("Idempotency-Key", idempotency_key)
                .json(body)
                .send()
                .await;
            let (last, retry_after) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    match response.bytes().await {
                        Ok(bytes) if status.is_success() => {
                            return serde_json::from_slice(&bytes).map_err(|e| LoadError::UnexpectedAnswer {
                                step: step.to_owned(),
                                status: status.as_u16(),
                                reason: e.to_string(),
                            });
                        }
                        Ok(bytes) if is_transient(status) => {
                            (format!("{status}: {}", detail(&bytes)), retry_after)
                        }
                        Ok(bytes) => {
                            return Err(LoadError::Rejected {
                                step: step.to_owned(),
                                status: status.as_u16(),
                                detail: detail(&bytes),
                            });
                        }
                        // The connection dropped while the answer was being read.
                        Err(e) => (format!("reading the answer: {}", causes(&e)), None),
                    }
                }
                Err(e) if e.is_builder() => return Err(LoadError::Client(e)),
                Err(e) => (format!("sending the request: {}", causes(&e)), None),
            };
            if attempt >= self.max_attempts {
                return Err(LoadError::RetriesExhausted { step: step.to_owned(), attempts: attempt, last });
            }
            let wait = retry_after.unwrap_or_else(|| backoff(attempt));
            tracing::warn!(step, attempt, wait_ms = wait.as_millis() as u64, last, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// The error and its causes: reqwest's own message ("error sending request") hides the
/// useful part ("connection refused") in its sources.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// `Retry-After` in seconds (the form the API sends); an HTTP date is ignored for backoff.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// Exponential from 250 ms, capped at 8 s, with jitter so concurrent batches spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.saturating_sub(1).min(5)).min(8_000);
    Duration::from_millis(rand::rng().random_range(base / 2..=base))
}

/// The problem+json `detail` (or `title`), else the start of the body as text.
fn detail(body: &[u8]) -> String {
    if let Some(text) = serde_json::from_slice::<Value>(body).ok().as_ref().and_then(problem_detail) {
        return text;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() { "(no body)".to_owned() } else { text.chars().take(300).collect() }
}

/// A problem's `detail`, else its `title`.
pub(crate) fn problem_detail(problem: &Value) -> Option<String> {
    ["detail", "title"].iter().find_map(|key| problem.get(key).and_then(Value::as_str)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_reported_by_its_detail() {
        assert_eq!(
            detail(br#"{"type":"about:blank","title":"Bad","status":400,"detail":"name: required"}"#),
            "name: required"
        );
        assert_eq!(detail(br#"{"title":"Unauthorized","status":401}"#), "Unauthorized");
        assert_eq!(detail(b"upstream down"), "upstream down");
        assert_eq!(detail(b""), "(no body)");
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1) <= Duration::from_millis(250));
        assert!(backoff(3) >= Duration::from_millis(500));
        assert!(backoff(30) <= Duration::from_secs(8));
    }

    #[test]
    fn a_base_url_keeps_its_path_prefix() {
        let config = ClientConfig::new("https://example.invalid/cortex", SecretString::from("k"));
        let client = DemoClient::new(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            client.base.join("v1/policies").map(|u| u.to_string()).ok().as_deref(),
            Some("https://example.invalid/cortex/v1/policies")
        );
        let bad = ClientConfig::new("ftp://example.invalid", SecretString::from("k"));
        assert!(matches!(DemoClient::new(&bad), Err(LoadError::InvalidUrl { .. })));
    }
}
