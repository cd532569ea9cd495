//! The cache, its invalidation across instances, read-your-writes, the fault bounds and the
//! live change stream, on a [`Fleet`]: real projection runners, real NATS and Redis.

use std::time::{Duration, Instant};

use futures::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    fleet::{Fleet, L2, Options, shared_redis_url},
    helpers::{STORAGE, allowed_locations, record},
};

fn storage(name: &str, env: &str) -> Value {
    record("sub-1", "rg-1", STORAGE, name, "westeurope", json!({"env": env}))
}

fn revision(a: &crate::helpers::Answer) -> i64 {
    a.body["revision"].as_i64().unwrap_or(-1)
}

fn hits(fleet: &Fleet, i: usize) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &fleet.instances[i].cache.stats;
    s.l1_hits.load(Relaxed) + s.l2_hits.load(Relaxed)
}

/// Whether `GET path` on instance `i` comes to be served from a cache level within 5 s (a
/// notice that arrives just after a read retires what it stored, so one try can miss).
async fn served_from_cache(fleet: &Fleet, i: usize, path: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        fleet.get(i, path, None).await;
        let before = hits(fleet, i);
        assert_eq!(fleet.get(i, path, None).await.status, 200);
        if hits(fleet, i) > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A one-instance fleet with `stale_bound`, and the path of a resource (tag `env: dev`) it
/// serves from its cache.
async fn one_cached_resource(stale_bound: Duration, name: &str) -> (Fleet, String) {
    let fleet = Fleet::start(Options { instances: 1, stale_bound, ..Options::default() }).await;
    let (id, rev, position) = fleet.register(&storage(name, "dev")).await;
    let path = format!("/v1/resources/{id}");
    assert_eq!(revision(&fleet.get(0, &path, Some(&position)).await), rev);
    assert!(served_from_cache(&fleet, 0, &path).await, "not cached");
    (fleet, path)
}

/// Reads the entry of `key` from a RESP server directly, waiting up to a second for it (L2
/// writes are off the request path).
async fn l2_get(url: &str, key: &str) -> Option<Vec<u8>> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    for _ in 0..50 {
        let found = redis::cmd("GET").arg(key).query_async::<Option<Vec<u8>>>(&mut conn).await.ok().flatten();
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_change_is_invalidated_in_every_instance_and_in_the_shared_cache() {
    let fleet = Fleet::start(Options::default()).await;
    let (id, rev, position) = fleet.register(&storage("stcoherent", "dev")).await;
    let path = format!("/v1/resources/{id}");
    let list = "/v1/resources?tag=env:dev";
    for i in 0..2 {
        let a = fleet.get(i, &path, Some(&position)).await;
        assert_eq!((a.status, revision(&a)), (200, rev), "{}", a.body);
        assert_eq!(fleet.get(i, list, Some(&position)).await.body["items"].as_array().unwrap().len(), 1);
        // Served again from a cache level: the point of the test is that caches hold entries.
        assert_eq!(revision(&fleet.get(i, &path, None).await), rev);
        assert!(
            served_from_cache(&fleet, i, &path).await,
            "instance {i} did not serve the resource from its cache"
        );
        assert!(
            served_from_cache(&fleet, i, list).await,
            "instance {i} did not serve the list from its cache"
        );
    }
    let key = format!("cx:v1:{}:r:{id}", fleet.tenant_id);
    assert!(l2_get(&shared_redis_url(), &key).await.is_some(), "the entry never reached L2");

    let (_, rev2, _) = fleet.register(&storage("stcoherent", "prod")).await;
    assert_eq!(rev2, rev + 1);
    for i in 0..2 {
        // No token: only invalidation can make the new revision visible before the TTL (120 s).
        let (a, seen) = fleet.poll(i, &path, Duration::from_secs(5), |a| revision(a) == rev2).await;
        assert!(seen, "instance {i} still serves {} after the change", a.body);
        let (a, seen) = fleet
            .poll(i, list, Duration::from_secs(5), |a| a.body["items"].as_array().is_some_and(Vec::is_empty))
            .await;
        assert!(seen, "instance {i}'s list still shows the old tag: {}", a.body);
    }
    fleet.drop().await;
}

#[tokio::test]
async fn read_your_writes_waits_for_the_projections_then_answers_or_503s_with_the_lag() {
    let mut fleet = Fleet::start(Options {
        instances: 1,
        project: false,
        after_wait: Duration::from_secs(3),
        ..Options::default()
    })
    .await;
    let (id, rev, position) = fleet.register(&storage("stryw", "dev")).await;
    let path = format!("/v1/resources/{id}");

    let a = fleet.get(0, &path, Some(&position)).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.header("retry-after").is_some());
    assert!(a.body["type"].as_str().unwrap().ends_with("/not-caught-up"), "{}", a.body);
    let behind = a.body["lag"]["projections"].as_array().unwrap();
    assert_eq!(behind.len(), 2, "{}", a.body);
    assert!(behind.iter().all(|b| b["events_behind"].as_u64() >= Some(1)), "{}", a.body);
    // Without the token the client gets what the read models have (nothing yet).
    assert_eq!(fleet.get(0, &path, None).await.status, 404);

    // A waiting read is woken when the projections pass the position.
    let waiting = {
        let (client, url, key, position) = (
            fleet.client.clone(),
            format!("{}{path}", fleet.instances[0].base),
            fleet.api_key.clone(),
            position.clone(),
        );
        tokio::spawn(async move {
            client.get(url).bearer_auth(key).header("X-Cortex-After", position).send().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    fleet.start_projections().await;
    let answer = waiting.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap()["revision"], rev);

    // The `after` parameter is the header's twin; malformed or doubled tokens are 400s.
    let a = fleet.get(0, &format!("/v1/compliance/summary?after={position}"), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = fleet.get(0, &path, Some("not-a-token")).await;
    assert_eq!(
        (a.status, a.body["errors"][0]["pointer"].as_str()),
        (400, Some("X-Cortex-After")),
        "{}",
        a.body
    );
    let a = fleet.get(0, &format!("{path}?after={position}"), Some(&position)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let beyond = format!("{:016x}{:016x}", u64::MAX >> 1, 0);
    let a = fleet.get(0, &path, Some(&beyond)).await;
    assert_eq!(
        (a.status, a.body["errors"][0]["pointer"].as_str()),
        (400, Some("X-Cortex-After")),
        "{}",
        a.body
    );
    let a = fleet.get(0, "/v1/resources?after=zz", None).await;
    assert_eq!((a.status, a.body["errors"][0]["pointer"].as_str()), (400, Some("/after")), "{}", a.body);
    fleet.drop().await;
}

#[tokio::test]
async fn with_nats_down_no_read_is_staler_than_the_bound_and_caching_resumes_after() {
    let bound = Duration::from_secs(1);
    let (mut fleet, path) = one_cached_resource(bound, "stnats").await;

    fleet.nats.stop();
    let (_, rev2, _) = fleet.register(&storage("stnats", "prod")).await;
    let changed = Instant::now();
    // The projection commits without NATS; the notice is lost. Only the bound can save us.
    let (a, seen) = fleet.poll(0, &path, bound + Duration::from_secs(2), |a| revision(a) == rev2).await;
    assert!(seen, "still stale {:?} after the change with NATS down: {}", changed.elapsed(), a.body);
    let ready = fleet.get(0, "/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["dependencies"]["notices"]["status"], "degraded", "{}", ready.body);

    fleet.nats.start().await;
    fleet.wait_live().await;
    let (_, rev3, _) = fleet.register(&storage("stnats", "test")).await;
    let (a, seen) = fleet.poll(0, &path, Duration::from_secs(5), |a| revision(a) == rev3).await;
    assert!(seen, "not fresh after NATS came back: {}", a.body);
    // Caching resumes once this instance and the projections' publisher both reconnected
    // (the publisher's client backs off between attempts, so allow it some seconds).
    let mut resumed = false;
    for _ in 0..3 {
        resumed = resumed || served_from_cache(&fleet, 0, &path).await;
    }
    assert!(resumed, "caching did not resume within 15 s of NATS coming back");
    assert_eq!(fleet.get(0, "/readyz", None).await.body["dependencies"]["notices"]["status"], "ok");
    fleet.drop().await;
}

#[tokio::test]
async fn with_the_cache_down_reads_come_from_postgresql_and_the_cache_comes_back() {
    let mut fleet = Fleet::start(Options { instances: 1, l2: L2::Private, ..Options::default() }).await;
    let l2_url = format!("redis://127.0.0.1:{}/", fleet.redis.as_ref().unwrap().port);
    let (id, rev, position) = fleet.register(&storage("stl2", "dev")).await;
    let path = format!("/v1/resources/{id}");
    let key = format!("cx:v1:{}:r:{id}", fleet.tenant_id);
    assert_eq!(revision(&fleet.get(0, &path, Some(&position)).await), rev);

    fleet.redis.as_mut().unwrap().stop();
    let (_, rev2, position2) = fleet.register(&storage("stl2", "prod")).await;
    let a = fleet.get(0, &path, Some(&position2)).await;
    assert_eq!((a.status, revision(&a)), (200, rev2), "{}", a.body);
    for _ in 0..5 {
        let a = fleet.get(0, "/v1/resources?limit=5", None).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let ready = fleet.get(0, "/readyz", None).await;
    assert_eq!(
        (ready.status, &ready.body["dependencies"]["cache"]["status"]),
        (200, &json!("degraded")),
        "{}",
        ready.body
    );

    fleet.redis.as_mut().unwrap().start().await;
    tokio::time::sleep(cortex_query::cache::L2_BACKOFF + Duration::from_millis(200)).await;
    let (_, rev3, position3) = fleet.register(&storage("stl2", "test")).await;
    assert_eq!(revision(&fleet.get(0, &path, Some(&position3)).await), rev3);
    let stored = l2_get(&l2_url, &key).await.expect("the answer never reached the restarted cache");
    assert!(String::from_utf8_lossy(&stored).contains("\"test\""));
    assert_eq!(fleet.get(0, "/readyz", None).await.body["dependencies"]["cache"]["status"], "ok");
    fleet.drop().await;
}

/// The events of an SSE body so far: (event, id, data).
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    async fn open(fleet: &Fleet, i: usize, key: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut r = fleet.client.get(format!("{}/v1/changes", fleet.instances[i].base)).bearer_auth(key);
        if let Some(id) = last_event_id {
            r = r.header("Last-Event-ID", id);
        }
        r.send().await.unwrap()
    }

    fn new(response: reqwest::Response) -> Self {
        Self { stream: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next block (event or comment), within `within`.
    async fn next(&mut self, within: Duration) -> Option<(String, String, String, bool)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data, mut comment) =
                    (String::new(), String::new(), String::new(), false);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    } else if line.starts_with(':') {
                        comment = true;
                    }
                }
                return Some((event, id, data, comment));
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `change` event of `model` naming `id`.
    async fn change_for_model(&mut self, id: Uuid, model: &str, forbidden: Option<Uuid>) -> (String, Value) {
        loop {
            let (event_id, data) = self.change_for(id, forbidden).await;
            if data["model"] == model {
                return (event_id, data);
            }
        }
    }

    /// The next `change` event naming `id`, skipping others (and failing on `forbidden`).
    async fn change_for(&mut self, id: Uuid, forbidden: Option<Uuid>) -> (String, Value) {
        // Heartbeats keep a stream busy: the deadline is for the whole search.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (event, event_id, data, _) = self.next(left).await.expect("the change within 10 s");
            if event != "change" {
                continue;
            }
            let data: Value = serde_json::from_str(&data).unwrap();
            let ids: Vec<&str> = data["ids"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            if let Some(f) = forbidden {
                assert!(
                    !ids.contains(&f.to_string().as_str()),
                    "another tenant's change reached this stream"
                );
            }
            if ids.contains(&id.to_string().as_str()) {
                return (event_id, data);
            }
        }
    }
}

#[tokio::test]
async fn the_change_stream_delivers_each_tenants_changes_with_heartbeats_and_resumes() {
    let fleet = Fleet::start(Options::default()).await;
    let other = cortex_command::tenants::create_tenant(&fleet.db.pool, "other").await.unwrap();
    let response = Events::open(&fleet, 1, &fleet.api_key, None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut events = Events::new(response);

    let (heartbeat, ..) =
        (events.next(Duration::from_secs(3)).await.expect("a heartbeat on a quiet stream"),);
    assert!(heartbeat.3, "the first block of a quiet stream is a heartbeat comment");

    // Another tenant's write first: it must never show up here.
    let a = fleet
        .send(
            fleet
                .client
                .post(format!("{}/v1/resources", fleet.instances[0].base))
                .bearer_auth(&other.api_key)
                .json(&storage("stother", "dev")),
        )
        .await;
    let foreign = Uuid::parse_str(a.body["resource_id"].as_str().unwrap()).unwrap();
    let (id, _, position) = fleet.register(&storage("stlive", "dev")).await;
    let (_, data) = events.change_for_model(id, "resources", Some(foreign)).await;
    assert!(data["position"].as_str().unwrap() >= position.as_str(), "{data}");
    assert!(data["at"].is_string());
    // One commit announcing two models at one position: both arrive.
    let policy = fleet.post("/v1/policies", &allowed_locations("locations", &["westeurope"])).await;
    let policy_id = Uuid::parse_str(policy.body["policy_id"].as_str().unwrap()).unwrap();
    let result =
        json!({"resource_id": id, "policy_id": policy_id, "state": "non_compliant", "source": "scanner"});
    let evaluated = fleet.post("/v1/evaluations", &result).await;
    assert_eq!(evaluated.status, 201);
    let at = evaluated.body["position"].as_str().unwrap().to_owned();
    // The first notices of each model at or after the evaluation (earlier ones announced the
    // registration and the policy's creation).
    let mut on_resource = Value::Null;
    while on_resource["position"].as_str().is_none_or(|p| p < at.as_str()) {
        on_resource = events.change_for_model(id, "compliance", None).await.1;
    }
    let (mut event_id, mut on_policy) = (String::new(), Value::Null);
    while on_policy["position"].as_str().is_none_or(|p| p < at.as_str()) {
        (event_id, on_policy) = events.change_for_model(policy_id, "policies", None).await;
    }
    assert_eq!(on_resource["position"], on_policy["position"], "the result and the counts are one commit");
    drop(events);

    // Missed while disconnected, delivered on resume.
    let (missed, _, _) = fleet.register(&storage("stmissed", "dev")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut resumed = Events::new(Events::open(&fleet, 1, &fleet.api_key, Some(&event_id)).await);
    resumed.change_for(missed, Some(foreign)).await;

    let bad = Events::open(&fleet, 1, &fleet.api_key, Some("yesterday")).await;
    assert_eq!(bad.status(), 400);
    fleet.drop().await;
}

#[tokio::test]
async fn readyz_reports_each_dependency() {
    let fleet = Fleet::start(Options { instances: 1, ..Options::default() }).await;
    let a = fleet.get(0, "/readyz", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    for dep in ["postgresql", "notices", "cache"] {
        assert_eq!(a.body["dependencies"][dep]["status"], "ok", "{dep}: {}", a.body);
    }
    assert_eq!(a.body["dependencies"]["postgresql"]["required"], true);
    fleet.db.pool.close().await;
    let a = fleet.get(0, "/readyz", None).await;
    assert_eq!(
        (a.status, &a.body["dependencies"]["postgresql"]["status"]),
        (503, &json!("down")),
        "{}",
        a.body
    );
    fleet.drop().await;
}

#[tokio::test]
async fn notices_that_stop_while_nats_answers_still_hold_the_stale_bound() {
    let bound = Duration::from_secs(2);
    let (mut fleet, path) = one_cached_resource(bound, "stsilent").await;

    // The projections commit but publish nothing; NATS itself still answers this instance.
    fleet.silence_projections().await;
    let (_, rev2, _) = fleet.register(&storage("stsilent", "prod")).await;
    let changed = Instant::now();
    let (a, seen) = fleet.poll(0, &path, bound + Duration::from_secs(2), |a| revision(a) == rev2).await;
    assert!(seen, "still stale {:?} after a change whose notice never came: {}", changed.elapsed(), a.body);
    fleet.drop().await;
}

#[tokio::test]
async fn disabling_a_policy_changes_a_cached_resource_that_only_has_a_non_counting_result() {
    let fleet = Fleet::start(Options { instances: 1, ..Options::default() }).await;
    let policy = fleet.post("/v1/policies", &allowed_locations("locations", &["westeurope"])).await;
    assert_eq!(policy.status, 201, "{}", policy.body);
    let policy_id = policy.body["policy_id"].as_str().unwrap().to_owned();
    let (id, _, _) = fleet.register(&storage("stna", "dev")).await;
    let result =
        json!({"resource_id": id, "policy_id": policy_id, "state": "not_applicable", "source": "scanner"});
    let answer = fleet.post("/v1/evaluations", &result).await;
    assert!(matches!(answer.status, 200 | 201), "{}", answer.body);
    let position = answer.body["position"].as_str().unwrap().to_owned();
    let path = format!("/v1/resources/{id}");
    let a = fleet.get(0, &path, Some(&position)).await;
    assert_eq!(a.body["compliance"].as_array().map(Vec::len), Some(1), "{}", a.body);
    assert_eq!(fleet.get(0, &path, None).await.body["compliance"].as_array().map(Vec::len), Some(1));

    let disabled = fleet.post(&format!("/v1/policies/{policy_id}/disable"), &json!({})).await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    let (a, seen) = fleet
        .poll(0, &path, Duration::from_secs(5), |a| {
            a.body["compliance"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert!(seen, "a disabled policy's result is still shown: {}", a.body);
    fleet.drop().await;
}

#[derive(Debug, Clone)]
enum Op {
    /// Write resource `n` (a new tag value each time).
    Write(usize),
    /// Read resource `n` on instance `i`, with the token of this client's last write of it.
    Read { n: usize, instance: usize, pause_ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::Write),
        (0..3usize, 0..2usize, 0..4u64).prop_map(|(n, instance, pause_ms)| Op::Read {
            n,
            instance,
            pause_ms
        }),
    ]
}

/// For random interleavings of writes and reads on two instances, a read carrying a write's
/// token never returns data older than that write.
#[test]
fn a_read_carrying_a_writes_token_never_returns_older_data() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let fleet = rt.block_on(Fleet::start(Options::default()));
    let case = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(8));
    let result = runner.run(&proptest::collection::vec(op(), 1..24), |ops| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            // Per resource: (id, revision, token) of the last write.
            let mut last: [Option<(Uuid, i64, String, String)>; 3] = Default::default();
            for (step, op) in ops.iter().enumerate() {
                match op {
                    Op::Write(n) => {
                        let (name, env) = (format!("stprop{case}x{n}"), format!("v{step}"));
                        let (id, rev, token) = fleet.register(&storage(&name, &env)).await;
                        last[*n] = Some((id, rev, token, env));
                    }
                    Op::Read { n, instance, pause_ms } => {
                        tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
                        let Some((id, rev, token, env)) = &last[*n] else { continue };
                        let a = fleet.get(*instance, &format!("/v1/resources/{id}"), Some(token)).await;
                        prop_assert_eq!(a.status, 200, "{}", a.body);
                        prop_assert!(
                            revision(&a) >= *rev,
                            "read revision {} after writing {}",
                            revision(&a),
                            rev
                        );
                        if revision(&a) == *rev {
                            prop_assert_eq!(a.body["tags"]["env"].as_str(), Some(env.as_str()));
                        }
                    }
                }
            }
            Ok(())
        })
    });
    rt.block_on(fleet.drop());
    result.unwrap();
}
