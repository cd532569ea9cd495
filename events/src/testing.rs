//! Test support for every crate of the workspace: a fresh, migrated
//! PostgreSQL database per test, so that tests run in parallel and start clean.
//!
//! The server comes from `CORTEX_TEST_DATABASE_URL` (default
//! `postgres://postgres:postgres@127.0.0.1:5432/postgres`, the set-up of `ops/test`). Databases are
//! named `cortex_test_<uuid>`; [`TestDatabase::drop_database`] removes one, and `ops/test`
//! removes any left behind by an earlier, interrupted run.

use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgConnectOptions};
use uuid::Uuid;

use crate::postgres::MIGRATOR;

/// The password is the one `ops/` sets on a fresh install; under trust auth it is ignored.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// A database of one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    admin_url: String,
}

fn admin_url() -> String {
    std::env::var("CORTEX_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

impl TestDatabase {
    /// Creates and migrates a new database; panics with the cause when the server is not
    /// reachable (a test cannot run without it).
    pub async fn create() -> Self {
        Self::create_with_pool_size(16).await
    }

    pub async fn create_with_pool_size(max_connections: u32) -> Self {
        let admin_url = admin_url();
        let name = format!("cortex_test_{}", Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin_url}: {e}"));
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let options: PgConnectOptions =
            admin_url.parse::<PgConnectOptions>().expect("valid admin url").database(&name);
        let pool = crate::postgres::pool_options()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {name}: {e}"));
        MIGRATOR.run(&pool).await.unwrap_or_else(|e| panic!("migrations failed on {name}: {e}"));
        let url = replace_database(&admin_url, &name);
        Self { name, url, pool, admin_url }
    }

    /// Closes the pool and drops the database.
    ///
    /// `PgPool::close` waits for every checked-out connection to come back; a background
    /// task still alive at the end of a test (a subscription's reader, a listener) can hold
    /// one until the test's own handles are dropped — after this call. So the wait is
    /// bounded and `DROP … WITH (FORCE)` ends whatever is left.
    pub async fn drop_database(self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.pool.close()).await;
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
                .await;
            let _ = admin.close().await;
        }
    }
}

/// The URL with its database path replaced by `name`.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A server process of a test's own (nats-server or redis-server) on a free port, which the
/// test may stop and start again on the same port: its subjects or keys are the test's alone,
/// and a fault test can take it away. Killed when dropped.
pub struct Server {
    program: String,
    args: Vec<String>,
    pub port: u16,
    child: Option<std::process::Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn program(env: &str, name: &str, fallbacks: &[&str]) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(fallbacks.iter().copied()) {
        let candidate = format!("{dir}/{name}");
        if std::path::Path::new(&candidate).exists() {
            return candidate;
        }
    }
    panic!("{name} is not installed (ops/test installs it; or set {env})")
}

impl Server {
    pub async fn nats() -> Self {
        let port = free_port();
        let program = program("CORTEX_TEST_NATS_SERVER", "nats-server", &["/usr/sbin", "/usr/local/bin"]);
        let args = ["-a", "127.0.0.1", "-p", &port.to_string()].map(str::to_owned).to_vec();
        let mut s = Self { program, args, port, child: None };
        s.start().await;
        s
    }

    pub async fn redis() -> Self {
        let port = free_port();
        let program = program("CORTEX_TEST_REDIS_SERVER", "redis-server", &["/usr/bin", "/usr/local/bin"]);
        let args = ["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]
            .map(str::to_owned)
            .to_vec();
        let mut s = Self { program, args, port, child: None };
        s.start().await;
        s
    }

    pub async fn start(&mut self) {
        assert!(self.child.is_none());
        let child = std::process::Command::new(&self.program)
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("{} did not listen on {}", self.program, self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The plans PostgreSQL may run now for each query (`SELECT`, by sqlx or by `PREPARE`)
/// prepared on `conn` whose text contains `like`: `(statement, plan)` pairs, for tests of plan shapes.
///
/// Each statement is explained twice, through the session's plan cache: as a custom plan for
/// the arguments (what a session's first five executions run, and any execution whose
/// generic plan PostgreSQL finds dearer), and as its generic plan (the one cached, however
/// long ago it was made). The arguments have the shapes of the real calls, by parameter
/// type: `tenant` for a `uuid` (every row of such a test belongs to it, as on a deployment
/// with one tenant), 1,000 values for an array (a batch), 500 for a number (a page's limit),
/// and the like.
pub async fn explain_prepared(conn: &mut PgConnection, like: &str, tenant: Uuid) -> Vec<(String, String)> {
    let statements: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT name, statement, coalesce(parameter_types::text[], '{}') FROM pg_prepared_statements \
         WHERE (statement LIKE 'SELECT %' OR statement LIKE 'PREPARE % AS SELECT %') \
           AND statement LIKE '%' || $1 || '%' \
           AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .bind(like)
    .fetch_all(&mut *conn)
    .await
    .expect("list the prepared statements");
    let mut explained = Vec::with_capacity(statements.len() * 2);
    for (name, sql, types) in statements {
        let args: Vec<String> = types.iter().map(|t| argument_of(t, tenant)).collect();
        let explain = if args.is_empty() {
            format!("EXPLAIN EXECUTE {name}")
        } else {
            format!("EXPLAIN EXECUTE {name}({})", args.join(", "))
        };
        for mode in ["force_custom_plan", "force_generic_plan"] {
            conn.execute(format!("SET plan_cache_mode = {mode}").as_str())
                .await
                .expect("set plan_cache_mode");
            let plan: Result<Vec<String>, _> = sqlx::query_scalar(&explain).fetch_all(&mut *conn).await;
            conn.execute("RESET plan_cache_mode").await.expect("reset plan_cache_mode");
            let plan = plan.unwrap_or_else(|e| panic!("{explain}: {e}"));
            explained.push((format!("{sql}\n({mode})"), plan.join("\n")));
        }
    }
    explained
}

fn argument_of(pg_type: &str, tenant: Uuid) -> String {
    // Literals: `EXECUTE` takes no subqueries.
    let batch = |item: &dyn Fn(usize) -> String| {
        let items: Vec<String> = (0..1000).map(item).collect();
        format!("ARRAY[{}]::{pg_type}", items.join(","))
    };
    match pg_type {
        "uuid" => format!("'{tenant}'::uuid"),
        "uuid[]" => batch(&|_| format!("'{}'", Uuid::now_v7())),
        "text[]" => batch(&|i| format!("'key-{i}'")),
        "bigint[]" | "integer[]" => batch(&|i| i.to_string()),
        "boolean[]" => batch(&|_| "false".to_owned()),
        "bigint" | "integer" | "smallint" => "500".to_owned(),
        "text" => "'key'".to_owned(),
        "boolean" => "false".to_owned(),
        "timestamp with time zone" => "now()".to_owned(),
        other => format!("NULL::{other}"),
    }
}

/// Fails unless every plan finds its rows by their keys: no sequential scan, and no index
/// condition on the tenant alone (with one tenant, that is the whole table read through an
/// index), except on the tables named in `per_tenant` (a tenant's policies: a few dozen rows,
/// which a read may well take all of). `when` names the situation in the message.
pub fn assert_keyed_plans(explained: &[(String, String)], when: &str, per_tenant: &[&str]) {
    assert!(!explained.is_empty(), "{when}: no statement was prepared");
    for (sql, plan) in explained {
        assert!(!plan.contains("Seq Scan"), "{when}: a plan scans a table:\n{sql}\n{plan}");
        // The table of the scan node a condition line belongs to: the last `… on TABLE` above it.
        let mut table = "";
        for line in plan.lines().map(str::trim_start) {
            if let Some((_, rest)) = line.split_once("Scan").and_then(|(_, r)| r.split_once(" on ")) {
                table = rest.split_whitespace().next().unwrap_or_default();
            }
            let cond = line.strip_prefix("Index Cond: ").or_else(|| line.strip_prefix("Recheck Cond: "));
            let tenant_only = cond.is_some_and(|c| c.contains("tenant_id") && !c.contains(" AND "));
            assert!(
                !tenant_only || per_tenant.contains(&table),
                "{when}: a plan reads the whole tenant of {table}:\n{sql}\n{plan}"
            );
        }
    }
}

/// [`assert_keyed_plans`] over the queries prepared on `conn` that contain any of `likes`
/// (one look-up per entry, e.g. `"FROM results"`).
pub async fn assert_queries_keyed(
    conn: &mut PgConnection,
    likes: &[&str],
    tenant: Uuid,
    when: &str,
    per_tenant: &[&str],
) {
    for like in likes {
        assert_keyed_plans(&explain_prepared(conn, like, tenant).await, when, per_tenant);
    }
}
