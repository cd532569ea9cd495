//! The loader against a stand-in of the command API's contract (DESIGN §8), served on a
//! local port: until the real API runs in tests, this pins the loader's side of the
//! contract (paths, headers, retries, answers). The end-to-end test uses the real API.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{ClientConfig, LoadError, LoadOptions, load};

/// What the stand-in saw and how it misbehaves.
#[derive(Default)]
struct Fake {
    /// (path, idempotency key, authorization, record count) per request.
    seen: Vec<(String, String, String, usize)>,
    /// Batch requests to answer 429 before serving normally.
    busy: usize,
    /// Answer every policy request with this status and a problem.
    refuse_policies: Option<u16>,
    batches: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn note(fake: &Shared, path: &str, headers: &HeaderMap, records: usize) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut fake = fake.lock().unwrap_or_else(|e| e.into_inner());
    fake.seen.push((path.to_owned(), header("idempotency-key"), header("authorization"), records));
}

async fn create_policy(State(fake): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    note(&fake, "policies", &headers, 0);
    let refuse = fake.lock().unwrap_or_else(|e| e.into_inner()).refuse_policies;
    match refuse {
        Some(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let problem = json!({"type": "about:blank", "title": "Invalid", "status": status.as_u16(),
                                 "detail": format!("{}: nope", body["name"].as_str().unwrap_or_default())});
            (status, Json(problem)).into_response()
        }
        None => {
            (StatusCode::CREATED, Json(json!({"policy_id": "p", "revision": 1, "position": "policy-pos"})))
                .into_response()
        }
    }
}

async fn register_batch(State(fake): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let records = body["resources"].as_array().map_or(0, Vec::len);
    note(&fake, "batch", &headers, records);
    let mut fake = fake.lock().unwrap_or_else(|e| e.into_inner());
    if fake.busy > 0 {
        fake.busy -= 1;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], Json(json!({"title": "slow down"})))
            .into_response();
    }
    fake.batches += 1;
    let results: Vec<Value> = (0..records)
        .map(|index| match index {
            // One refused record per batch, as a problem.
            0 => json!({
                "index": 0,
                "error": {"title": "Invalid", "status": 400, "detail": "/resources/0/name: too long"},
            }),
            _ => json!({"index": index, "resource_id": "r", "revision": 1, "changed": index % 2 == 1}),
        })
        .collect();
    Json(json!({"results": results, "position": format!("batch-pos-{}", fake.batches)})).into_response()
}

async fn serve(fake: Fake) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(fake));
    let app = Router::new()
        .route("/v1/policies", post(create_policy))
        .route("/v1/resources:batch", post(register_batch))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("address: {e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), shared)
}

fn options() -> LoadOptions {
    LoadOptions { batch_size: 100, concurrency: 3, ..LoadOptions::new(450, 5, 42) }
}

#[tokio::test]
async fn a_load_posts_policies_then_batches_and_counts_the_answers() {
    let (url, fake) = serve(Fake { busy: 2, ..Fake::default() }).await;
    let config = ClientConfig::new(url, SecretString::from("secret-key"));
    let progress = Mutex::new(Vec::new());
    let report = load(&config, &options(), &|p| progress.lock().unwrap_or_else(|e| e.into_inner()).push(p))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!((report.policies_created, report.resources_submitted), (5, 450));
    // Batches of 100, 100, 100, 100, 50: record 0 of each refused, odd ones changed.
    assert_eq!(report.item_errors, 5);
    assert_eq!(report.resources_changed, 4 * 50 + 25);
    assert_eq!(report.item_error_samples[0].detail, "/resources/0/name: too long");
    // The last batch is sent alone, after the others: its position is the load's.
    assert_eq!(report.last_position.as_deref(), Some("batch-pos-5"));

    let seen = fake.lock().unwrap_or_else(|e| e.into_inner()).seen.clone();
    assert!(seen.iter().all(|(_, key, auth, _)| !key.is_empty() && auth == "Bearer secret-key"));
    assert!(seen[..5].iter().all(|(path, ..)| path == "policies"));
    assert_eq!(seen.len(), 5 + 5 + 2, "two batches retried after 429");
    let keys: std::collections::BTreeSet<&str> = seen.iter().map(|(_, key, ..)| key.as_str()).collect();
    assert_eq!(keys.len(), 10, "a retry repeats its request's key");
    let done = progress.lock().unwrap_or_else(|e| e.into_inner()).last().copied();
    assert_eq!(done, Some(super::Progress::Resources { done: 450, total: 450 }));
}

#[tokio::test]
async fn the_same_load_sends_the_same_idempotency_keys() {
    let keys = |seen: &[(String, String, String, usize)]| {
        let mut keys: Vec<String> = seen.iter().map(|(_, key, ..)| key.clone()).collect();
        keys.sort();
        keys
    };
    let (url, first) = serve(Fake::default()).await;
    let config = ClientConfig::new(url, SecretString::from("k"));
    load(&config, &options(), &|_| {}).await.unwrap_or_else(|e| panic!("{e}"));
    let (url, second) = serve(Fake::default()).await;
    load(&ClientConfig { base_url: url, ..config }, &options(), &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = keys(&first.lock().unwrap_or_else(|e| e.into_inner()).seen);
    assert_eq!(first, keys(&second.lock().unwrap_or_else(|e| e.into_inner()).seen));
}

#[tokio::test]
async fn a_refused_policy_stops_the_load_with_the_status_and_detail() {
    let (url, _) = serve(Fake { refuse_policies: Some(422), ..Fake::default() }).await;
    let config = ClientConfig::new(url, SecretString::from("k"));
    match load(&config, &options(), &|_| {}).await {
        Err(LoadError::Rejected { status: 422, detail, step }) => {
            assert_eq!(detail, "Allowed locations: nope");
            assert!(step.contains("Allowed locations"), "{step}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn an_api_that_stays_busy_is_given_up_after_the_bounded_attempts() {
    let (url, fake) = serve(Fake { busy: usize::MAX, ..Fake::default() }).await;
    let config = ClientConfig { max_attempts: 3, ..ClientConfig::new(url, SecretString::from("k")) };
    let options = LoadOptions { policies: 0, concurrency: 1, ..options() };
    match load(&config, &options, &|_| {}).await {
        Err(LoadError::RetriesExhausted { attempts: 3, last, .. }) => assert!(last.contains("429"), "{last}"),
        other => panic!("expected retries to run out, got {other:?}"),
    }
    assert!(fake.lock().unwrap_or_else(|e| e.into_inner()).seen.len() >= 3);
}

#[tokio::test]
async fn an_unreachable_api_is_retried_then_reported() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    drop(listener);
    let config = ClientConfig { max_attempts: 2, ..ClientConfig::new(url, SecretString::from("k")) };
    match load(&config, &options(), &|_| {}).await {
        Err(LoadError::RetriesExhausted { attempts: 2, .. }) => {}
        other => panic!("expected retries to run out, got {other:?}"),
    }
}
