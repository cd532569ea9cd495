//! The compliance projection's keyed loads keep their index paths as its tables grow from
//! empty without statistics (issue 22).

use cortex_events::testing::{TestDatabase, assert_queries_keyed};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Needs, load::load};

/// What a batch of the evaluator's results for 1,000 resources, one policy each, and a few
/// resources that start or stop counting make the projection load.
async fn load_a_batch(conn: &mut PgConnection, tenant: Uuid, policy: Uuid) {
    let mut needs = Needs::default();
    for n in 0..1000 {
        let resource = Uuid::now_v7();
        needs.results.insert((tenant, resource, policy));
        needs.resources.insert((tenant, resource));
        if n % 100 == 0 {
            needs.results_of_resources.insert((tenant, resource));
        }
    }
    needs.policies.insert((tenant, policy));
    needs.tenants.insert(tenant);
    load(conn, &needs).await.expect("load a batch");
}

/// `n` resources of `tenant` with one result each for `policy`, written directly (a plan
/// depends on the tables' sizes and statistics, not on how their rows came), never analysed.
async fn grow(conn: &mut PgConnection, tenant: Uuid, policy: Uuid, n: i64) {
    for sql in [
        "INSERT INTO resources (tenant_id, resource_id, subscription_id, resource_type, deleted, compliant, \
                                non_compliant, exempt) \
         SELECT $1, gen_random_uuid(), 'sub-' || (i % 20), 'microsoft.storage/storageaccounts', false, 1, 0, 0 \
         FROM generate_series(1, $3) AS i",
        "INSERT INTO results (tenant_id, resource_id, policy_id, state, reason, source, policy_revision, \
                              resource_revision, evaluated_at) \
         SELECT tenant_id, resource_id, $2, 'compliant', NULL, 'policycortex', 0, 0, now() FROM resources",
    ] {
        sqlx::query(sql).bind(tenant).bind(policy).bind(n).execute(&mut *conn).await.expect(sql);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compliance_loads_walk_their_keys_as_the_tables_grow_from_empty() {
    let db = TestDatabase::create_with_pool_size(2).await;
    let (tenant, policy) = (Uuid::now_v7(), Uuid::now_v7());
    let mut conn = db.pool.acquire().await.unwrap();
    // As the runner sets it for the projection's batches.
    sqlx::query("SET search_path = rm_compliance").execute(&mut *conn).await.unwrap();
    // Past PostgreSQL's five custom plans, so that a generic plan is chosen now if ever.
    for _ in 0..6 {
        load_a_batch(&mut conn, tenant, policy).await;
    }
    grow(&mut conn, tenant, policy, 300_000).await;
    for _ in 0..6 {
        load_a_batch(&mut conn, tenant, policy).await;
    }
    assert_queries_keyed(
        &mut conn,
        &["FROM results", "FROM resources", "FROM policies"],
        tenant,
        "300,000 results, not analysed",
        &[],
    )
    .await;

    // A session that prepares them only now, on the grown tables.
    let mut other = db.pool.acquire().await.unwrap();
    sqlx::query("SET search_path = rm_compliance").execute(&mut *other).await.unwrap();
    for _ in 0..6 {
        load_a_batch(&mut other, tenant, policy).await;
    }
    assert_queries_keyed(
        &mut other,
        &["FROM results", "FROM resources", "FROM policies"],
        tenant,
        "prepared on 300,000 results",
        &[],
    )
    .await;
    drop((conn, other));
    db.drop_database().await;
}
