//! Spawns the command and query APIs on one listener on port 0 (as `cortex serve` does),
//! against a fresh, migrated database per test, with a tenant and its key. Writes go through
//! the command API; [`TestApp::project`] then runs the real projectors until they have caught
//! up with the log, so the query API reads what production would.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use cortex_command::{
    api::{self, ApiState, Auth, IdempotencyStore, RateLimit},
    handlers::Commands,
    tenants::{KeyRing, create_tenant},
};
use cortex_events::{Catalog, EventStore, postgres::PostgresEventStore, testing::TestDatabase};
use cortex_projections::{ComplianceProjector, ResourcesProjector, Runner, RunnerSettings};
use cortex_query::{QueryState, Reads};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub api_key: String,
    pub tenant_id: Uuid,
    pub store: Arc<dyn EventStore>,
    pub db: TestDatabase,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Sends `request` and keeps the status, headers and body (JSON when it parses).
    pub async fn of(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Self { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON pointers a problem document names.
    pub fn pointers(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["pointer"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The `resource_id`s (or `policy_id`s) of a page's items.
    pub fn ids(&self, field: &str) -> Vec<String> {
        self.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {}", self.body))
            .iter()
            .map(|i| i[field].as_str().unwrap().to_owned())
            .collect()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDatabase::create().await;
        let store: Arc<dyn EventStore> =
            Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())));
        let tenant = create_tenant(&db.pool, "test tenant").await.unwrap();
        let keys = KeyRing::new(db.pool.clone());
        keys.reload().await.unwrap();
        let limit = NonZeroU32::new(100_000).unwrap();
        let auth = Auth::new(keys, RateLimit { per_second: limit, burst: limit });
        let commands = ApiState::new(
            Commands::new(store.clone()),
            auth.clone(),
            IdempotencyStore::new(db.pool.clone(), Duration::from_secs(3600)),
        );
        let queries = QueryState::new(Reads::new(db.pool.clone(), store.clone()), auth);
        let (v1, openapi) = OpenApiRouter::new()
            .merge(api::routes(commands))
            .merge(cortex_query::routes(queries))
            .split_for_parts();
        let router = cortex_http::app::finish(
            v1,
            cortex_http::app::openapi_document(openapi),
            cortex_http::Readiness::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            client: reqwest::Client::new(),
            api_key: tenant.api_key,
            tenant_id: tenant.tenant_id,
            store,
            db,
        }
    }

    /// A second tenant's key on the same app.
    pub async fn other_tenant_key(&self) -> String {
        create_tenant(&self.db.pool, "other tenant").await.unwrap().api_key
    }

    /// Runs every projector until it has applied everything committed so far.
    pub async fn project(&self) {
        let settings = RunnerSettings { batch_wait: Duration::from_millis(1), ..RunnerSettings::default() };
        Runner::new(self.store.clone(), self.db.pool.clone(), ResourcesProjector, settings)
            .run_until_caught_up()
            .await
            .unwrap();
        Runner::new(self.store.clone(), self.db.pool.clone(), ComplianceProjector, settings)
            .run_until_caught_up()
            .await
            .unwrap();
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::of(request).await
    }

    /// `GET path` as this app's tenant.
    pub async fn get(&self, path: &str) -> Answer {
        self.get_as(&self.api_key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base)).bearer_auth(key)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_as(&self.api_key, path, body).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: &Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)).bearer_auth(key).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.client.delete(format!("{}{path}", self.base)).bearer_auth(&self.api_key)).await
    }

    /// Registers `record` as `key`'s tenant; answers the resource id.
    pub async fn register_as(&self, key: &str, record: &Value) -> Uuid {
        let answer = self.post_as(key, "/v1/resources", record).await;
        assert!(matches!(answer.status, 200 | 201), "{}", answer.body);
        Uuid::parse_str(answer.body["resource_id"].as_str().unwrap()).unwrap()
    }

    pub async fn register(&self, record: &Value) -> Uuid {
        self.register_as(&self.api_key, record).await
    }

    pub async fn create_policy(&self, name: &str) -> Uuid {
        let answer = self.post("/v1/policies", &allowed_locations(name, &["westeurope"])).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        Uuid::parse_str(answer.body["policy_id"].as_str().unwrap()).unwrap()
    }

    /// An external scanner's result (the evaluator is not part of these tests).
    pub async fn evaluate(&self, resource: Uuid, policy: Uuid, state: &str) {
        let body = json!({"resource_id": resource, "policy_id": policy, "state": state,
                          "reason": format!("scanner says {state}"), "source": "scanner"});
        let answer = self.post("/v1/evaluations", &body).await;
        assert!(matches!(answer.status, 200 | 201), "{}", answer.body);
    }

    pub async fn drop(self) {
        self.db.drop_database().await;
    }
}

/// An inventory record of `type_name` in subscription `sub`, group `rg`.
pub fn record(sub: &str, rg: &str, type_name: &str, name: &str, location: &str, tags: Value) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{type_name}/{name}"),
        "name": name,
        "type": type_name,
        "location": location,
        "tags": tags,
        "properties": {}
    })
}

pub const STORAGE: &str = "Microsoft.Storage/storageAccounts";
pub const VM: &str = "Microsoft.Compute/virtualMachines";

/// Azure's built-in "Allowed locations" rule.
pub fn allowed_locations(name: &str, locations: &[&str]) -> Value {
    json!({
        "name": name,
        "severity": "high",
        "rule": {
            "if": {"field": "location", "notIn": "[parameters('listOfAllowedLocations')]"},
            "then": {"effect": "deny"}
        },
        "parameters": {"listOfAllowedLocations": {"type": "Array"}},
        "parameter_values": {"listOfAllowedLocations": locations}
    })
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
