//! The `resources` read model: the current state of every registered resource.
//!
//! A batch is first folded in memory into one action per resource (delete, write the whole
//! row, or patch some columns), then written with three set-based statements. Folding gives
//! exactly what applying the events one at a time gives: a change to a resource that has no
//! row (deleted, or never registered) changes nothing, and a registration writes every column.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cortex_events::{DomainEvent, EventFilter, RecordedEvent, catalog as ev, stream::category};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projector::{ApplyError, Changes, Projector, pg};

pub struct ResourcesProjector;

/// The model name in change notices.
pub const MODEL: &str = "resources";

/// A row of `rm_resources.resources` (its key aside).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cloud_id: String,
    pub name: String,
    pub resource_type: String,
    pub location: String,
    pub kind: Option<String>,
    pub tags: Value,
    pub properties: Value,
    pub subscription_id: String,
    pub resource_group: String,
    pub revision: i64,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The row this projection holds for a resource once it has applied `events`, the
/// resource's stream from its first event, in order (an audit's state at a point, issue 23):
/// `None` when the resource was deleted, or never registered. The projector's own fold.
pub fn row_after(events: &[RecordedEvent]) -> Result<Option<Row>, ApplyError> {
    Ok(fold(events)?.into_iter().find_map(|(_, action)| match action {
        Action::Write(row) => Some(*row),
        Action::Delete | Action::Patch(_) => None,
    }))
}

/// Columns to change on an existing row (`None` = unchanged).
#[derive(Debug, Clone, Default)]
struct Patch {
    name: Option<String>,
    location: Option<String>,
    kind: Option<Option<String>>,
    tags: Option<Value>,
    properties: Option<Value>,
    subscription_id: Option<String>,
    resource_group: Option<String>,
    revision: i64,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
enum Action {
    Delete,
    Write(Box<Row>),
    Patch(Box<Patch>),
}

/// One change of some columns, applied to a whole row or to a patch alike.
enum Change {
    Tags(Value),
    Properties(Value, Option<String>),
    Place { subscription_id: String, resource_group: String, location: String },
    Name(String),
}

impl Change {
    fn apply_to_row(self, row: &mut Row) {
        match self {
            Self::Tags(tags) => row.tags = tags,
            Self::Properties(properties, kind) => (row.properties, row.kind) = (properties, kind),
            Self::Place { subscription_id, resource_group, location } => {
                (row.subscription_id, row.resource_group, row.location) =
                    (subscription_id, resource_group, location)
            }
            Self::Name(name) => row.name = name,
        }
    }

    fn apply_to_patch(self, patch: &mut Patch) {
        match self {
            Self::Tags(tags) => patch.tags = Some(tags),
            Self::Properties(properties, kind) => {
                (patch.properties, patch.kind) = (Some(properties), Some(kind))
            }
            Self::Place { subscription_id, resource_group, location } => {
                patch.subscription_id = Some(subscription_id);
                patch.resource_group = Some(resource_group);
                patch.location = Some(location);
            }
            Self::Name(name) => patch.name = Some(name),
        }
    }
}

fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::Object(tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// Folds a batch into one action per resource, in first-seen order.
/// (tenant, resource).
type Key = (Uuid, Uuid);

fn fold(batch: &[RecordedEvent]) -> Result<Vec<(Key, Action)>, ApplyError> {
    let mut order: Vec<Key> = Vec::new();
    let mut actions: HashMap<Key, Action> = HashMap::with_capacity(batch.len());
    for event in batch {
        let tenant = event.tenant_id();
        let at = event.metadata.occurred_at;
        let revision = event.revision as i64;
        let (resource, change) = match DomainEvent::from_recorded(event)? {
            DomainEvent::ResourceRegistered(e) => {
                let key = (tenant, e.resource_id);
                let row = registered(e, revision, at);
                if actions.insert(key, Action::Write(Box::new(row))).is_none() {
                    order.push(key);
                }
                continue;
            }
            DomainEvent::ResourceDeleted(e) => {
                let key = (tenant, e.resource_id);
                if actions.insert(key, Action::Delete).is_none() {
                    order.push(key);
                }
                continue;
            }
            DomainEvent::ResourceTagsChanged(e) => (e.resource_id, Change::Tags(tags_value(&e.tags))),
            DomainEvent::ResourcePropertiesChanged(e) => {
                (e.resource_id, Change::Properties(Value::Object(e.properties), e.kind))
            }
            DomainEvent::ResourceMoved(e) => (
                e.resource_id,
                Change::Place {
                    subscription_id: e.subscription_id,
                    resource_group: e.resource_group,
                    location: e.location,
                },
            ),
            DomainEvent::ResourceRenamed(e) => (e.resource_id, Change::Name(e.name)),
            _ => continue,
        };
        let key = (tenant, resource);
        let action = actions.entry(key).or_insert_with(|| {
            order.push(key);
            Action::Patch(Box::default())
        });
        match action {
            // A change to a resource with no row changes nothing, as an UPDATE would.
            Action::Delete => {}
            Action::Write(row) => {
                change.apply_to_row(row);
                row.revision = revision;
                row.updated_at = at;
            }
            Action::Patch(patch) => {
                change.apply_to_patch(patch);
                patch.revision = revision;
                patch.updated_at = Some(at);
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|key| {
            let action = actions.remove(&key).expect("every ordered key has an action");
            (key, action)
        })
        .collect())
}

fn registered(e: ev::ResourceRegistered, revision: i64, at: DateTime<Utc>) -> Row {
    Row {
        tags: tags_value(&e.tags),
        properties: Value::Object(e.properties),
        cloud_id: e.cloud_id,
        name: e.name,
        resource_type: e.resource_type,
        location: e.location,
        kind: e.kind,
        subscription_id: e.subscription_id,
        resource_group: e.resource_group,
        revision,
        registered_at: at,
        updated_at: at,
    }
}

#[async_trait]
impl Projector for ResourcesProjector {
    fn name(&self) -> &'static str {
        "resources"
    }

    fn filter(&self) -> EventFilter {
        EventFilter::all().categories([category::RESOURCE])
    }

    fn models(&self) -> &'static [&'static str] {
        &[MODEL]
    }

    #[tracing::instrument(name = "projection.resources.apply", skip_all, fields(events = batch.len()))]
    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[RecordedEvent],
        changes: &mut Changes,
    ) -> Result<(), ApplyError> {
        let actions = fold(batch)?;
        let mut deletes: (Vec<Uuid>, Vec<Uuid>) = Default::default();
        let mut writes = Writes::default();
        let mut patches = Patches::default();
        for ((tenant, resource), action) in actions {
            changes.record(tenant, MODEL, resource);
            match action {
                Action::Delete => {
                    deletes.0.push(tenant);
                    deletes.1.push(resource);
                }
                Action::Write(row) => writes.push(tenant, resource, *row),
                Action::Patch(patch) => patches.push(tenant, resource, *patch),
            }
        }
        if !deletes.0.is_empty() {
            sqlx::query(
                "DELETE FROM resources r USING UNNEST($1::uuid[], $2::uuid[]) AS d(tenant_id, resource_id) \
                 WHERE r.tenant_id = d.tenant_id AND r.resource_id = d.resource_id",
            )
            .bind(deletes.0)
            .bind(deletes.1)
            .execute(&mut *conn)
            .await
            .map_err(pg("delete resources"))?;
        }
        if !writes.tenant.is_empty() {
            writes.execute(conn).await?;
        }
        if !patches.tenant.is_empty() {
            patches.execute(conn).await?;
        }
        Ok(())
    }
}

/// Whole rows, as columns for one `INSERT … SELECT FROM UNNEST … ON CONFLICT DO UPDATE`.
#[derive(Default)]
struct Writes {
    tenant: Vec<Uuid>,
    resource: Vec<Uuid>,
    cloud_id: Vec<String>,
    name: Vec<String>,
    resource_type: Vec<String>,
    location: Vec<String>,
    kind: Vec<Option<String>>,
    tags: Vec<Value>,
    properties: Vec<Value>,
    subscription_id: Vec<String>,
    resource_group: Vec<String>,
    revision: Vec<i64>,
    registered_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl Writes {
    fn push(&mut self, tenant: Uuid, resource: Uuid, row: Row) {
        self.tenant.push(tenant);
        self.resource.push(resource);
        self.cloud_id.push(row.cloud_id);
        self.name.push(row.name);
        self.resource_type.push(row.resource_type);
        self.location.push(row.location);
        self.kind.push(row.kind);
        self.tags.push(row.tags);
        self.properties.push(row.properties);
        self.subscription_id.push(row.subscription_id);
        self.resource_group.push(row.resource_group);
        self.revision.push(row.revision);
        self.registered_at.push(row.registered_at);
        self.updated_at.push(row.updated_at);
    }

    async fn execute(self, conn: &mut PgConnection) -> Result<(), ApplyError> {
        sqlx::query(
            "INSERT INTO resources (tenant_id, resource_id, cloud_id, name, type, location, kind, tags, properties, \
                                    subscription_id, resource_group, revision, registered_at, updated_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                                  $7::text[], $8::jsonb[], $9::jsonb[], $10::text[], $11::text[], $12::bigint[], \
                                  $13::timestamptz[], $14::timestamptz[]) \
             ON CONFLICT (tenant_id, resource_id) DO UPDATE SET cloud_id = EXCLUDED.cloud_id, name = EXCLUDED.name, \
                type = EXCLUDED.type, location = EXCLUDED.location, kind = EXCLUDED.kind, tags = EXCLUDED.tags, \
                properties = EXCLUDED.properties, subscription_id = EXCLUDED.subscription_id, \
                resource_group = EXCLUDED.resource_group, revision = EXCLUDED.revision, \
                registered_at = EXCLUDED.registered_at, updated_at = EXCLUDED.updated_at",
        )
        .bind(self.tenant)
        .bind(self.resource)
        .bind(self.cloud_id)
        .bind(self.name)
        .bind(self.resource_type)
        .bind(self.location)
        .bind(self.kind)
        .bind(self.tags)
        .bind(self.properties)
        .bind(self.subscription_id)
        .bind(self.resource_group)
        .bind(self.revision)
        .bind(self.registered_at)
        .bind(self.updated_at)
        .execute(conn)
        .await
        .map_err(pg("write resources"))?;
        Ok(())
    }
}

/// Column patches, as columns for one `UPDATE … FROM UNNEST`; a NULL leaves the column as it
/// is (`kind`, which may become NULL, has a flag of its own).
#[derive(Default)]
struct Patches {
    tenant: Vec<Uuid>,
    resource: Vec<Uuid>,
    name: Vec<Option<String>>,
    location: Vec<Option<String>>,
    kind_set: Vec<bool>,
    kind: Vec<Option<String>>,
    tags: Vec<Option<Value>>,
    properties: Vec<Option<Value>>,
    subscription_id: Vec<Option<String>>,
    resource_group: Vec<Option<String>>,
    revision: Vec<i64>,
    updated_at: Vec<Option<DateTime<Utc>>>,
}

impl Patches {
    fn push(&mut self, tenant: Uuid, resource: Uuid, p: Patch) {
        self.tenant.push(tenant);
        self.resource.push(resource);
        self.name.push(p.name);
        self.location.push(p.location);
        self.kind_set.push(p.kind.is_some());
        self.kind.push(p.kind.flatten());
        self.tags.push(p.tags);
        self.properties.push(p.properties);
        self.subscription_id.push(p.subscription_id);
        self.resource_group.push(p.resource_group);
        self.revision.push(p.revision);
        self.updated_at.push(p.updated_at);
    }

    async fn execute(self, conn: &mut PgConnection) -> Result<(), ApplyError> {
        sqlx::query(
            "UPDATE resources r SET name = COALESCE(p.name, r.name), location = COALESCE(p.location, r.location), \
                    kind = CASE WHEN p.kind_set THEN p.kind ELSE r.kind END, tags = COALESCE(p.tags, r.tags), \
                    properties = COALESCE(p.properties, r.properties), \
                    subscription_id = COALESCE(p.subscription_id, r.subscription_id), \
                    resource_group = COALESCE(p.resource_group, r.resource_group), \
                    revision = p.revision, updated_at = p.updated_at \
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::jsonb[], \
                           $8::jsonb[], $9::text[], $10::text[], $11::bigint[], $12::timestamptz[]) \
                    AS p(tenant_id, resource_id, name, location, kind_set, kind, tags, properties, subscription_id, \
                         resource_group, revision, updated_at) \
              WHERE r.tenant_id = p.tenant_id AND r.resource_id = p.resource_id",
        )
        .bind(self.tenant)
        .bind(self.resource)
        .bind(self.name)
        .bind(self.location)
        .bind(self.kind_set)
        .bind(self.kind)
        .bind(self.tags)
        .bind(self.properties)
        .bind(self.subscription_id)
        .bind(self.resource_group)
        .bind(self.revision)
        .bind(self.updated_at)
        .execute(conn)
        .await
        .map_err(pg("patch resources"))?;
        Ok(())
    }
}
