//! A resource read on a cache miss (`GET /v1/resources/{id}`) keeps its index paths as the
//! read models grow from empty without statistics (issue 22).

use std::sync::Arc;

use cortex_events::{
    Catalog, EventStore,
    postgres::PostgresEventStore,
    testing::{TestDatabase, assert_queries_keyed},
};
use cortex_query::reads::{ReadError, Reads};
use uuid::Uuid;

/// Reads `ids` one by one, as cache misses do; an id not projected yet is a 404.
async fn read_each(reads: &Reads, tenant: Uuid, ids: &[Uuid]) {
    for &id in ids {
        match reads.resource(tenant, id).await {
            Ok(_) | Err(ReadError::NotFound { .. }) => {}
            Err(e) => panic!("read resource {id}: {e}"),
        }
    }
}

/// `n` resources of `tenant`, each with a result of one enabled policy, in both read models,
/// written directly (a plan depends on the tables' sizes and statistics, not on how their
/// rows came) and never analysed.
async fn grow(db: &TestDatabase, tenant: Uuid, n: i64) -> Vec<Uuid> {
    let policy = Uuid::now_v7();
    for sql in [
        "INSERT INTO rm_resources.resources (tenant_id, resource_id, cloud_id, name, type, location, tags, \
                                             properties, subscription_id, resource_group, revision, \
                                             registered_at, updated_at) \
         SELECT $1, gen_random_uuid(), 'id-' || i, 'name-' || i, 'Microsoft.Storage/storageAccounts', \
                'westeurope', '{}', '{}', 'sub-' || (i % 20), 'rg-' || (i % 200), 0, now(), now() \
         FROM generate_series(1, $3) AS i",
        "INSERT INTO rm_compliance.resources (tenant_id, resource_id, subscription_id, resource_type, deleted, \
                                              compliant, non_compliant, exempt) \
         SELECT tenant_id, resource_id, subscription_id, lower(type), false, 1, 0, 0 FROM rm_resources.resources",
        "INSERT INTO rm_compliance.policies (tenant_id, policy_id, name, severity, mode, enabled, scope, rule, \
                                             parameters, parameter_values, revision, created_at, updated_at, \
                                             compliant, non_compliant, exempt) \
         SELECT $1, $2, 'policy', 'low', 'all', true, '{}', '{}', '{}', '{}', 0, now(), now(), count(*), 0, 0 \
         FROM rm_resources.resources WHERE $3 > 0",
        "INSERT INTO rm_compliance.results (tenant_id, resource_id, policy_id, state, reason, source, \
                                            policy_revision, resource_revision, evaluated_at) \
         SELECT tenant_id, resource_id, $2, 'compliant', NULL, 'policycortex', 0, 0, now() \
         FROM rm_resources.resources",
    ] {
        sqlx::query(sql).bind(tenant).bind(policy).bind(n).execute(&db.pool).await.expect(sql);
    }
    sqlx::query_scalar("SELECT resource_id FROM rm_resources.resources LIMIT 20")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_read_walks_its_keys_as_the_read_models_grow_from_empty() {
    let db = TestDatabase::create().await;
    let store: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap())));
    // One session, so that every read prepares its statement where the test looks.
    let session = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    let reads = Reads::new(session.clone(), store);
    let tenant = Uuid::now_v7();
    let unknown: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    // Past PostgreSQL's five custom plans, so that a generic plan is chosen now if ever.
    read_each(&reads, tenant, &unknown).await;
    let known = grow(&db, tenant, 300_000).await;
    read_each(&reads, tenant, &known).await;
    let mut conn = session.acquire().await.unwrap();
    assert_queries_keyed(
        &mut conn,
        &["FROM rm_resources.resources"],
        tenant,
        "300,000 resources, not analysed",
        &["policies"],
    )
    .await;
    drop(conn);
    session.close().await;

    let session = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    let reads = Reads::new(
        session.clone(),
        Arc::new(PostgresEventStore::new(db.pool.clone(), Arc::new(Catalog::standard().unwrap()))),
    );
    read_each(&reads, tenant, &known).await;
    let mut conn = session.acquire().await.unwrap();
    assert_queries_keyed(
        &mut conn,
        &["FROM rm_resources.resources"],
        tenant,
        "prepared on 300,000 resources",
        &["policies"],
    )
    .await;
    drop(conn);
    session.close().await;
    db.drop_database().await;
}
