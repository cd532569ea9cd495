//! Spawns the real command API on port 0 against a fresh, migrated database (one per test),
//! with a tenant and its key, and a client that speaks to it as any HTTP client would.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use cortex_command::{
    api::{self, ApiState, Auth, IdempotencyStore, RateLimit},
    handlers::Commands,
    tenants::{KeyRing, create_tenant},
};
use cortex_events::{Catalog, EventStore, postgres::PostgresEventStore, testing::TestDatabase};
use serde_json::{Value, json};
use uuid::Uuid;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub api_key: String,
    pub tenant_id: Uuid,
    pub db: TestDatabase,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The JSON pointers a problem document names.
    pub fn pointers(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["pointer"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with_limit(10_000, 10_000).await
    }

    pub async fn spawn_with_limit(per_second: u32, burst: u32) -> Self {
        let db = TestDatabase::create().await;
        let catalog = Arc::new(Catalog::standard().unwrap());
        let store: Arc<dyn EventStore> = Arc::new(PostgresEventStore::new(db.pool.clone(), catalog));
        let tenant = create_tenant(&db.pool, "test tenant").await.unwrap();
        let keys = KeyRing::new(db.pool.clone());
        keys.reload().await.unwrap();
        let auth = Auth::new(
            keys,
            RateLimit {
                per_second: NonZeroU32::new(per_second).unwrap(),
                burst: NonZeroU32::new(burst).unwrap(),
            },
        );
        let state = ApiState::new(
            Commands::new(store),
            auth,
            IdempotencyStore::new(db.pool.clone(), Duration::from_secs(24 * 3600)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
        Self {
            base,
            client: reqwest::Client::new(),
            api_key: tenant.api_key,
            tenant_id: tenant.tenant_id,
            db,
        }
    }

    /// A second tenant's key on the same app.
    pub async fn other_tenant_key(&self) -> String {
        create_tenant(&self.db.pool, "other tenant").await.unwrap().api_key
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.api_key)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, headers, body }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(self.request(reqwest::Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Registers a storage account and answers its resource id.
    pub async fn register_storage(&self, name: &str) -> Uuid {
        let answer = self.post("/v1/resources", &storage(name, "westeurope", json!({"env": "prod"}))).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        Uuid::parse_str(answer.body["resource_id"].as_str().unwrap()).unwrap()
    }

    pub async fn create_policy(&self) -> Uuid {
        let answer = self.post("/v1/policies", &allowed_locations(&["westeurope"])).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        Uuid::parse_str(answer.body["policy_id"].as_str().unwrap()).unwrap()
    }

    /// Number of events stored in a stream.
    pub async fn events_in(&self, stream: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM es_events WHERE stream_name = $1")
            .bind(stream)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn total_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM es_events").fetch_one(&self.db.pool).await.unwrap()
    }
}

pub fn storage(name: &str, location: &str, tags: Value) -> Value {
    json!({
        "id": format!("/subscriptions/sub-1/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/{name}"),
        "name": name,
        "type": "Microsoft.Storage/storageAccounts",
        "location": location,
        "kind": "StorageV2",
        "tags": tags,
        "properties": {"supportsHttpsTrafficOnly": true, "minimumTlsVersion": "TLS1_2"}
    })
}

/// Azure's built-in "Allowed locations" rule, assigned with `locations`.
pub fn allowed_locations(locations: &[&str]) -> Value {
    json!({
        "name": "Allowed locations",
        "severity": "high",
        "mode": "Indexed",
        "rule": {
            "if": {"allOf": [
                {"field": "location", "notIn": "[parameters('listOfAllowedLocations')]"},
                {"field": "location", "notEquals": "global"},
                {"field": "type", "notEquals": "Microsoft.AzureActiveDirectory/b2cDirectories"}
            ]},
            "then": {"effect": "deny"}
        },
        "parameters": {"listOfAllowedLocations": {"type": "Array", "metadata": {"displayName": "Allowed locations"}}},
        "parameter_values": {"listOfAllowedLocations": locations}
    })
}
