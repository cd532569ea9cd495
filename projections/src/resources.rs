//! The `resources` read model: the current state of every registered resource.

use async_trait::async_trait;
use cortex_events::{DomainEvent, EventFilter, RecordedEvent, catalog as ev, stream::category};
use sqlx::PgConnection;

use crate::projector::{ApplyError, Projector, pg};

pub struct ResourcesProjector;

const SET_TAGS: &str = "UPDATE resources SET revision = $3, updated_at = $4, tags = $5 \
                        WHERE tenant_id = $1 AND resource_id = $2";
const SET_PROPERTIES: &str = "UPDATE resources SET revision = $3, updated_at = $4, properties = $5, kind = $6 \
                              WHERE tenant_id = $1 AND resource_id = $2";
const SET_PLACE: &str = "UPDATE resources SET revision = $3, updated_at = $4, subscription_id = $5, \
                         resource_group = $6, location = $7 WHERE tenant_id = $1 AND resource_id = $2";
const SET_NAME: &str = "UPDATE resources SET revision = $3, updated_at = $4, name = $5 \
                        WHERE tenant_id = $1 AND resource_id = $2";

#[async_trait]
impl Projector for ResourcesProjector {
    fn name(&self) -> &'static str {
        "resources"
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all().categories([category::RESOURCE])
    }

    #[tracing::instrument(name = "projection.resources.apply", skip_all, fields(event_id = %event.event_id()))]
    async fn apply(&self, conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        let tenant = event.tenant_id();
        let at = event.metadata.occurred_at;
        let revision = event.revision as i64;
        match DomainEvent::from_recorded(event)? {
            DomainEvent::ResourceRegistered(e) => register(conn, tenant, &e, revision, at).await,
            DomainEvent::ResourceTagsChanged(e) => {
                let tags = serde_json::to_value(&e.tags).unwrap_or_default();
                update(conn, SET_TAGS, (tenant, e.resource_id), revision, at, |q| q.bind(tags)).await
            }
            DomainEvent::ResourcePropertiesChanged(e) => {
                let properties = serde_json::Value::Object(e.properties);
                update(conn, SET_PROPERTIES, (tenant, e.resource_id), revision, at, |q| {
                    q.bind(properties).bind(e.kind)
                })
                .await
            }
            DomainEvent::ResourceMoved(e) => {
                update(conn, SET_PLACE, (tenant, e.resource_id), revision, at, |q| {
                    q.bind(e.subscription_id).bind(e.resource_group).bind(e.location)
                })
                .await
            }
            DomainEvent::ResourceRenamed(e) => {
                update(conn, SET_NAME, (tenant, e.resource_id), revision, at, |q| q.bind(e.name)).await
            }
            DomainEvent::ResourceDeleted(e) => {
                sqlx::query("DELETE FROM resources WHERE tenant_id = $1 AND resource_id = $2")
                    .bind(tenant)
                    .bind(e.resource_id)
                    .execute(conn)
                    .await
                    .map_err(pg("delete resource"))?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

async fn register(
    conn: &mut PgConnection,
    tenant: uuid::Uuid,
    e: &ev::ResourceRegistered,
    revision: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApplyError> {
    // A registration after a delete finds no row (the delete removed it); the upsert covers
    // a rebuild into tables that already hold the row.
    sqlx::query(
        "INSERT INTO resources (tenant_id, resource_id, cloud_id, name, type, location, kind, tags, properties, \
                                subscription_id, resource_group, revision, registered_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
         ON CONFLICT (tenant_id, resource_id) DO UPDATE SET cloud_id = EXCLUDED.cloud_id, name = EXCLUDED.name, \
            type = EXCLUDED.type, location = EXCLUDED.location, kind = EXCLUDED.kind, tags = EXCLUDED.tags, \
            properties = EXCLUDED.properties, subscription_id = EXCLUDED.subscription_id, \
            resource_group = EXCLUDED.resource_group, revision = EXCLUDED.revision, \
            registered_at = EXCLUDED.registered_at, updated_at = EXCLUDED.updated_at",
    )
    .bind(tenant)
    .bind(e.resource_id)
    .bind(&e.cloud_id)
    .bind(&e.name)
    .bind(&e.resource_type)
    .bind(&e.location)
    .bind(&e.kind)
    .bind(serde_json::to_value(&e.tags).unwrap_or_default())
    .bind(serde_json::Value::Object(e.properties.clone()))
    .bind(&e.subscription_id)
    .bind(&e.resource_group)
    .bind(revision)
    .bind(at)
    .execute(conn)
    .await
    .map_err(pg("upsert resource"))?;
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs `sql` (an UPDATE of one row whose parameters are `$1` tenant, `$2` resource, `$3`
/// revision, `$4` time, then the changed fields) with `bind` adding the fields.
async fn update<'q>(
    conn: &mut PgConnection,
    sql: &'static str,
    key: (uuid::Uuid, uuid::Uuid),
    revision: i64,
    at: chrono::DateTime<chrono::Utc>,
    bind: impl FnOnce(Query<'q>) -> Query<'q>,
) -> Result<(), ApplyError> {
    let q = sqlx::query(sql).bind(key.0).bind(key.1).bind(revision).bind(at);
    bind(q).execute(conn).await.map_err(pg("update resource"))?;
    Ok(())
}
