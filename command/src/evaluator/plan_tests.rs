//! The evaluator's keyed loads keep their index paths as its tables grow from empty without
//! statistics (issue 22): a batch's resources, their decisions and stream revisions, and a
//! page of a policy's fan-out.

use cortex_events::testing::{TestDatabase, assert_keyed_plans, assert_queries_keyed, explain_prepared};
use sqlx::PgConnection;
use uuid::Uuid;

use super::rows;

/// Every load, once each for `tenant`, with a batch of 1,000 ids.
async fn load_everything(conn: &mut PgConnection, tenant: Uuid) {
    let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    rows::resources(conn, tenant, &ids).await.expect("load resources");
    rows::decisions(conn, tenant, &ids).await.expect("load decisions");
    rows::page(conn, tenant, Uuid::now_v7(), Uuid::nil(), 1000).await.expect("load a page");
}

/// `n` resources of `tenant` as the evaluator keeps them, each with a decision for one
/// policy and its compliance stream's revision, written directly (a plan depends on the
/// tables' sizes and statistics, not on how their rows came) and never analysed.
async fn grow(conn: &mut PgConnection, tenant: Uuid, n: i64) {
    for sql in [
        "INSERT INTO resources (tenant_id, resource_id, revision, cloud_id, name, resource_type, location, \
                                tags, properties, subscription_id, resource_group, deleted) \
         SELECT $1, gen_random_uuid(), 0, 'id-' || i, 'name-' || i, 'Microsoft.Storage/storageAccounts', \
                'westeurope', '{}', '{}', 'sub-' || (i % 20), 'rg-' || (i % 200), false \
         FROM generate_series(1, $2) AS i",
        "INSERT INTO decisions (tenant_id, resource_id, policy_id, state, reason, policy_revision) \
         SELECT tenant_id, resource_id, '00000000-0000-7000-8000-000000000001', 'compliant', NULL, 0 FROM resources",
        "INSERT INTO streams (resource_id, revision) SELECT resource_id, 0 FROM resources",
    ] {
        sqlx::query(sql).bind(tenant).bind(n).execute(&mut *conn).await.expect(sql);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evaluators_keyed_loads_walk_their_keys_as_its_tables_grow_from_empty() {
    let db = TestDatabase::create_with_pool_size(2).await;
    let tenant = Uuid::now_v7();
    let mut conn = db.pool.acquire().await.unwrap();
    // As the runner sets it for the evaluator's batches.
    sqlx::query("SET search_path = rm_evaluator").execute(&mut *conn).await.unwrap();
    // Past PostgreSQL's five custom plans, so that a generic plan is chosen now if ever.
    for _ in 0..6 {
        load_everything(&mut conn, tenant).await;
    }
    grow(&mut conn, tenant, 300_000).await;
    for _ in 0..6 {
        load_everything(&mut conn, tenant).await;
    }
    assert_queries_keyed(
        &mut conn,
        &["FROM decisions", "FROM streams"],
        tenant,
        "300,000 resources, not analysed",
        &[],
    )
    .await;
    resources_are_planned_at_each_execution(&mut conn, tenant).await;
    drop(conn);

    // A session that prepares them only now, on the grown tables (the first one, held, is
    // not handed out again).
    let first = db.pool.acquire().await.unwrap();
    let mut other = db.pool.acquire().await.unwrap();
    sqlx::query("SET search_path = rm_evaluator").execute(&mut *other).await.unwrap();
    for _ in 0..6 {
        load_everything(&mut other, tenant).await;
    }
    assert_queries_keyed(
        &mut other,
        &["FROM decisions", "FROM streams"],
        tenant,
        "prepared on 300,000 resources",
        &[],
    )
    .await;
    drop((first, other));
    db.drop_database().await;
}

/// The resource load is an unnamed statement, planned anew at each execution: no plan of it
/// is cached on the session, and the plan it gets on the grown tables probes the key.
async fn resources_are_planned_at_each_execution(conn: &mut PgConnection, tenant: Uuid) {
    let sql = rows::resources_by_id();
    let probe = "CROSS JOIN LATERAL (SELECT * FROM resources";
    assert!(explain_prepared(conn, probe, tenant).await.is_empty(), "the resource load left a cached plan");
    sqlx::query(&format!("PREPARE resources_by_id(uuid, uuid[]) AS {sql}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    let plans = explain_prepared(conn, probe, tenant).await;
    sqlx::query("DEALLOCATE resources_by_id").execute(&mut *conn).await.unwrap();
    // Its custom plan is the one an unnamed statement runs.
    let custom: Vec<_> = plans.into_iter().filter(|(sql, _)| sql.ends_with("(force_custom_plan)")).collect();
    assert_keyed_plans(&custom, "the resource load on 300,000 resources, not analysed", &[]);
}
